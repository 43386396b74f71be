// The main thread's stats: its own metrics, one shared segment per worker
// thread, and what the parent generation handed over. collect() sums them
// into one process-wide view whenever it is asked (a scrape, a snapshot for
// the child); nothing runs in between, so neither event loop ever waits.
//
// Across generations (Envoy's semantics): counters and histograms continue
// from the parent's totals, gauges add the parent's current values while it
// lives unless the gauge is `neverImport`, and the original start time is
// kept. A worker thread started again on the same index keeps the counters
// of the one before it; that one's gauges go with it.

import { BatonError, ErrorCodes, invalidArgument } from '../errors';
import { integerIn } from '../validate';
import { slotsOf, type MetricDefinition } from './definition';
import { FamilyTable, type MetricFamily } from './families';
import { Segment, type SegmentCapacity } from './segment';
import { MAX_SNAPSHOT_SERIES, readSnapshot, toSnapshot, type StatsSnapshot } from './snapshot';
import { handleOf, ThreadStats, type StatsHandle } from './thread-stats';

export interface StatsRegistryOptions {
  /** Room in each thread's segment (this thread's and each worker's). */
  capacity?: SegmentCapacity;
  /** Unix time in seconds this generation started; default now. A child takes its parent's if earlier. */
  startTimeSeconds?: number;
}

const MAX_WORKER_INDEX = 65_535;

/**
 * The main thread's stats (generation.stats): its own metrics, and the sum
 * of every worker thread's and of the parent generation's share, collected
 * whenever it is asked (a scrape).
 */
export class StatsRegistry extends ThreadStats {
  private readonly capacity: SegmentCapacity;
  private readonly workers = new Map<number, Segment>();
  /** Counters and histograms of worker threads that were replaced. */
  private readonly retired = new FamilyTable();
  /** The parent's counters and histograms: its latest totals. */
  private readonly inherited = new FamilyTable();
  private parentGauges = new FamilyTable();
  private parent: 'none' | 'alive' | 'gone' = 'none';
  private readonly hooks = new Set<() => void>();
  private readonly warned = new Set<string>();
  private startTime: number;

  constructor(options: StatsRegistryOptions = {}) {
    if (typeof options !== 'object' || options === null) throw invalidArgument('options must be an object');
    const segment = Segment.create(options.capacity);
    segment.claim();
    super(segment);
    this.capacity = options.capacity ?? {};
    this.startTime = options.startTimeSeconds ?? Date.now() / 1000;
    if (typeof this.startTime !== 'number' || !(this.startTime > 0) || !Number.isFinite(this.startTime)) {
      throw invalidArgument('startTimeSeconds must be a positive number');
    }
  }

  /** Unix time in seconds the first generation started. */
  get startTimeSeconds(): number {
    return this.startTime;
  }

  /**
   * A handle for the worker thread of `index`, for its workerData; the
   * worker calls workerStats(handle). Call it again for a thread started
   * anew on the same index once the previous one has exited: the previous
   * thread's counters are kept, its gauges dropped (see workerExited).
   */
  forWorker(index: number): StatsHandle {
    this.workerExited(index);
    const segment = Segment.create(this.capacity);
    this.workers.set(index, segment);
    return handleOf(segment);
  }

  /**
   * The worker thread of `index` has exited: its counters and histograms
   * stay in the view, its gauges (connections it held, say) go with it.
   */
  workerExited(index: number): void {
    integerIn(index, 'worker index', 0, MAX_WORKER_INDEX);
    const previous = this.workers.get(index);
    if (!previous) return;
    for (const { definition, labels, slot } of previous.read().series) {
      if (definition.type !== 'gauge') this.include(this.retired, definition, labels, previous.values.subarray(slot, slot + slotsOf(definition)));
    }
    this.workers.delete(index);
  }

  /** Runs `hook` at the start of every collect() (to set gauges computed on demand); returns its removal. */
  onCollect(hook: () => void): () => void {
    if (typeof hook !== 'function') throw invalidArgument('hook must be a function');
    this.hooks.add(hook);
    return () => this.hooks.delete(hook);
  }

