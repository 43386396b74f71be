// This generation on its way to serving: it connects to its parent (unless it
// is epoch 0), initializes while the parent serves, takes the parent's
// sockets in one batch, starts accepting, then asks the parent to drain and,
// after parentShutdownTimeS, to terminate. Every wait has a deadline; a
// parent that goes away after we hold its sockets costs nothing.

import { BatonError, ErrorCodes, errorCodeOf } from '../errors';
import { Channel } from '../channel/channel';
import { connectControl, type ControlAddress } from '../channel/address';
import * as native from '../binding';
import { Connection, closeAll } from '../protocol/connection';
import { PROTOCOL_VERSION, type Accepting, type GetSockets, type HeldListener, type ListenerAddress, type Message, type Retired, type Sockets, type Stats } from '../protocol/messages';
import { joinSnapshots, type StatsSnapshot } from '../stats/snapshot';
import type { InheritedSockets } from '../listeners/listener-set';
import { listenerName } from '../listeners/spec';
import { StateMachine, type TransitionTable } from './machine';

export type ChildState =
  | 'connecting' // to the parent's control socket
  | 'handshaking' // hello sent, waiting for welcome
  | 'initializing' // the application prepares; the parent serves fully
  | 'takingSockets' // one batched request for every listener x worker
  | 'startingWorkers' // our workers start accepting on the sockets
  | 'drainingParent' // we serve; the parent drains until its shutdown time
  | 'terminatingParent' // terminate sent; waiting for the parent to close
  | 'serving' // we serve alone
  | 'failed'; // we never took over; the parent is untouched

const transitions: TransitionTable<ChildState> = {
  connecting: ['handshaking', 'initializing', 'failed'],
  handshaking: ['initializing', 'failed'],
  initializing: ['takingSockets', 'startingWorkers', 'failed'],
  takingSockets: ['startingWorkers', 'failed'],
  startingWorkers: ['drainingParent', 'serving', 'failed'],
  drainingParent: ['terminatingParent', 'serving'],
  terminatingParent: ['serving'],
  serving: [],
  failed: [],
};

export interface ChildOptions {
  epoch: number;
  hotRestartVersion: string;
  allowedUids: number[];
  handshakeTimeoutMs: number;
  requestTimeoutMs: number;
  parentShutdownMs: number;
  /** The parent's last stats, sent as it terminates (once its workers have stopped). */
  onParentStats?: (snapshot: StatsSnapshot) => void;
}

/** What the parent handed over: the fds, now ours, and everything it holds (to plan from). */
export interface Handover {
  fds: InheritedSockets;
  held: HeldListener[];
}

const NOTHING: Handover = { fds: new Map(), held: [] };

export class ChildMachine extends StateMachine<ChildState> {
  private parent?: Connection;
  private welcomed = false;
  /** Why the parent gave up on us, if it did: we fail rather than serve beside it. */
  private dropped?: BatonError;
  /** Parts of the parent's final stats received so far. */
  private finalStats: StatsSnapshot[] = [];
  /** The parent has sent final stats: a pull answered before them, but read after, is older. */
  private finalStatsIn = false;

  constructor(private readonly options: ChildOptions) {
    super('child', 'connecting', transitions);
  }

  get hasParent(): boolean {
    return this.parent !== undefined && !this.parent.isClosed;
  }

  /** Connects and shakes hands with generation epoch-1; epoch 0 goes straight to initializing. */
  async connect(address: ControlAddress | undefined): Promise<void> {
    if (!address) return this.to('initializing', 'no parent');
    try {
      const channel = new Channel(connectControl(address, this.options.epoch));
      const parent = native.peerCredentials(channel.fd);
      if (!this.options.allowedUids.includes(parent.uid)) {
        channel.close();
        throw new BatonError(ErrorCodes.PEER_REFUSED, `the process at ${address.display} (pid ${parent.pid}) runs as uid ${parent.uid}, not ${this.options.allowedUids.join(', ')}`);
      }
      this.parent = new Connection(channel);
      this.parent.on('close', () => this.onParentGone());
      this.parent.on('message', (message, fds) => {
        if (this.welcomed) this.onParentMessage(message, fds); // before that, the handshake reads them
      });
      this.to('handshaking', `parent pid ${parent.pid}`);
      await this.handshake(this.parent);
      this.to('initializing');
    } catch (error) {
      this.detach();
      throw error;
    }
  }

