// One process's part in a hot restart: a child of the previous generation
// until it has taken over, then the parent of the next. Lifecycle and wiring
// only (as Envoy's HotRestartImpl over HotRestartingParent/Child): it owns
// the control socket and both state machines, wires them to its socket
// policy (listeners/handoff.ts) and its stats, and tells its followers
// (worker pool, admin listener, main-thread servers) when to stop, resume,
// drain, retire and terminate.

import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { BatonError, ErrorCodes } from '../errors';
import { writeFileReplacing } from '../files';
import { mark, timeline } from '../timeline';
import { integerIn } from '../validate';
import { controlAddress, freeBaseId, liveEpochs } from '../channel/address';
import { ControlServer } from '../channel/server';
import { adoptSockets, HandoffPolicy } from '../listeners/handoff';
import { fdLimit, fdUsage } from '../listeners/servers';
import type { ListenerSet, SocketEntry } from '../listeners/listener-set';
import { parseListen, resolveListeners, type ListenerSpec } from '../listeners/spec';
import { MAX_WORKERS } from '../protocol/messages';
import { hotRestartVersion, optionsFromEnv, resolveOptions, stripUndefined, type HotRestartOptions } from '../options';
import { ChildMachine } from './child';
import type { Follower } from './follower';
import type { Transition } from './machine';
import { ParentMachine } from './parent';
import { stopReportingStartUpErrors } from './start-up-errors';
import { statusPipe } from './status';
import type { DrainController } from '../drain/controller';
import type { EngineMetrics } from '../stats/engine';
import { GenerationStats } from './generation-stats';
import type { PromClientRegistry } from '../stats/prom-client';
import type { StatsRegistry } from '../stats/registry';

const LOAD_REPORT_MS = 1000;
/** Free fds a generation must have as it takes over, to accept connections at all. */
const MIN_FREE_FDS = 16;
const FREE_FDS_PER_WORKER = 2;

/** What a Generation emits. */
export interface GenerationEvents {
  /** Every state change of either machine, with its timing. */
  transition: [Transition<string>];
  /** Something went wrong that did not stop the generation (a peer refused, a follower failed...); also in the supervisor's log. */
  warning: [message: string];
  /** SIGUSR1 (which `baton run` forwards to every generation): reopen log files, as Envoy does. */
  reopenLogs: [];
}

/** Generation.start()'s options: any hot-restart option, over what `baton run` hands over in BATON_* variables. */
export interface StartOptions extends Partial<HotRestartOptions> {
  /** Read BATON_* variables (as `baton run` sets them) under the given options. Default true. */
  env?: boolean;
  /** Exit the process once terminated by the child or shut down. Default true. */
  exitOnTerminate?: boolean;
}

/** generation.listen()'s options. */
export interface ListenOptions {
  /** An admin listener ('host:port' or a spec): GET /metrics in Prometheus text, handed over like the others. */
  admin?: ListenerSpec | string;
  /** prom-client registries whose metrics the admin listener appends to baton's. */
  promClient?: PromClientRegistry[];
}

/**
 * One process's part in a hot restart, step by step: Generation.start()
 * (connect to the parent, shake hands), listen() (take every socket),
 * takeOver() (accept; the parent drains). Until it takes over it is the
 * child of the previous generation; from then on, the parent of the next.
 * Whatever serves its sockets follows it (follow()).
 */
export class Generation extends EventEmitter<GenerationEvents> {
  /** The options in force; the base id is the one chosen, with useDynamicBaseId. */
  private settings: Readonly<HotRestartOptions>;
  /** The compatibility string a parent and child must share (`baton --hot-restart-version`). */
  readonly hotRestartVersion: string;
  private readonly metrics: GenerationStats;
  private readonly child: ChildMachine;
  private readonly parent: ParentMachine;
  private readonly status = statusPipe();
  private control?: ControlServer;
  private handoff?: HandoffPolicy;
  private readonly followers = new Set<Follower>();
  private readonly startedAt = performance.now();
  private acceptingNow = false;
  private stopping = false;
  /** The supervisor hears our connections open every LOAD_REPORT_MS (`baton status`; what a rollback loses). */
  private loadReports?: NodeJS.Timeout;

