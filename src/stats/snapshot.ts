// What a parent generation hands its child about its stats: a plain JSON
// record of cumulative values (counters and histograms as totals, including
// what the parent itself inherited; gauges that may be imported as current
// values) and the original start time. Cumulative values, not deltas, so a
// pull that is repeated or missed changes nothing: the child turns them into
// deltas itself. Bounded to MAX_SNAPSHOT_SERIES series, each bounded by the
// definition LIMITS; splitSnapshot cuts one into records of a given size.

import { BatonError, ErrorCodes, invalidArgument } from '../errors';
import { integerIn } from '../validate';
import { checkLabelValue, defineMetric, slotsOf, type MetricDefinition, type MetricType } from './definition';
import type { MetricFamily } from './families';

export const SNAPSHOT_FORMAT = 'baton.stats.snapshot/1';
/** Series in one snapshot, at most. */
export const MAX_SNAPSHOT_SERIES = 16_384;

export interface SnapshotMetric {
  name: string;
  type: MetricType;
  help: string;
  labelNames: string[];
  /** Histograms only. */
  buckets?: number[];
  /** Label values, then the values (see SeriesValues). */
  series: Array<[labels: string[], values: number[]]>;
}

export interface StatsSnapshot {
  format: typeof SNAPSHOT_FORMAT;
  /** Unix time, in seconds, the first generation started. */
  startTimeSeconds: number;
  metrics: SnapshotMetric[];
}

export function toSnapshot(startTimeSeconds: number, families: readonly MetricFamily[]): StatsSnapshot {
  return {
    format: SNAPSHOT_FORMAT,
    startTimeSeconds,
    metrics: families.map(({ definition: d, series }) => ({
      name: d.name,
      type: d.type,
      help: d.help,
      labelNames: [...d.labelNames],
      ...(d.type === 'histogram' ? { buckets: [...d.buckets] } : {}),
      // JSON has no Infinity: a series summed past Number.MAX_VALUE stays behind rather than spoil the snapshot.
      series: series.filter((s) => s.values.every(Number.isFinite)).map((s) => [[...s.labels], [...s.values]]),
    })),
  };
}

/** Validates a snapshot from another process; every field is checked before anything is used. */
export function readSnapshot(value: unknown): { startTimeSeconds: number; families: MetricFamily[] } {
  const s = value as StatsSnapshot;
  if (typeof s !== 'object' || s === null || s.format !== SNAPSHOT_FORMAT) throw invalidArgument(`a stats snapshot must have format ${SNAPSHOT_FORMAT}`);
  if (typeof s.startTimeSeconds !== 'number' || !(s.startTimeSeconds > 0) || !Number.isFinite(s.startTimeSeconds)) {
    throw invalidArgument('snapshot.startTimeSeconds must be a positive number');
  }
  if (!Array.isArray(s.metrics)) throw invalidArgument('snapshot.metrics must be an array');
  let count = 0;
  const families = s.metrics.map((m, i): MetricFamily => {
    if (typeof m !== 'object' || m === null || !Array.isArray(m.series)) throw invalidArgument(`snapshot.metrics[${i}] must be an object with a series array`);
    const definition = defineMetric(m.type, m);
    if (definition.name !== m.name) throw invalidArgument(`snapshot.metrics[${i}]: counter ${m.name} must be named ${definition.name}`);
    count += m.series.length;
    if (count > MAX_SNAPSHOT_SERIES) throw invalidArgument(`a stats snapshot holds at most ${MAX_SNAPSHOT_SERIES} series`);
    return { definition, series: m.series.map((entry, j) => readSeries(definition, entry, `snapshot.metrics[${i}].series[${j}]`)) };
  });
  return { startTimeSeconds: s.startTimeSeconds, families };
}

function readSeries(definition: MetricDefinition, entry: unknown, where: string): MetricFamily['series'][number] {
  const [labels, values] = Array.isArray(entry) ? (entry as unknown[]) : [];
  if (!Array.isArray(labels) || labels.length !== definition.labelNames.length) {
    throw invalidArgument(`${where} must start with ${definition.labelNames.length} label values`);
  }
  if (!Array.isArray(values) || values.length !== slotsOf(definition) || !values.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw invalidArgument(`${where} must end with ${slotsOf(definition)} finite numbers`);
  }
  return { labels: labels.map((l) => checkLabelValue(definition, l)), values: [...(values as number[])] };
}

/** Cuts a snapshot into snapshots of at most `maxBytes` of JSON each (a metric's series may spread over several). */
export function splitSnapshot(snapshot: StatsSnapshot, maxBytes: number): StatsSnapshot[] {
  integerIn(maxBytes, 'maxBytes', 1, 2 ** 31 - 1);
  const empty = (): StatsSnapshot => ({ format: snapshot.format, startTimeSeconds: snapshot.startTimeSeconds, metrics: [] });
  const emptyBytes = bytes(empty());
  const parts = [empty()];
  let used = emptyBytes;
  for (const metric of snapshot.metrics) {
    const headBytes = bytes({ ...metric, series: [] }) + 1;
    let current: SnapshotMetric | undefined;
    for (const series of metric.series.length > 0 ? metric.series : [undefined]) {
      const seriesBytes = series ? bytes(series) + 1 : 0;
      if (emptyBytes + headBytes + seriesBytes > maxBytes) {
        throw new BatonError(ErrorCodes.CAPACITY, `one series of ${metric.name} takes more than ${maxBytes} bytes`);
      }
      const needed = (current ? 0 : headBytes) + seriesBytes;
      if (used + needed > maxBytes) {
        parts.push(empty());
        used = emptyBytes;
        current = undefined;
      }
      if (!current) {
        current = { ...metric, series: [] };
        parts.at(-1)!.metrics.push(current);
        used += headBytes;
      }
      if (series) {
        current.series.push(series);
        used += seriesBytes;
      }
    }
  }
  return parts;
}

/** The snapshot that splitSnapshot cut into `parts`. */
export function joinSnapshots(parts: readonly StatsSnapshot[]): StatsSnapshot {
  if (!Array.isArray(parts) || parts.length === 0) throw invalidArgument('parts must be a non-empty array of snapshots');
  const byName = new Map<string, SnapshotMetric>();
  for (const part of parts) {
    if (typeof part !== 'object' || part === null || !Array.isArray(part.metrics)) throw invalidArgument('every part must be a stats snapshot');
    for (const metric of part.metrics) {
      if (typeof metric !== 'object' || metric === null || !Array.isArray(metric.series)) throw invalidArgument('every metric of a part must have a series array');
      const known = byName.get(metric.name);
      if (known) known.series.push(...metric.series);
      else byName.set(metric.name, { ...metric, series: [...metric.series] });
    }
  }
  return { format: parts[0]!.format, startTimeSeconds: parts[0]!.startTimeSeconds, metrics: [...byName.values()] };
}

function bytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value));
}