  /** The process-wide view: every thread's values summed, with the parent's share. */
  collect(): MetricFamily[] {
    for (const hook of this.hooks) hook();
    const view = new FamilyTable();
    for (const segment of [this.segment, ...this.workers.values()]) {
      const { definitions, series } = segment.read();
      for (const definition of definitions) if (!view.declare(definition)) this.conflict(definition);
      for (const { definition, labels, slot } of series) {
        this.include(view, definition, labels, segment.values.subarray(slot, slot + slotsOf(definition)));
      }
    }
    for (const table of [this.retired, this.inherited]) this.includeAll(view, table);
    if (this.parent === 'alive') this.includeAll(view, this.parentGauges, (name) => view.definition(name)?.importMode !== 'neverImport');
    return view.list();
  }

  /**
   * What the child pulls: the process-wide view without `neverImport`
   * gauges, at most MAX_SNAPSHOT_SERIES series (whole metrics beyond that
   * are left out with a warning). Plain JSON.
   */
  snapshot(): StatsSnapshot {
    const families: MetricFamily[] = [];
    let count = 0;
    for (const family of this.collect()) {
      if (family.definition.importMode === 'neverImport') continue;
      count += family.series.length;
      if (count > MAX_SNAPSHOT_SERIES) {
        this.warn('snapshot', `the stats snapshot is cut at ${MAX_SNAPSHOT_SERIES} series: ${family.definition.name} and the metrics after it do not reach the child`);
        break;
      }
      families.push(family);
    }
    return toSnapshot(this.startTime, families);
  }

  /**
   * Takes in a snapshot pulled from the parent generation: its counter
   * totals raise the inherited ones (so a repeated or missed pull changes
   * nothing), its gauges replace the parent's previous share. Validates the
   * snapshot first; a bad one changes nothing.
   */
  importParent(snapshot: StatsSnapshot): void {
    if (this.parent === 'gone') throw new BatonError(ErrorCodes.INVALID_STATE, 'the parent is gone: its last stats were final');
    const { startTimeSeconds, families } = readSnapshot(snapshot);
    this.startTime = Math.min(this.startTime, startTimeSeconds);
    const gauges = new FamilyTable();
    for (const { definition, series } of families) {
      for (const { labels, values } of series) {
        if (definition.type === 'gauge') this.include(gauges, definition, labels, values);
        else if (!this.inherited.raise(definition, labels, values)) this.conflict(definition);
      }
    }
    this.parentGauges = gauges;
    this.parent = 'alive';
  }

  /** Whether the parent's stats have come in, pulled or final. */
  get hasParentStats(): boolean {
    return this.parent !== 'none';
  }

  /** The parent terminated: its gauges leave the view; counters keep what it handed over. */
  parentGone(): void {
    this.parentGauges = new FamilyTable();
    this.parent = 'gone';
  }

  /** The parent's current share of gauge `name`, summed over its series (0 without a live parent). */
  parentValue(name: string): number {
    if (typeof name !== 'string') throw invalidArgument('name must be a string');
    return this.parentGauges.seriesOf(name).reduce((sum, s) => sum + s.values[0]!, 0);
  }

  private includeAll(view: FamilyTable, table: FamilyTable, wanted: (name: string) => boolean = () => true): void {
    for (const { definition, series } of table.list()) {
      if (!wanted(definition.name)) continue;
      for (const { labels, values } of series) this.include(view, definition, labels, values);
    }
  }

  private include(table: FamilyTable, definition: MetricDefinition, labels: readonly string[], values: ArrayLike<number>): void {
    if (!table.add(definition, labels, values)) this.conflict(definition);
  }

  private conflict(definition: MetricDefinition): void {
    this.warn(definition.name, `metric ${definition.name} is defined with another type, labels or buckets elsewhere (another thread or generation): this ${definition.type} is left out`);
  }

  /** Warns once per subject: a collect that runs every scrape must not flood the log. */
  private warn(subject: string, message: string): void {
    if (this.warned.has(subject)) return;
    this.warned.add(subject);
    process.emitWarning(message, { code: 'BATON_STATS' });
  }
}
