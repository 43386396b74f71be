// What a metric is: its name, help, type, label names, histogram buckets and
// how a child generation imports it. Every definition, wherever it comes
// from (this thread, a worker, a parent process), passes through
// `defineMetric`, so the rest of the stats code can trust it.

import { invalidArgument } from '../errors';

export type MetricType = 'counter' | 'gauge' | 'histogram';

/**
 * How a child generation treats the parent's value of a gauge (Envoy's
 * ImportMode): `accumulate` adds the parent's share while the parent lives,
 * `neverImport` ignores it. Counters and histograms are always imported.
 */
export type ImportMode = 'accumulate' | 'neverImport';

/** A metric's definition: counter(options), and the base of gauge's and histogram's. */
export interface MetricOptions {
  /** Prometheus metric name; a counter's gets `_total` appended unless it has it. */
  name: string;
  /** Prometheus HELP text: what it counts. */
  help: string;
  /** Its labels' names; with any, each series is labels({...}). Default none. */
  labelNames?: readonly string[];
}

/** gauge(options): a metric's definition, and how a child generation takes the parent's value. */
export interface GaugeOptions extends MetricOptions {
  /** Default `accumulate`. */
  importMode?: ImportMode;
}

/** histogram(options): a metric's definition, and its buckets. */
export interface HistogramOptions extends MetricOptions {
  /** Upper bounds, strictly increasing and finite; `+Inf` is implied. Default: prom-client's. */
  buckets?: readonly number[];
}

export interface MetricDefinition {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly labelNames: readonly string[];
  /** Histograms only; empty otherwise. */
  readonly buckets: readonly number[];
  readonly importMode: ImportMode;
}

export type LabelValues = Readonly<Record<string, string | number>>;

/** Bounds that keep every definition, series and snapshot small. */
export const LIMITS = {
  nameLength: 200,
  helpLength: 1024,
  labels: 16,
  labelValueLength: 256,
  buckets: 64,
} as const;

export const DEFAULT_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES: readonly MetricType[] = ['counter', 'gauge', 'histogram'];
const IMPORT_MODES: readonly ImportMode[] = ['accumulate', 'neverImport'];

export function defineMetric(
  type: MetricType,
  options: MetricOptions & { importMode?: ImportMode; buckets?: readonly number[] },
): MetricDefinition {
  if (!TYPES.includes(type)) throw invalidArgument(`metric type must be one of ${TYPES.join(', ')}`);
  if (typeof options !== 'object' || options === null) throw invalidArgument('metric options must be an object');
  const { name, help, labelNames = [], importMode = 'accumulate' } = options;
  if (typeof name !== 'string' || !METRIC_NAME.test(name) || name.length > LIMITS.nameLength) {
    throw invalidArgument(`metric name must match ${METRIC_NAME} in at most ${LIMITS.nameLength} characters, not ${JSON.stringify(name)}`);
  }
  if (typeof help !== 'string' || help.length > LIMITS.helpLength) {
    throw invalidArgument(`help of ${name} must be a string of at most ${LIMITS.helpLength} characters`);
  }
  if (!Array.isArray(labelNames) || labelNames.length > LIMITS.labels) {
    throw invalidArgument(`labelNames of ${name} must be an array of at most ${LIMITS.labels} names`);
  }
  for (const label of labelNames) {
    if (typeof label !== 'string' || !LABEL_NAME.test(label) || label.startsWith('__') || label.length > LIMITS.nameLength) {
      throw invalidArgument(`label name ${JSON.stringify(label)} of ${name} must match ${LABEL_NAME} and not start with __`);
    }
    if (type === 'histogram' && label === 'le') throw invalidArgument(`label name le is reserved for the buckets of histogram ${name}`);
  }
  if (new Set(labelNames).size !== labelNames.length) throw invalidArgument(`labelNames of ${name} repeat a name`);
  if (!IMPORT_MODES.includes(importMode)) throw invalidArgument(`importMode of ${name} must be one of ${IMPORT_MODES.join(', ')}`);
  if (type !== 'gauge' && importMode !== 'accumulate') throw invalidArgument(`only gauges have an import mode; ${name} is a ${type}`);
  return {
    name: type === 'counter' && !name.endsWith('_total') ? `${name}_total` : name,
    help,
    type,
    labelNames: [...labelNames],
    buckets: type === 'histogram' ? checkBuckets(name, options.buckets ?? DEFAULT_BUCKETS) : [],
    importMode,
  };
}

function checkBuckets(name: string, buckets: readonly number[]): number[] {
  if (!Array.isArray(buckets) || buckets.length === 0 || buckets.length > LIMITS.buckets) {
    throw invalidArgument(`buckets of ${name} must be an array of 1 to ${LIMITS.buckets} numbers`);
  }
  buckets.forEach((bound, i) => {
    if (typeof bound !== 'number' || !Number.isFinite(bound) || (i > 0 && bound <= buckets[i - 1]!)) {
      throw invalidArgument(`buckets of ${name} must be finite numbers in strictly increasing order`);
    }
  });
  return [...buckets];
}

/** Whether two definitions can share series: same type, labels and buckets (help and import mode: the first one wins). */
export function compatible(a: MetricDefinition, b: MetricDefinition): boolean {
  return a.type === b.type && sameList(a.labelNames, b.labelNames) && sameList(a.buckets, b.buckets);
}

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Value slots one series takes: a histogram has one per bucket, one for +Inf and one for the sum. */
export function slotsOf(definition: MetricDefinition): number {
  return definition.type === 'histogram' ? definition.buckets.length + 2 : 1;
}

/** The label values of `values` in the order of the definition's label names. */
export function labelList(definition: MetricDefinition, values: LabelValues): string[] {
  if (typeof values !== 'object' || values === null) throw invalidArgument(`labels of ${definition.name} must be an object`);
  const keys = Object.keys(values);
  if (keys.length !== definition.labelNames.length || !definition.labelNames.every((n) => Object.hasOwn(values, n))) {
    throw invalidArgument(`${definition.name} takes exactly the labels ${definition.labelNames.join(', ') || '(none)'}, not ${keys.join(', ') || '(none)'}`);
  }
  return definition.labelNames.map((n) => checkLabelValue(definition, values[n]));
}

export function checkLabelValue(definition: MetricDefinition, value: unknown): string {
  if ((typeof value !== 'string' && typeof value !== 'number') || String(value).length > LIMITS.labelValueLength) {
    throw invalidArgument(`label values of ${definition.name} must be strings or numbers of at most ${LIMITS.labelValueLength} characters`);
  }
  return String(value);
}