  private constructor(
    options: HotRestartOptions,
    private readonly exitOnTerminate: boolean,
  ) {
    super();
    this.settings = options;
    this.hotRestartVersion = hotRestartVersion(options.compatibility);
    this.child = new ChildMachine({
      epoch: options.restartEpoch,
      parentEpoch: options.parentEpoch,
      hotRestartVersion: this.hotRestartVersion,
      allowedUids: options.allowedUids,
      handshakeTimeoutMs: options.handshakeTimeoutMs,
      requestTimeoutMs: options.requestTimeoutMs,
      parentShutdownMs: options.parentShutdownTimeS * 1000,
      onParentStats: (snapshot) => this.metrics.importParent(snapshot),
    });
    mark('generation');
    const child = this.child;
    const parentStats = { draining: () => child.is('drainingParent', 'terminatingParent'), pullStats: () => child.pullStats() };
    this.metrics = new GenerationStats(options.restartEpoch, options.drainStrategy, parentStats, (message) => this.warn(message));
    this.follow(this.metrics);
    this.parent = new ParentMachine(
      {
        epoch: options.restartEpoch,
        hotRestartVersion: this.hotRestartVersion,
        allowedUids: options.allowedUids,
        handshakeTimeoutMs: options.handshakeTimeoutMs,
        childInitTimeoutMs: options.childInitTimeoutS * 1000,
        drainMs: options.drainTimeS * 1000,
        shutdownMs: options.parentShutdownTimeS * 1000,
      },
      {
        sockets: (request) => this.policy.handOut(request),
        // Our own parent, if it still drains, must know whether we accept (see ParentMachine).
        stopAccepting: () => {
          if (this.handoff) this.handoff.childTookOver();
          else this.setAccepting(false);
          void this.child.reportAccepting(false);
        },
        resumeAccepting: (reason) => {
          if (this.handoff) this.handoff.childWentAway();
          else this.setAccepting(true);
          this.status.report({ event: 'resumed', reason });
          void this.child.reportAccepting(true);
        },
        drain: (ms) => this.tell((f) => f.drain?.(ms)),
        retired: (listener, index) => void (this.handoff ? this.handoff.closeRetired(listener, index) : this.child.reportRetired(listener, index)),
        stats: () => this.metrics.snapshotParts(),
        terminate: () => this.close(),
        warn: (message) => this.warn(message),
      },
    );
    for (const machine of [this.child, this.parent]) {
      machine.on('transition', (t) => {
        this.emit('transition', t);
        this.status.report({ event: 'transition', ...t });
      });
      machine.on('warning', (message) => this.warn(message));
    }
    this.parent.on('transition', (t) => {
      if (t.to === 'terminated' && this.exitOnTerminate) void this.status.close().then(() => process.exit(0));
      // A child that went away before the drain: our own steering again (it may have set its own as it
      // failed to take over), and our own surplus is ours to retire again.
      if (t.to === 'serving' && t.from !== 'notReady' && t.from !== 'draining' && t.from !== 'drained') this.handoff?.childFailed();
    });
    this.child.on('transition', (t) => {
      mark(t.to);
      if (t.to === 'drainingParent') this.metrics.parentDraining();
      if (t.to !== 'serving') return;
      this.metrics.parentGone(t.from !== 'startingWorkers');
      this.handoff?.clearSteeringOnceAlone();
    });
  }

  /**
   * Starts this generation: binds its control socket and, for epoch > 0,
   * connects to the parent and shakes hands. The parent keeps serving while
   * the application initializes after this returns. `whileConnecting` is
   * called with the generation before it connects, to start what takes
   * time meanwhile (serve() starts its worker threads there).
   */
  static async start(given: StartOptions = {}, whileConnecting?: (generation: Generation) => void): Promise<Generation> {
    const { env = true, exitOnTerminate = true, ...rest } = given;
    // An option given as undefined leaves the environment's (serve() passes every one it knows).
    const options = resolveOptions({ ...(env ? optionsFromEnv() : {}), ...stripUndefined(rest) });
    const generation = new Generation(options, exitOnTerminate);
    try {
      whileConnecting?.(generation);
      await generation.connect();
    } catch (error) {
      await generation.abandon(error as Error);
      throw error;
    }
    return generation;
  }

