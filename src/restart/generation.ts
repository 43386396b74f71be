// One process's part in a hot restart: a child of the previous generation
// until it has taken over, then the parent of the next. It owns the control
// socket, the listener set and both state machines, and tells whoever serves
// the sockets (the worker pool, or the application's own workers) when to
// stop, resume, drain and terminate.

import { EventEmitter } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { BatonError, ErrorCodes, invalidArgument } from '../errors';
import { controlAddress, freeBaseId, liveEpochs } from '../channel/address';
import { ControlServer } from '../channel/server';
import { ListenerSet, type SocketEntry } from '../listeners/listener-set';
import { listenerName, parseListen, resolveListeners, type Listener, type ListenerSpec } from '../listeners/spec';
import { planHandoff, takenSockets, type HandoffPlan } from '../listeners/plan';
import { Retirer } from '../listeners/retirer';
import { closeAll } from '../protocol/connection';
import { MAX_WORKERS, type GetSockets, type HeldListener, type ListenerAddress, type SocketRef, type SurplusPolicy } from '../protocol/messages';
import { hotRestartVersion, optionsFromEnv, resolveOptions, type HotRestartOptions } from '../options';
import { ChildMachine } from './child';
import type { Transition } from './machine';
import { ParentMachine } from './parent';
import { StatusPipe } from './status';
import type { DrainController } from '../drain/controller';
import type { EngineMetrics } from '../stats/engine';
import { GenerationStats } from '../stats/generation-stats';
import type { PromClientRegistry } from '../stats/prom-client';
import type { StatsRegistry } from '../stats/registry';

export interface GenerationEvents {
  /** Every state change of either machine, with its timing. */
  transition: [Transition<string>];
  /**
   * Stop accepting new connections (the parent drains); the sockets stay
   * open. Listeners in `keep` (ones the child dropped) are still served,
   * until each socket is retired.
   */
  stopAccepting: [keep: Listener[]];
  /**
   * Accept: at takeOver() (not before, so that a handoff failing earlier has
   * accepted nothing it would drop), and again after stopAccepting when the
   * child that was taking over went away.
   */
  resumeAccepting: [];
  /** Ask open connections to close within `ms`. */
  drain: [ms: number];
  warning: [message: string];
  /** SIGUSR1 (which `baton run` forwards to every generation): reopen log files, as Envoy does. */
  reopenLogs: [];
}

export interface StartOptions extends Partial<HotRestartOptions> {
  /** Read BATON_* variables (as `baton run` sets them) under the given options. Default true. */
  env?: boolean;
  /** Exit the process once terminated by the child or shut down. Default true. */
  exitOnTerminate?: boolean;
}

export interface ListenOptions {
  /** An admin listener ('host:port' or a spec): GET /metrics in Prometheus text, handed over like the others. */
  admin?: ListenerSpec | string;
  /** prom-client registries whose metrics the admin listener appends to baton's. */
  promClient?: PromClientRegistry[];
}

type TerminateHook = () => Promise<void> | void;
type RetireHook = (entry: SocketEntry) => Promise<void> | void;

export class Generation extends EventEmitter<GenerationEvents> {
  readonly options: HotRestartOptions;
  readonly hotRestartVersion: string;
  private readonly metrics: GenerationStats;
  private readonly child: ChildMachine;
  private readonly parent: ParentMachine;
  private readonly status = new StatusPipe();
  private control?: ControlServer;
  private sockets?: ListenerSet;
  private readonly terminateHooks: TerminateHook[] = [];
  private readonly retireHooks: RetireHook[] = [];
  private retirer?: Retirer;
  /** What our child's request decided: what we close or release as we drain. */
  private handoff?: { plan: HandoffPlan; policy: SurplusPolicy; held: Listener[] };
  private readonly startedAt = performance.now();
  private acceptingNow = false;
  private stopping = false;