  /** Asks for all sockets in one request; the answer may span several records. */
  async takeSockets(request: Omit<GetSockets, 'type' | 'id'>): Promise<Handover> {
    if (this.dropped) throw this.dropped;
    this.to('takingSockets');
    if (!this.hasParent) return NOTHING;
    try {
      const { reply, fds } = await this.parent!.request({ type: 'getSockets', ...request }, this.options.requestTimeoutMs);
      return byListener(reply as Sockets, fds, request.listeners.length);
    } catch (error) {
      // A parent that died has nothing left to hand over: we survive it and serve on new sockets.
      if ((error as BatonError).code === ErrorCodes.CHANNEL_CLOSED && !this.dropped) return NOTHING;
      this.detach();
      throw this.dropped ?? error;
    }
  }

  startingWorkers(): void {
    this.to('startingWorkers');
  }

  /** Throws if the parent gave up on us: checked before anything is done to the shared sockets. */
  checkTakeOver(): void {
    if (this.dropped) throw this.dropped;
  }

  /**
   * Our workers accept: the parent drains now and is terminated after
   * parentShutdownMs. Resolves once the parent has stopped accepting (or
   * did not confirm it within requestTimeoutMs).
   */
  takeOver(): Promise<void> {
    if (this.dropped) throw this.dropped;
    if (!this.hasParent) {
      this.to('serving', 'no parent');
      return Promise.resolve();
    }
    this.to('drainingParent');
    this.expire(this.options.parentShutdownMs, () => this.terminateParent());
    return this.parent!.request({ type: 'drain' }, this.options.requestTimeoutMs).then(
      () => undefined,
      (error: Error) => void this.emit('warning', `the parent did not confirm the drain: ${error.message}`),
    );
  }

  /** The stats of a parent that still drains; undefined without one, when it does not answer, or once its last have come (unasked). */
  async pullStats(): Promise<StatsSnapshot | undefined> {
    if (!this.is('drainingParent') || !this.hasParent) return undefined;
    try {
      const { parts } = await this.parent!.request({ type: 'getStats' }, this.options.requestTimeoutMs);
      if (this.finalStatsIn) return undefined;
      return joinSnapshots(parts.map((p) => (p as Stats).snapshot as unknown as StatsSnapshot));
    } catch (error) {
      this.emit('warning', `the parent's stats did not come: ${(error as Error).message}`);
      return undefined;
    }
  }

  /** Asks the parent to exit now instead of at its shutdown time. */
  terminateParent(): void {
    if (!this.is('drainingParent')) return;
    this.to('terminatingParent');
    this.parent!.request({ type: 'terminate' }, this.options.requestTimeoutMs).catch(() => undefined);
    // The parent closes the channel as it exits; one that does not is cut off.
    this.expire(this.options.requestTimeoutMs, () => this.parent?.close());
  }

  /** Tells a parent that still drains whether we accept: not once a child of ours has taken over. */
  reportAccepting(accepting: boolean): Promise<void> {
    return this.tellDrainingParent({ type: 'accepting', accepting }, `that we ${accepting ? 'accept again' : 'stopped accepting'}`);
  }

  /** Tells a parent that still drains that we retired one of the sockets it gave us, so that it closes its copy. */
  reportRetired(listener: ListenerAddress, index: number): Promise<void> {
    return this.tellDrainingParent({ type: 'retired', listener, index }, `that it closed socket ${index} of ${listenerName(listener)}`);
  }

  /** A request to a parent that still drains; one that does not confirm `what` is a warning. */
  private async tellDrainingParent(request: Omit<Accepting, 'id'> | Omit<Retired, 'id'>, what: string): Promise<void> {
    if (!this.is('drainingParent', 'terminatingParent') || !this.hasParent) return;
    try {
      await this.parent!.request(request, this.options.requestTimeoutMs);
    } catch (error) {
      this.emit('warning', `the parent did not confirm ${what}: ${(error as Error).message}`);
    }
  }

  /**
   * Lets go of the parent: before taking over this fails the handoff, and a
   * parent that was draining accepts again. Either way the parent serves.
   */
  detach(): void {
    if (this.can('failed')) this.to('failed');
    this.parent?.close();
  }