  /**
   * The process-wide stats (this thread's, every worker's, and the parent
   * generation's share while it drains): define the application's metrics
   * here or with workerContext().stats.
   */
  get stats(): StatsRegistry {
    return this.metrics.registry;
  }

  /** baton's own metrics (generation, restarts, handoff, sockets, drain). */
  get engine(): EngineMetrics {
    return this.metrics.engine;
  }

  /** This generation's drain, as the main thread sees it (time left; workers count their connections). */
  get drainController(): DrainController {
    return this.metrics.drainController;
  }

  /** The hot-restart options in force: given, from BATON_* variables, or defaults. */
  get options(): Readonly<HotRestartOptions> {
    return this.settings;
  }

  /** This generation's restart epoch: 0 for the first, one more at each hot restart. */
  get epoch(): number {
    return this.options.restartEpoch;
  }

  /** The base id in use (the one chosen, with useDynamicBaseId). */
  get baseId(): number {
    return this.options.baseId;
  }

  /** Where this generation is on its way to serving ('initializing', 'drainingParent', 'serving'...). */
  get childState() {
    return this.child.state;
  }

  /** Where this generation is as the parent of the next ('notReady', 'serving', 'draining'...). */
  get parentState() {
    return this.parent.state;
  }

  /** Whether this generation's workers should be accepting right now. */
  get accepting(): boolean {
    return this.acceptingNow;
  }

  /** The sockets this generation owns, for the worker pool and main-thread servers; throws before listen(). */
  get listenerSet(): ListenerSet {
    return this.policy.sockets;
  }

  /**
   * Registers what serves this generation's sockets (worker pool, admin
   * listener, main-thread servers): it is told of every stop, resume, drain,
   * retire and terminate from now on, and to resume at once if the
   * generation accepts already. Returns what unregisters it.
   */
  follow(follower: Follower): () => void {
    this.followers.add(follower);
    if (this.acceptingNow) follower.resumeAccepting?.();
    return () => void this.followers.delete(follower);
  }

