// One process's part in a hot restart: a child of the previous generation
// until it has taken over, then the parent of the next. It owns the control
// socket, the listener set and both state machines, and tells whoever serves
// the sockets (the worker pool, or the application's own workers) when to
// stop, resume, drain and terminate.

import { EventEmitter } from 'node:events';
import { writeFileSync } from 'node:fs';
import { BatonError, ErrorCodes } from '../errors';
import { controlAddress, freeBaseId, liveEpochs } from '../channel/address';
import { ControlServer } from '../channel/server';
import { ListenerSet, resolveListeners, type ListenerSpec } from '../listeners/listener-set';
import { hotRestartVersion, optionsFromEnv, resolveOptions, type HotRestartOptions } from '../options';
import { ChildMachine } from './child';
import type { Transition } from './machine';
import { ParentMachine } from './parent';
import { StatusPipe } from './status';

export interface GenerationEvents {
  /** Every state change of either machine, with its timing. */
  transition: [Transition<string>];
  /** Stop accepting new connections (the parent drains); the sockets stay open. */
  stopAccepting: [];
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

type TerminateHook = () => Promise<void> | void;

export class Generation extends EventEmitter<GenerationEvents> {
  readonly options: HotRestartOptions;
  readonly hotRestartVersion: string;
  private readonly child: ChildMachine;
  private readonly parent: ParentMachine;
  private readonly status = new StatusPipe();
  private control?: ControlServer;
  private sockets?: ListenerSet;
  private readonly terminateHooks: TerminateHook[] = [];
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
    });
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
        sockets: (addresses, workers) => this.listenerSet.lookup(addresses, workers),
        // Our own parent, if it still drains, must know whether we accept (see ParentMachine).
        stopAccepting: () => {
          this.setAccepting(false);
          void this.child.reportAccepting(false);
        },
        resumeAccepting: () => {
          this.setAccepting(true);
          void this.child.reportAccepting(true);
        },
        drain: (ms) => this.emit('drain', ms),
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
  async listen(specs: ListenerSpec[], workers: number): Promise<ListenerSet> {
    const listeners = resolveListeners(specs);
    if (this.sockets) throw new BatonError(ErrorCodes.INVALID_STATE, 'listen() was already called');
    const indexes = Array.from({ length: workers }, (_, i) => i);
    const inherited = await this.child.takeSockets(
      listeners.map((l) => l.address),
      indexes,
    );
    try {
      this.sockets = ListenerSet.assemble(listeners, workers, inherited);
    } catch (error) {
      this.child.detach();
      throw error;
    }
    this.child.startingWorkers();
    return this.sockets;
  }

  /**
   * Our workers accept on every socket: the parent drains now and is
   * terminated after parentShutdownTimeS. From here on this generation can
   * be the parent of the next.
   */
  takeOver(): void {
    const entries = this.listenerSet.entries();
    this.child.takeOver(); // the parent stops accepting; its queues wait for our workers, a moment later
    this.setAccepting(true);
    this.parent.ready();
    this.status.report({
      event: 'takenOver',
      epoch: this.epoch,
      ms: Math.round(performance.now() - this.startedAt),
      inherited: entries.filter((e) => e.origin === 'inherited').length,
      created: entries.filter((e) => e.origin === 'created').length,
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

  /** Runs before the sockets close at termination (workers closing their connections). */
  onTerminate(hook: TerminateHook): void {
    this.terminateHooks.push(hook);
  }

  /** Stops this generation: no more accepting, open connections drained for up to `graceMs`, then terminated. */
  async shutdown(reason: string, graceMs: number): Promise<void> {
    if (this.stopping || this.parent.is('terminating', 'terminated')) return;
    this.stopping = true;
    this.child.detach(); // a parent still draining takes the traffic back at once
    this.setAccepting(false);
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

  private setAccepting(accepting: boolean): void {
    // Once shutting down, a child that goes away does not make us accept again.
    if (this.acceptingNow === accepting || (accepting && this.stopping)) return;
    this.acceptingNow = accepting;
    this.emit(accepting ? 'resumeAccepting' : 'stopAccepting');
  }

  private warn(message: string): void {
    this.emit('warning', message);
    this.status.report({ event: 'warning', message });
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
    this.child.detach();
    this.control?.close();
    this.sockets?.close();
  }
}
