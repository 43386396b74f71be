// baton's own metrics: their definitions, and what the engine calls to keep
// them. Built on any thread's stats (the same definitions everywhere); the
// values each one is kept by are said on its method. On the main thread's
// StatsRegistry, the start time, the parent's connections and the drain's
// seconds left are computed whenever the registry collects.

import type * as net from 'node:net';
import { invalidArgument } from '../errors';
import { integerIn } from '../validate';
import { StatsRegistry } from './registry';
import type { ThreadStats } from './thread-stats';

/** What the drain metrics read of a drain (a DrainController is one): stats know nothing of the engine. */
export interface DrainProgressSource {
  progress(): { draining: boolean; connections: number; remainingMs: number };
  on(event: 'progress', listener: () => void): unknown;
  off(event: 'progress', listener: () => void): unknown;
}

export const ENGINE_METRICS = {
  generation: {
    name: 'baton_hot_restart_generation',
    help: 'Hot restart generation: 1 for the first process, one more at each hot restart (restart epoch + 1).',
    importMode: 'neverImport',
  },
  startTime: {
    name: 'baton_server_start_time_seconds',
    help: 'Unix time the first generation started, kept across hot restarts.',
    importMode: 'neverImport',
  },
  hotRestarts: { name: 'baton_hot_restarts_total', help: 'Hot restarts completed: children that took over from their parent.' },
  workerRestarts: {
    name: 'baton_worker_restarts_total',
    help: 'Worker threads started again after they died.',
    labelNames: ['worker'],
  },
  handoffDuration: {
    name: 'baton_handoff_duration_seconds',
    help: 'Time a child took to take over from its parent, from its hello to the parent draining.',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  },
  socketsInherited: { name: 'baton_sockets_inherited_total', help: 'Listening sockets a generation received from its parent.' },
  socketsCreated: { name: 'baton_sockets_created_total', help: 'Listening sockets a generation created itself.' },
  socketsRetired: { name: 'baton_sockets_retired_total', help: 'Listening sockets closed because no worker of the new generation serves them.' },
  connectionsAccepted: {
    name: 'baton_connections_accepted_total',
    help: 'Connections accepted, by worker index.',
    labelNames: ['worker'],
  },
  connectionsOpen: {
    name: 'baton_connections_open',
    help: 'Connections open, by worker index (this generation\'s own).',
    labelNames: ['worker'],
    importMode: 'neverImport',
  },
  parentConnections: {
    name: 'baton_parent_connections',
    help: 'Connections the parent generation still has open while it drains.',
    importMode: 'neverImport',
  },
  drainConnectionsLeft: {
    name: 'baton_drain_connections_left',
    help: 'Connections a draining generation has still open (the parent\'s included while it lives).',
  },
  drainSecondsLeft: {
    name: 'baton_drain_seconds_left',
    help: 'Seconds until the drain time of a draining generation is over (the parent\'s included while it lives).',
  },
} as const;

export interface SocketCounts {
  inherited?: number;
  created?: number;
  retired?: number;
}

export class EngineMetrics {
  readonly generation;
  readonly startTime;
  readonly hotRestarts;
  readonly workerRestarts;
  readonly handoffDuration;
  readonly socketsInherited;
  readonly socketsCreated;
  readonly socketsRetired;
  readonly connectionsAccepted;
  readonly connectionsOpen;
  readonly parentConnections;
  readonly drainConnectionsLeft;
  readonly drainSecondsLeft;
  private readonly registry: StatsRegistry | undefined;

  constructor(stats: ThreadStats) {
    const m = ENGINE_METRICS;
    this.generation = stats.gauge(m.generation);
    this.startTime = stats.gauge(m.startTime);
    this.hotRestarts = stats.counter(m.hotRestarts);
    this.workerRestarts = stats.counter(m.workerRestarts);
    this.handoffDuration = stats.histogram(m.handoffDuration);
    this.socketsInherited = stats.counter(m.socketsInherited);
    this.socketsCreated = stats.counter(m.socketsCreated);
    this.socketsRetired = stats.counter(m.socketsRetired);
    this.connectionsAccepted = stats.counter(m.connectionsAccepted);
    this.connectionsOpen = stats.gauge(m.connectionsOpen);
    this.parentConnections = stats.gauge(m.parentConnections);
    this.drainConnectionsLeft = stats.gauge(m.drainConnectionsLeft);
    this.drainSecondsLeft = stats.gauge(m.drainSecondsLeft);
    if (stats instanceof StatsRegistry) {
      this.registry = stats;
      stats.onCollect(() => {
        this.startTime.set(stats.startTimeSeconds);
        this.parentConnections.set(stats.parentValue(m.drainConnectionsLeft.name));
      });
    }
  }

  /** Main thread, at start: the generation is the restart epoch + 1. */
  setEpoch(epoch: number): void {
    this.generation.set(integerIn(epoch, 'epoch', 0, 2 ** 31 - 1) + 1);
  }

  /** Main thread of the child, once it took over: one more hot restart, and how long the handoff took. */
  handoffCompleted(seconds: number): void {
    if (typeof seconds !== 'number' || !(seconds >= 0)) throw invalidArgument('seconds must be a number >= 0');
    this.hotRestarts.inc();
    this.handoffDuration.observe(seconds);
  }

  /** Main thread, once the listening sockets are settled. */
  countSockets(counts: SocketCounts): void {
    if (typeof counts !== 'object' || counts === null) throw invalidArgument('counts must be an object');
    const { inherited = 0, created = 0, retired = 0 } = counts;
    this.socketsInherited.inc(inherited);
    this.socketsCreated.inc(created);
    this.socketsRetired.inc(retired);
  }

  /** Main thread, when the pool starts worker `index` again after it died. */
  workerRestarted(index: number): void {
    this.workerRestarts.labels({ worker: workerLabel(index) }).inc();
  }

  /** Worker thread: counts the connections `server` accepts; returns what stops it. */
  countConnections(server: net.Server, worker: number): () => void {
    if (typeof server?.on !== 'function') throw invalidArgument('server must be a net.Server');
    const accepted = this.connectionsAccepted.labels({ worker: workerLabel(worker) });
    const open = this.connectionsOpen.labels({ worker: workerLabel(worker) });
    // One listener for every socket (each emits close once), not a wrapper each as once() makes.
    const closed = (): void => open.dec();
    const onConnection = (socket: net.Socket): void => {
      accepted.inc();
      open.inc();
      socket.on('close', closed);
    };
    server.on('connection', onConnection);
    return () => server.off('connection', onConnection);
  }

  /**
   * Follows a drain: on any thread, the connections it still has open; on
   * the main thread's registry also the seconds left (only there, so that
   * they are not summed over the workers). Returns what stops it.
   */
  trackDrain(controller: DrainProgressSource): () => void {
    if (typeof controller?.progress !== 'function') throw invalidArgument('controller must be a DrainController');
    const onProgress = (): void => {
      const { draining, connections } = controller.progress();
      this.drainConnectionsLeft.set(draining ? connections : 0);
    };
    controller.on('progress', onProgress);
    const stopClock = this.registry?.onCollect(() => this.drainSecondsLeft.set(controller.progress().remainingMs / 1000));
    return () => {
      controller.off('progress', onProgress);
      stopClock?.();
      this.drainSecondsLeft.set(0);
    };
  }
}

function workerLabel(index: number): string {
  return String(integerIn(index, 'worker index', 0, 2 ** 31 - 1));
}
