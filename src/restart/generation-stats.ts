// A generation's stats: the registry of its process (its own thread, every
// worker's, and the parent generation's share while it drains), baton's own
// metrics, the drain as the main thread sees it, and the admin listener.
// While the parent drains its stats are pulled every second, and it pushes
// its last ones as it terminates; /metrics is served only once the parent's
// numbers are in, so that no scrape sees a counter go back.

import { DrainController, type DrainStrategy } from '../drain/controller';
import type { ListenerSet, SocketEntry } from '../listeners/listener-set';
import type { Listener } from '../listeners/spec';
import { MAX_MESSAGE_BYTES } from '../protocol/messages';
import { metricsHandler } from '../stats/admin';
import { EngineMetrics } from '../stats/engine';
import type { PromClientRegistry } from '../stats/prom-client';
import { StatsRegistry } from '../stats/registry';
import { splitSnapshot, type StatsSnapshot } from '../stats/snapshot';
import { AdminListener } from './admin-listener';
import type { Follower } from './follower';

/** How often a child pulls its draining parent's stats. */
const PULL_MS = 1000;
/** Room left in a record for the fields around a snapshot part. */
const PART_BYTES = MAX_MESSAGE_BYTES - 1024;

/** The parent as the stats see it (the generation's ChildMachine). */
export interface ParentStats {
  /** Whether the parent still drains (its stats are wanted). */
  draining(): boolean;
  pullStats(): Promise<StatsSnapshot | undefined>;
}

export class GenerationStats implements Follower {
  readonly registry = new StatsRegistry();
  readonly engine: EngineMetrics;
  readonly drainController: DrainController;
  private admin?: AdminListener;
  /** The parent's numbers are in (or there is no parent): the admin listener may answer. */
  private settled = false;
  /** Whether the generation accepts (known once the parent has stopped accepting). */
  private accepting?: () => boolean;
  private pulls?: NodeJS.Timeout;

  constructor(
    epoch: number,
    strategy: DrainStrategy,
    private readonly parent: ParentStats,
    private readonly warn: (message: string) => void,
  ) {
    this.engine = new EngineMetrics(this.registry);
    this.engine.setEpoch(epoch);
    this.drainController = new DrainController({ strategy });
    this.engine.trackDrain(this.drainController);
  }

  // A follower of the generation: its drain, and the admin listener's serving, stopping and retiring.
  drain(ms: number): void {
    this.drainController.stop();
    this.drainController.start(ms);
  }

  resumeAccepting(): void {
    this.drainController.stop();
    if (this.settled) this.admin?.resumeAccepting();
  }

  stopAccepting(keep: readonly Listener[]): void {
    this.admin?.stopAccepting(keep);
  }

  retire(entry: SocketEntry): void {
    this.admin?.retire(entry);
  }

  terminate(): void {
    this.admin?.terminate();
  }

  /** Serves GET /metrics on the set's admin listener (once the parent's numbers are in). */
  serveAdmin(sockets: ListenerSet, epoch: number, promClient?: PromClientRegistry[]): void {
    this.admin = new AdminListener(sockets, metricsHandler(this.registry, { promClient }), epoch, this.warn);
  }

  /** What our child pulls, in records of at most one message each. */
  snapshotParts(): Array<Record<string, unknown>> {
    return splitSnapshot(this.registry.snapshot(), PART_BYTES) as unknown as Array<Record<string, unknown>>;
  }

  /** The parent drains: its stats are pulled until it is gone. */
  parentDraining(): void {
    this.pulls = setInterval(() => void this.pull(), PULL_MS).unref();
  }

  /**
   * The parent has stopped accepting (or there is none): its numbers once
   * more, and the admin listener answers as soon as they are in. A parent
   * that does not answer keeps it waiting until a later pull or its exit:
   * a failed scrape is honest, counters that seem to go back are not.
   */
  async parentStopped(accepting: () => boolean): Promise<void> {
    this.accepting = accepting;
    await this.pull();
  }

  /** The parent's stats, pulled or pushed; late ones (the parent is gone) are dropped. */
  importParent(snapshot: StatsSnapshot): void {
    if (!this.parent.draining()) return;
    try {
      this.registry.importParent(snapshot);
    } catch (error) {
      this.warn(`the parent's stats were refused: ${(error as Error).message}`);
    }
  }

  /** The parent is gone: its gauges leave the view (its final stats are in, if it could send them). */
  parentGone(hadOne: boolean): void {
    clearInterval(this.pulls);
    if (hadOne) this.registry.parentGone();
    this.settle();
  }

  private async pull(): Promise<void> {
    const snapshot = await this.parent.pullStats();
    if (snapshot) this.importParent(snapshot);
    if (this.registry.hasParentStats || !this.parent.draining()) this.settle();
  }

  private settle(): void {
    if (this.settled || !this.accepting) return;
    this.settled = true;
    if (this.accepting()) this.admin?.resumeAccepting();
  }
}