  private constructor(
    options: HotRestartOptions,
    private readonly exitOnTerminate: boolean,
  ) {
    super();
    this.options = options;
    this.hotRestartVersion = hotRestartVersion(options.compatibility);
    this.child = new ChildMachine({
      epoch: options.restartEpoch,
      hotRestartVersion: this.hotRestartVersion,
      allowedUids: options.allowedUids,
      handshakeTimeoutMs: options.handshakeTimeoutMs,
      requestTimeoutMs: options.requestTimeoutMs,
      parentShutdownMs: options.parentShutdownTimeS * 1000,
      onParentStats: (snapshot) => this.metrics.importParent(snapshot),
    });
    const child = this.child;
    const parentStats = { draining: () => child.is('drainingParent', 'terminatingParent'), pullStats: () => child.pullStats() };
    this.metrics = new GenerationStats(options.restartEpoch, options.drainStrategy, parentStats, (message) => this.warn(message));
    this.metrics.follow(this);
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
        sockets: (request) => this.handOut(request),
        // Our own parent, if it still drains, must know whether we accept (see ParentMachine).
        stopAccepting: () => {
          this.childTookOver();
          void this.child.reportAccepting(false);
        },
        resumeAccepting: () => {
          this.childWentAway();
          void this.child.reportAccepting(true);
        },
        drain: (ms) => this.emit('drain', ms),
        retired: (listener, index) => void this.closeRetired(listener, index),
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
      if (t.to === 'serving' && t.from !== 'notReady' && t.from !== 'draining' && t.from !== 'drained') {
        this.listenerSet.applySteering();
        this.retireSurplus();
      }
    });
    this.child.on('transition', (t) => {
      if (t.to === 'drainingParent') this.metrics.parentDraining();
      if (t.to !== 'serving') return;
      this.metrics.parentGone(t.from !== 'startingWorkers');
      this.clearSteeringOnceAlone();
    });
  }

  /**
   * Starts this generation: binds its control socket and, for epoch > 0,
   * connects to the parent and shakes hands. The parent keeps serving while
   * the application initializes after this returns.
   */
  static async start(given: StartOptions = {}): Promise<Generation> {
    const { env = true, exitOnTerminate = true, ...rest } = given;
    const options = resolveOptions({ ...(env ? optionsFromEnv() : {}), ...rest });
    const generation = new Generation(options, exitOnTerminate);
    try {
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

  get epoch(): number {
    return this.options.restartEpoch;
  }

  get baseId(): number {
    return this.options.baseId;
  }

  get childState() {
    return this.child.state;
  }

  get parentState() {
    return this.parent.state;
  }

  /** Whether this generation's workers should be accepting right now. */
  get accepting(): boolean {
    return this.acceptingNow;
  }

  get listenerSet(): ListenerSet {
    if (!this.sockets) throw new BatonError(ErrorCodes.INVALID_STATE, 'call listen() first');
    return this.sockets;
  }

  /**
   * Takes every listener x worker socket: the parent's, in one batched
   * request, and new ones for whatever the parent does not have.
   */
  async listen(specs: ListenerSpec[], workers: number, options: ListenOptions = {}): Promise<ListenerSet> {
    const admin = typeof options.admin === 'string' ? parseListen(options.admin) : options.admin;
    const listeners = resolveListeners(specs, admin);
    if (this.sockets) throw new BatonError(ErrorCodes.INVALID_STATE, 'listen() was already called');
    if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) throw invalidArgument(`workers must be 1..${MAX_WORKERS}`);
    const wanted = listeners.map((l) => ({ ...l.address, ipv6Only: l.ipv6Only, ...(l.role === 'admin' ? { sockets: 1 } : {}) }));
    const surplus = this.options.surplusSockets;
    const { fds, held } = await this.child.takeSockets({ listeners: wanted, workers, surplus });
    let plan: HandoffPlan | undefined;
    try {
      // The parent planned the same from the same figures: what it sent is checked against it.
      plan = planHandoff(held, wanted, workers, surplus);
      this.sockets = ListenerSet.assemble(listeners, workers, plan, fds); // on failure it has closed every fd
    } catch (error) {
      if (!plan) closeAll([...fds.values()].flatMap((byIndex) => [...byIndex.values()]));
      this.child.detach();
      throw error;
    }
    // A socket that never goes quiet (nobody serves it) is given up on with the drain, never sooner than the grace allows;
    // a server that does not let go of one gets a request's time, as the next child's getSockets waits for it.
    const deadlineMs = Math.max(this.options.drainTimeS * 1000, 2 * this.options.retireGraceMs);
    this.retirer = new Retirer(this.sockets, { graceMs: this.options.retireGraceMs, deadlineMs, letGoMs: this.options.requestTimeoutMs }, (entry) => this.runRetireHooks(entry));
    this.retirer.on('retired', (entry, waitedMs) => {
      this.status.report({ event: 'retired', listener: entry.listener.name, index: entry.index, waitedMs });
      this.engine.countSockets({ retired: 1 });
      void this.child.reportRetired(entry.listener.address, entry.index);
    });
    this.retirer.on('idle', () => this.clearSteeringOnceAlone());
    this.retirer.on('warning', (message) => this.warn(message));
    if (admin) this.metrics.serveAdmin(this.sockets, this.epoch, options.promClient);
    this.child.startingWorkers();
    return this.sockets;
  }

  /**
   * Our workers accept on every socket: the parent drains now and is
   * terminated after parentShutdownTimeS. From here on this generation can
   * be the parent of the next.
   */
  takeOver(): void {
    const set = this.listenerSet;
    const entries = set.entries();
    this.child.checkTakeOver(); // a parent that gave up on us keeps its groups as they are
    // Our new sockets join their groups after the adopted ones, in index order, and every group
    // gets our steering (or none) before anything is accepted.
    set.listenInOrder();
    set.applySteering();
    const parentStopped = this.child.takeOver(); // the parent stops accepting; its queues wait for our workers, a moment later
    this.setAccepting(true);
    this.parent.ready();
    this.retireSurplus();
    const inherited = entries.filter((e) => e.origin === 'inherited').length;
    this.engine.countSockets({ inherited, created: entries.length - inherited });
    void parentStopped.then(() => {
      if (this.child.is('drainingParent', 'terminatingParent')) this.engine.handoffCompleted((performance.now() - this.startedAt) / 1000);
      return this.metrics.parentStopped(() => this.acceptingNow);
    });
    this.status.report({
      event: 'takenOver',
      epoch: this.epoch,
      ms: Math.round(performance.now() - this.startedAt),
      inherited,
      created: entries.length - inherited,
      surplus: entries.filter((e) => e.surplus).length,
      tcpMigrateReq: tcpMigrateReq(),
    });
  }

  /**
   * Gives up before taking over: every fd of ours is closed and the parent,
   * which still holds its own, keeps serving as if we had never come.
   */
  async abandon(error: Error): Promise<void> {
    this.status.report({ event: 'failed', code: (error as BatonError).code ?? 'ERROR', message: error.message });
    this.child.detach();
    this.control?.close();
    this.sockets?.close();
    await this.status.close();
  }

  /**
   * Runs when a socket is about to be closed for good (a surplus one after a
   * decrease, or a listener the child dropped): resolve once nothing of the
   * application's accepts on it or reads it any more.
   */
  onRetire(hook: RetireHook): void {
    this.retireHooks.push(hook);
  }

  /** Runs before the sockets close at termination (workers closing their connections). */
  onTerminate(hook: TerminateHook): void {
    this.terminateHooks.push(hook);
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
    this.child.detach(); // a parent still draining takes the traffic back at once
    void this.retirer?.stop();
    this.setAccepting(false);
    // Without hot restart no child shares our sockets: they leave their groups now, so new connections go
    // to the generation started beside us (or are refused at once) instead of waiting in queues nobody accepts.
    if (this.options.disableHotRestart) {
      for (const entry of this.sockets?.fromTop(() => true) ?? []) void this.letGo(entry);
    }
    this.emit('drain', graceMs);
    await new Promise((resolve) => setTimeout(resolve, graceMs).unref());
    await this.parent.terminate(reason);
  }

  private async connect(): Promise<void> {
    const o = this.options;
    if (o.disableHotRestart) return this.child.connect(undefined);
    if (o.useDynamicBaseId) {
      o.baseId = freeBaseId(o.socketPath);
      this.status.report({ event: 'baseId', baseId: o.baseId });
    } else if (o.restartEpoch === 0 && liveEpochs(o.socketPath, o.baseId).length > 0) {
      throw new BatonError(
        ErrorCodes.BASE_ID_IN_USE,
        `base id ${o.baseId} at ${o.socketPath} is in use by a running instance; give this one another --base-id, or --use-dynamic-base-id`,
      );
    }
    if (o.baseIdPath) writeFileSync(o.baseIdPath, `${o.baseId}\n`);
    this.control = ControlServer.listen(controlAddress(o.socketPath, o.baseId, o.restartEpoch), o.socketMode);
    this.control.on('connection', (channel, peer) => this.parent.accept(channel, peer));
    this.control.on('error', (error) => this.warn(`control socket: ${error.message}`));
    await this.child.connect(o.restartEpoch > 0 ? controlAddress(o.socketPath, o.baseId, o.restartEpoch - 1) : undefined);
  }

  private setAccepting(accepting: boolean, keep: Listener[] = []): void {
    // Once shutting down, a child that goes away does not make us accept again.
    if (this.acceptingNow === accepting || (accepting && this.stopping)) return;
    this.acceptingNow = accepting;
    if (accepting) this.emit('resumeAccepting');
    else this.emit('stopAccepting', keep);
  }

  /** A child asks for our sockets: both sides plan from what we hold now. */
  private async handOut(request: GetSockets): Promise<{ refs: SocketRef[]; fds: number[]; held: HeldListener[] }> {
    await this.retirer?.stop(); // from here on, what the child may take stays
    const held = this.listenerSet.held();
    const plan = planHandoff(
      held.map((h) => h.held),
      request.listeners,
      request.workers,
      request.surplus,
    );
    this.handoff = { plan, policy: request.surplus, held: held.map((h) => h.listener) };
    const taken = takenSockets(plan);
    return {
      refs: taken.map(({ listener, index }) => ({ listener, index })),
      fds: taken.map(({ held: h, index }) => this.listenerSet.fd(held[h].listener.index, index)),
      held: held.map((h) => h.held),
    };
  }

  /**
   * The child serves and we drain. Listeners it dropped keep being served
   * until their queues are empty, with new handshakes refused; with Envoy's
   * policy they, and the surplus it left us, are closed at once.
   */
  private childTookOver(): void {
    void this.retirer?.stop();
    // A child that asked for nothing (it took no socket of ours) leaves us nothing to release or close.
    if (!this.handoff) return this.setAccepting(false);
    const { plan, policy, held } = this.handoff;
    const released = plan.released.map((i) => held[i]);
    const close = plan.listeners.flatMap((l) => l.closedByParent.map((index) => this.listenerSet.entry(held[l.held!].index, index)));
    const envoy = policy === 'close';
    this.setAccepting(false, envoy ? [] : released);
    if (released.length > 0) this.status.report({ event: 'released', listeners: released.map((l) => l.name) });
    for (const listener of released) {
      const entries = this.listenerSet.fromTop((e) => e.listener === listener);
      if (envoy) close.push(...entries);
      else {
        this.listenerSet.refuseNew(listener.index, true);
        this.retirer!.watch(entries);
      }
    }
    for (const entry of close) {
      // Our parent's copy goes too: a UDP socket is only gone once all have.
      void this.letGo(entry).then(async (gone) => {
        if (gone) await this.child.reportRetired(entry.listener.address, entry.index);
      });
    }
  }

  /** The child went away after we started draining: we serve everything we still hold, as before. */
  private childWentAway(): void {
    void this.retirer?.stop();
    for (const index of this.handoff?.plan.released ?? []) this.listenerSet.refuseNew(this.handoff!.held[index].index, false);
    this.handoff = undefined;
    this.listenerSet.applySteering();
    this.setAccepting(true);
    this.retireSurplus();
  }

  /** Our surplus sockets (after a decrease), highest index first. */
  private retireSurplus(): void {
    if (!this.retirer || !this.acceptingNow) return;
    void this.retirer.stop();
    this.retirer.watch(this.listenerSet.fromTop((e) => e.surplus));
  }

  /**
   * With no surplus left and no parent holding old sockets, the kernel's own
   * hash spreads over exactly ours. Only while no child of ours is on its
   * way: the groups' program is the newest generation's.
   */
  private clearSteeringOnceAlone(): void {
    if (!this.sockets || this.sockets.isClosed || !this.acceptingNow || !this.child.is('serving') || !this.parent.is('serving')) return;
    if (this.sockets.entries().some((e) => e.surplus)) return;
    this.sockets.clearSteering();
  }

  /** Our child retired a socket it took from us: our copy goes too, and our parent's, if it still drains. */
  private async closeRetired(address: ListenerAddress, index: number): Promise<void> {
    const name = listenerName(address);
    const entry = this.sockets?.entries().find((e) => e.listener.name === name && e.index === index);
    if (entry) await this.letGo(entry);
    await this.child.reportRetired(address, index);
  }

  /**
   * Our servers let go of a socket, then it closes: in that order, so that a
   * worker starting right now never dups an fd number closed under it.
   * Whether it went; a failure is a warning.
   */
  private async letGo(entry: SocketEntry): Promise<boolean> {
    try {
      await this.runRetireHooks(entry);
      this.sockets!.retire(entry);
      return true;
    } catch (error) {
      this.warn(`closing socket ${entry.index} of ${entry.listener.name}: ${(error as Error).message}`);
      return false;
    }
  }

  private async runRetireHooks(entry: SocketEntry): Promise<void> {
    for (const hook of this.retireHooks) await hook(entry);
  }

  /** Terminate hooks, then every fd this generation owns. */
  private async close(): Promise<void> {
    for (const hook of this.terminateHooks) {
      try {
        await hook();
      } catch (error) {
        this.warn(`terminate hook failed: ${(error as Error).message}`);
      }
    }
    void this.retirer?.stop();
    this.child.detach();
    this.control?.close();
    this.sockets?.close();
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