  /**
   * Takes every listener x worker socket: the parent's, in one batched
   * request, and new ones for whatever the parent does not have.
   */
  async listen(specs: ListenerSpec[], workers: number, options: ListenOptions = {}): Promise<ListenerSet> {
    const admin = typeof options.admin === 'string' ? parseListen(options.admin) : options.admin;
    const listeners = resolveListeners(specs, admin);
    if (this.handoff) throw new BatonError(ErrorCodes.INVALID_STATE, 'listen() was already called');
    integerIn(workers, 'workers', 1, MAX_WORKERS);
    const wanted = listeners.map((l) => ({ ...l.address, ipv6Only: l.ipv6Only, ...(l.role === 'admin' ? { sockets: 1 } : {}) }));
    const surplus = this.options.surplusSockets;
    const taken = await this.child.takeSockets({ listeners: wanted, workers, surplus });
    let sockets: ListenerSet;
    try {
      sockets = adoptSockets(listeners, wanted, workers, surplus, taken);
    } catch (error) {
      this.child.detach();
      throw error;
    }
    const o = this.options;
    this.handoff = new HandoffPolicy(sockets, { retireGraceMs: o.retireGraceMs, drainMs: o.drainTimeS * 1000, requestTimeoutMs: o.requestTimeoutMs }, {
      letGo: (entry) => this.retire(entry),
      tellParent: (address, index) => this.child.reportRetired(address, index),
      setAccepting: (accepting, keep) => this.setAccepting(accepting, keep),
      // Stopping, we accept no more: in particular our steering is not ours to clear as a parent takes the traffic back.
      accepting: () => this.acceptingNow && !this.stopping,
      alone: () => this.child.is('serving') && this.parent.is('serving'),
      warn: (message) => this.warn(message),
    });
    this.handoff.on('retired', (entry, waitedMs) => {
      this.status.report({ event: 'retired', listener: entry.listener.name, index: entry.index, waitedMs });
      this.engine.countSockets({ retired: 1 });
    });
    this.handoff.on('released', (released) => this.status.report({ event: 'released', listeners: released.map((l) => l.name) }));
    if (admin) this.metrics.serveAdmin(sockets, this.epoch, options.promClient);
    this.child.startingWorkers();
    return sockets;
  }
  /**
   * Our workers accept on every socket: the parent drains now and is
   * terminated after parentShutdownTimeS. From here on this generation can
   * be the parent of the next.
   */
  takeOver(): void {
    const handoff = this.policy;
    const entries = handoff.sockets.entries();
    this.child.checkTakeOver(); // a parent that gave up on us keeps its groups as they are
    checkFdHeadroom(handoff.sockets.workers);
    handoff.joinGroups();
    const parentStopped = this.child.takeOver(); // the parent stops accepting; its queues wait for our workers, a moment later
    this.setAccepting(true);
    this.parent.ready();
    handoff.retireSurplus();
    const inherited = entries.filter((e) => e.origin === 'inherited').length;
    this.engine.countSockets({ inherited, created: entries.length - inherited });
    void parentStopped.then(() => {
      if (this.child.is('drainingParent', 'terminatingParent')) this.engine.handoffCompleted((performance.now() - this.startedAt) / 1000);
      return this.metrics.parentStopped(() => this.acceptingNow);
    });
    mark('takenOver');
    this.status.report({
      event: 'takenOver',
      timeline: timeline(),
      epoch: this.epoch,
      ms: Math.round(performance.now() - this.startedAt),
      inherited,
      created: entries.length - inherited,
      surplus: entries.filter((e) => e.surplus).length,
      tcpMigrateReq: tcpMigrateReq(),
      workers: handoff.sockets.workers,
      listeners: handoff.sockets.listeners.map((l) => ({ name: l.name, sockets: entries.filter((e) => e.listener === l).length })),
    });
    stopReportingStartUpErrors(); // from here on, an uncaught error is the serving application's crash, told as Node tells it
    const reportLoad = (): void => this.status.report({ event: 'load', connections: this.metrics.connectionsOpen() });
    reportLoad();
    this.loadReports = setInterval(reportLoad, LOAD_REPORT_MS).unref();
  }

  /**
   * Gives up before taking over: every fd of ours is closed and the parent,
   * which still holds its own, keeps serving as if we had never come.
   */
  async abandon(error: Error): Promise<void> {
    // A system error keeps its errno name (EADDRINUSE says what to do); anything else without a code is the application's.
    this.status.reportFailure(error, ErrorCodes.APPLICATION);
    this.child.detach();
    this.control?.close();
    this.handoff?.sockets.close();
    await this.status.close();
  }

  /** A 'warning' event, and a line in the status the supervisor logs (the application's workers' troubles, say). */
  warn(message: string): void {
    this.emit('warning', message);
    this.status.report({ event: 'warning', message });
  }

  /** Stops this generation: no more accepting, open connections drained for up to `graceMs`, then terminated. */
  async shutdown(reason: string, graceMs: number): Promise<void> {
    if (this.stopping || this.parent.is('terminating', 'terminated')) return;
    this.stopping = true;
    // A parent still draining takes the traffic back at once (a rollback): what only we hold is served until empty.
    // Only as the serving generation: one that drains itself hands nothing back, and its created sockets are its child's now.
    const handingBack = this.child.is('drainingParent') && this.acceptingNow;
    this.child.detach();
    void this.handoff?.stop();
    this.setAccepting(false, handingBack ? this.handoff?.handBack() : []);
    // Without hot restart no child shares our sockets: they leave their groups now, so new connections go
    // to the generation started beside us (or are refused at once) instead of waiting in queues nobody accepts.
    if (this.options.disableHotRestart) this.handoff?.letGoOfAll();
    this.tell((f) => f.drain?.(graceMs));
    await new Promise((resolve) => setTimeout(resolve, graceMs).unref());
    await this.parent.terminate(reason);
  }

