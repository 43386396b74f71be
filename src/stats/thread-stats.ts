// The metric API of one thread: the main thread's StatsRegistry and every
// worker's workerStats(handle) define metrics the same way. Defining a name
// again with the same definition returns the same metric, so modules can
// define what they use where they use it.

import { BatonError, ErrorCodes, invalidArgument } from '../errors';
import { defineMetric, type GaugeOptions, type HistogramOptions, type MetricDefinition, type MetricOptions } from './definition';
import { Counter, Gauge, Histogram, type AnyMetric } from './metrics';
import { Segment } from './segment';

const HANDLE_TAG = 'baton.stats/1';

/** What a worker thread needs to write into the process-wide stats; structured-cloneable (workerData, postMessage). */
export interface StatsHandle {
  readonly stats: typeof HANDLE_TAG;
  readonly buffer: SharedArrayBuffer;
}

/**
 * One thread's metrics: workerContext().stats in a worker, and
 * generation.stats (a StatsRegistry) in the main thread. Defining a name
 * again with the same options returns the same metric.
 */
export class ThreadStats {
  private readonly metrics = new Map<string, AnyMetric>();

  /** @internal Made by StatsRegistry (main thread) and workerStats (workers). */
  constructor(protected readonly segment: Segment) {}

  /** A counter, defined (or found) by name. */
  counter(options: MetricOptions): Counter {
    return this.metric(defineMetric('counter', options), Counter);
  }

  /** A gauge, defined (or found) by name. */
  gauge(options: GaugeOptions): Gauge {
    return this.metric(defineMetric('gauge', options), Gauge);
  }

  /** A histogram, defined (or found) by name. */
  histogram(options: HistogramOptions): Histogram {
    return this.metric(defineMetric('histogram', options), Histogram);
  }

  private metric<M extends AnyMetric>(
    definition: MetricDefinition,
    Kind: new (definition: MetricDefinition, segment: Segment, id: number) => M,
  ): M {
    const known = this.metrics.get(definition.name);
    if (known) {
      if (JSON.stringify(known.definition) !== JSON.stringify(definition)) {
        throw invalidArgument(`metric ${definition.name} is already defined differently in this thread`);
      }
      return known as M;
    }
    const metric = new Kind(definition, this.segment, this.segment.define(definition));
    this.metrics.set(definition.name, metric);
    return metric;
  }
}

export function handleOf(segment: Segment): StatsHandle {
  return { stats: HANDLE_TAG, buffer: segment.buffer };
}

const claimed = new WeakMap<SharedArrayBuffer, ThreadStats>();

/**
 * The stats of this worker thread, from the handle the main thread's
 * StatsRegistry.forWorker() made for it. Calling it again in the same
 * thread returns the same object.
 */
export function workerStats(handle: StatsHandle): ThreadStats {
  if (typeof handle !== 'object' || handle === null || handle.stats !== HANDLE_TAG) {
    throw invalidArgument('expected a stats handle from StatsRegistry.forWorker()');
  }
  let stats = claimed.get(handle.buffer);
  if (!stats) {
    const segment = Segment.attach(handle.buffer);
    if (!segment.claim()) {
      throw new BatonError(ErrorCodes.INVALID_STATE, 'this stats handle is already written by another thread: give each worker thread its own forWorker() handle');
    }
    stats = new ThreadStats(segment);
    claimed.set(handle.buffer, stats);
  }
  return stats;
}
