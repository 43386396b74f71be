// Counters, gauges and histograms as the application uses them, in any
// thread. A metric without labels is its own series; one with labels hands
// out a series per set of label values (`labels({...})`, worth keeping in a
// variable on hot paths). Every series writes straight into its thread's
// shared segment.

import { invalidArgument } from '../errors';
import { labelList, type LabelValues, type MetricDefinition } from './definition';
import type { Segment } from './segment';

export class CounterSeries {
  constructor(
    private readonly values: Float64Array,
    private readonly slot: number,
  ) {}

  inc(value = 1): void {
    if (!(value >= 0 && value < Infinity)) throw invalidArgument(`a counter only goes up: inc() takes a finite number >= 0, not ${value}`);
    this.values[this.slot] += value;
  }
}

export class GaugeSeries {
  constructor(
    private readonly values: Float64Array,
    private readonly slot: number,
  ) {}

  set(value: number): void {
    this.values[this.slot] = finite(value);
  }

  inc(value = 1): void {
    this.values[this.slot] += finite(value);
  }

  dec(value = 1): void {
    this.values[this.slot] -= finite(value);
  }
}

export class HistogramSeries {
  constructor(
    private readonly values: Float64Array,
    private readonly slot: number,
    private readonly buckets: readonly number[],
  ) {}

  /** Counts `value` in the first bucket whose upper bound is >= it (else +Inf) and adds it to the sum. */
  observe(value: number): void {
    finite(value);
    const { buckets } = this;
    let i = 0;
    while (i < buckets.length && value > buckets[i]!) i++;
    this.values[this.slot + i] += 1;
    this.values[this.slot + buckets.length + 1] += value;
  }
}

function finite(value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw invalidArgument(`metric values must be finite numbers, not ${value}`);
  return value;
}

/** One metric: its definition and its series, one per set of label values. */
abstract class Metric<S> {
  private readonly children = new Map<string, S>();
  private readonly only: S | undefined;

  constructor(
    /** Its name, help, type, label names and buckets, as checked. */
    readonly definition: MetricDefinition,
    private readonly segment: Segment,
    private readonly id: number,
    private readonly makeSeries: (values: Float64Array, slot: number) => S,
  ) {
    if (definition.labelNames.length === 0) this.only = makeSeries(segment.values, segment.addSeries(id, []));
  }

  /** The series of these label values (one value for each of the metric's label names). */
  labels(values: LabelValues): S {
    const labels = labelList(this.definition, values);
    const key = JSON.stringify(labels);
    let series = this.children.get(key);
    if (!series) {
      series = this.makeSeries(this.segment.values, this.segment.addSeries(this.id, labels));
      this.children.set(key, series);
    }
    return series;
  }

  protected get unlabelled(): S {
    if (!this.only) throw invalidArgument(`${this.definition.name} has labels (${this.definition.labelNames.join(', ')}): use labels({...})`);
    return this.only;
  }
}

/** A count that only goes up (`_total`), carried across hot restarts. */
export class Counter extends Metric<CounterSeries> {
  constructor(definition: MetricDefinition, segment: Segment, id: number) {
    super(definition, segment, id, (values, slot) => new CounterSeries(values, slot));
  }

  /** Adds `value` (finite, >= 0; default 1). A metric with labels counts on labels({...}). */
  inc(value = 1): void {
    this.unlabelled.inc(value);
  }
}

/** A value that goes up and down; a child generation adds the parent's while it lives, unless `neverImport`. */
export class Gauge extends Metric<GaugeSeries> {
  constructor(definition: MetricDefinition, segment: Segment, id: number) {
    super(definition, segment, id, (values, slot) => new GaugeSeries(values, slot));
  }

  /** Sets it to `value` (finite). */
  set(value: number): void {
    this.unlabelled.set(value);
  }

  /** Adds `value` (finite; default 1). */
  inc(value = 1): void {
    this.unlabelled.inc(value);
  }

  /** Subtracts `value` (finite; default 1). */
  dec(value = 1): void {
    this.unlabelled.dec(value);
  }
}

/** Observations counted in buckets, with their sum, carried across hot restarts. */
export class Histogram extends Metric<HistogramSeries> {
  constructor(definition: MetricDefinition, segment: Segment, id: number) {
    super(definition, segment, id, (values, slot) => new HistogramSeries(values, slot, definition.buckets));
  }

  /** Counts `value` (finite) in its bucket and adds it to the sum. */
  observe(value: number): void {
    this.unlabelled.observe(value);
  }
}

export type AnyMetric = Counter | Gauge | Histogram;