  private async connect(): Promise<void> {
    if (this.settings.disableHotRestart) return this.child.connect(undefined);
    if (this.settings.useDynamicBaseId) {
      this.settings = { ...this.settings, baseId: freeBaseId(this.settings.socketPath) };
      this.status.report({ event: 'baseId', baseId: this.settings.baseId });
    }
    const o = this.settings;
    if (!o.useDynamicBaseId && o.restartEpoch === 0 && liveEpochs(o.socketPath, o.baseId).length > 0) {
      throw new BatonError(
        ErrorCodes.BASE_ID_IN_USE,
        `base id ${o.baseId} at ${o.socketPath} is in use by a running instance; give this one another --base-id, or --use-dynamic-base-id`,
      );
    }
    if (o.baseIdPath) writeFileReplacing(o.baseIdPath, `${o.baseId}\n`);
    this.control = ControlServer.listen(controlAddress(o.socketPath, o.baseId, o.restartEpoch), o.socketMode);
    this.control.on('connection', (channel, peer) => this.parent.accept(channel, peer));
    this.control.on('error', (error) => this.warn(`control socket: ${error.message}`));
    await this.child.connect(o.parentEpoch >= 0 ? controlAddress(o.socketPath, o.baseId, o.parentEpoch) : undefined);
  }

  private get policy(): HandoffPolicy {
    if (!this.handoff) throw new BatonError(ErrorCodes.INVALID_STATE, 'call listen() first');
    return this.handoff;
  }

  private setAccepting(accepting: boolean, keep: SocketEntry[] = []): void {
    // Once shutting down, a child that goes away does not make us accept again.
    if (this.acceptingNow === accepting || (accepting && this.stopping)) return;
    this.acceptingNow = accepting;
    this.tell((f) => (accepting ? f.resumeAccepting?.() : f.stopAccepting?.(keep)));
  }

  /** Tells every follower, in the order they came; one that throws is a warning and the others are still told. */
  private tell(call: (follower: Follower) => void): void {
    for (const follower of this.followers) {
      try {
        call(follower);
      } catch (error) {
        this.warn(`a follower failed: ${(error as Error).message}`);
      }
    }
  }

  /** Every follower lets go of a socket about to close for good, one after the other. */
  private async retire(entry: SocketEntry): Promise<void> {
    for (const follower of this.followers) {
      try {
        await follower.retire?.(entry);
      } catch (error) {
        this.warn(`a follower failed to let go of socket ${entry.index} of ${entry.listener.name}: ${(error as Error).message}`);
      }
    }
  }

  /** Followers terminate, then every fd this generation owns closes. */
  private async close(): Promise<void> {
    clearInterval(this.loadReports);
    for (const follower of this.followers) {
      try {
        await follower.terminate?.();
      } catch (error) {
        this.warn(`terminate hook failed: ${(error as Error).message}`);
      }
    }
    void this.handoff?.stop();
    this.child.detach();
    this.control?.close();
    this.handoff?.sockets.close();
  }
}

/** net.ipv4.tcp_migrate_req (1: the kernel moves a closing listener's queue to another in its group); null where unknown. */
function tcpMigrateReq(): number | null {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim());
  } catch {
    return null;
  }
}

/**
 * Taking over with no fds to spare would accept connections only to have
 * the kernel refuse them (EMFILE): better fail now, while the parent serves.
 */
function checkFdHeadroom(workers: number): void {
  const usage = fdUsage();
  const needed = Math.max(MIN_FREE_FDS, FREE_FDS_PER_WORKER * workers);
  if (!usage || usage.limit - usage.open >= needed) return;
  throw new BatonError(
    ErrorCodes.CAPACITY,
    `too few fds left to accept connections: ${usage.limit - usage.open} free, ${needed} needed (${FREE_FDS_PER_WORKER} per worker, at least ${MIN_FREE_FDS}); ${fdLimit()}`,
  );
}