  private handshake(parent: Connection): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        settle(new BatonError(ErrorCodes.TIMEOUT, `the parent sent no welcome within ${this.options.handshakeTimeoutMs} ms`));
      }, this.options.handshakeTimeoutMs);
      const onMessage = (message: Message, fds: number[]) => {
        closeAll(fds);
        if (message.type === 'welcome') {
          if (message.protocol !== PROTOCOL_VERSION || message.hotRestartVersion !== this.options.hotRestartVersion) {
            return settle(new BatonError(ErrorCodes.VERSION_MISMATCH, `the parent runs protocol ${message.protocol}, hot restart version '${message.hotRestartVersion}'; this generation runs ${PROTOCOL_VERSION}, '${this.options.hotRestartVersion}'`));
          }
          this.welcomed = true;
          return settle();
        }
        if (message.type === 'refused') return settle(new BatonError(errorCodeOf(message.code), `the parent refused this generation: ${message.message}`));
        settle(new BatonError(ErrorCodes.PROTOCOL, `expected welcome from the parent, got ${message.type}`));
      };
      const onClose = () => settle(new BatonError(ErrorCodes.CHANNEL_CLOSED, 'the parent closed the control channel during the handshake'));
      const settle = (error?: Error) => {
        clearTimeout(timer);
        parent.off('message', onMessage).off('close', onClose);
        if (error) reject(error);
        else resolve();
      };
      parent.on('message', onMessage).on('close', onClose);
      parent.send({ type: 'hello', protocol: PROTOCOL_VERSION, hotRestartVersion: this.options.hotRestartVersion, epoch: this.options.epoch, pid: process.pid });
    });
  }

  /** What the parent sends unasked once we are welcome: a refusal when it gives up on us, its final stats as it terminates. */
  private onParentMessage(message: Message, fds: number[]): void {
    closeAll(fds);
    if (message.type === 'stats' && message.final) return this.onFinalStats(message);
    if (message.type !== 'refused') return void this.emit('warning', `the parent sent an unexpected ${message.type}`);
    if (this.is('drainingParent', 'terminatingParent')) {
      // Our drain crossed its refusal; it honours the drain, and we serve.
      return void this.emit('warning', `the parent gave up on us as we asked it to drain (${message.message}); it drains all the same`);
    }
    this.dropped = new BatonError(errorCodeOf(message.code), `the parent gave up on this generation: ${message.message}`);
    if (this.can('failed')) this.to('failed', message.message);
    this.parent?.close();
  }

  /** The parent's last stats, in parts; what cannot be read is a warning, never a failure of ours. */
  private onFinalStats(message: Stats): void {
    if (!this.is('drainingParent', 'terminatingParent') || message.part !== this.finalStats.length) {
      this.finalStats = [];
      return void this.emit('warning', `the parent sent stats part ${message.part} of ${message.parts} unexpectedly (we are ${this.state}): ignored`);
    }
    this.finalStats.push(message.snapshot as unknown as StatsSnapshot);
    if (this.finalStats.length < message.parts) return;
    const parts = this.finalStats.splice(0);
    this.finalStatsIn = true;
    try {
      this.options.onParentStats?.(joinSnapshots(parts));
    } catch (error) {
      this.emit('warning', `the parent's final stats were refused: ${(error as Error).message}`);
    }
  }

  private onParentGone(): void {
    if (this.is('drainingParent', 'terminatingParent')) this.to('serving', 'parent exited');
    else if (this.is('initializing', 'takingSockets', 'startingWorkers')) {
      this.emit('warning', `the parent went away during our ${this.state}: going on without it`);
    }
  }
}

function byListener(reply: Sockets, fds: number[], listeners: number): Handover {
  const result: InheritedSockets = new Map();
  reply.sockets.forEach((ref, i) => {
    if (ref.listener >= listeners || result.get(ref.listener)?.has(ref.index)) {
      closeAll(fds);
      throw new BatonError(ErrorCodes.PROTOCOL, `the parent sent socket ${JSON.stringify(ref)} that was not asked for`);
    }
    if (!result.has(ref.listener)) result.set(ref.listener, new Map());
    result.get(ref.listener)!.set(ref.index, fds[i]);
  });
  return { fds: result, held: reply.held };
}
