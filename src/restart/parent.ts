// This generation as the parent of the next one. It serves fully until the
// child asks it to drain; a child that fails, times out or disconnects before
// then changes nothing, and one that goes away during the drain makes it
// accept again. Only one child at a time; everything else is refused with a
// reason the refused peer can print.

import { BatonError, ErrorCodes, type ErrorCode } from '../errors';
import type { Channel } from '../channel/channel';
import type { Credentials } from '../binding';
import { Connection, closeAll } from '../channel/connection';
import {
  PROTOCOL_VERSION,
  socketsRecords,
  type GetSockets,
  type HeldListener,
  type ListenerAddress,
  type Message,
  type SocketRef,
} from '../protocol/messages';
import { StateMachine, type TransitionTable } from './machine';
import { PeerWarnings } from './peer-warnings';

export type ParentState =
  | 'notReady' // this generation has not taken over yet: it cannot have a child
  | 'serving' // accepting, no child
  | 'handshaking' // a child connected; waiting for its hello
  | 'childInitializing' // hello accepted; the child initializes, we keep serving
  | 'childTakingOver' // the child has our sockets; we keep serving until it asks us to drain
  | 'draining' // stopped accepting; open connections are asked to close
  | 'drained' // drain time is over; waiting for the child's terminate (skipped when the shutdown time comes first)
  | 'terminating' // closing everything
  | 'terminated';

const transitions: TransitionTable<ParentState> = {
  notReady: ['serving', 'terminating'],
  serving: ['handshaking', 'terminating'],
  handshaking: ['childInitializing', 'serving', 'terminating'],
  childInitializing: ['childTakingOver', 'draining', 'serving', 'terminating'], // draining: a child with no listeners needs no sockets
  childTakingOver: ['draining', 'serving', 'terminating'],
  draining: ['drained', 'serving', 'terminating'],
  drained: ['serving', 'terminating'],
  terminating: ['terminated'],
  terminated: [],
};

export interface ParentHooks {
  /** The sockets the child's request takes (fds stay ours), and every listener we hold. */
  sockets(request: GetSockets): Promise<{ refs: SocketRef[]; fds: number[]; held: HeldListener[] }>;
  /** The child asked us to drain: stop accepting, except on what it did not take. */
  stopAccepting(): void;
  /** The child went away during our drain: accept again (`reason` says how it went). */
  resumeAccepting(reason: string): void;
  /** Open connections should close within `ms`. */
  drain(ms: number): void;
  /** The child retired this socket of the ones it took: close ours. */
  retired(listener: ListenerAddress, index: number): void;
  /** Our stats, in records of at most one message each (the child pulls them while we drain). */
  stats(): Array<Record<string, unknown>>;
  /** Close everything; called once. */
  terminate(): Promise<void>;
  /** Something worth an operator's attention that changes nothing. */
  warn(message: string): void;
}

export interface ParentOptions {
  epoch: number;
  hotRestartVersion: string;
  allowedUids: number[];
  handshakeTimeoutMs: number;
  childInitTimeoutMs: number;
  drainMs: number;
  /** From the start of the drain to termination, should the child not ask for it (parentShutdownTimeS). */
  shutdownMs: number;
}

export class ParentMachine extends StateMachine<ParentState> {
  /** `accepting`: false once the child has handed over to a child of its own. */
  private child?: { connection: Connection; pid: number; accepting: boolean };
  private childDeadline = 0;
  private readonly peerWarnings: PeerWarnings;

  constructor(
    private readonly options: ParentOptions,
    private readonly hooks: ParentHooks,
  ) {
    super('parent', 'notReady', transitions);
    this.peerWarnings = new PeerWarnings((message) => hooks.warn(message));
  }

  /** This generation has taken over: from now on it may have a child. */
  ready(): void {
    if (this.is('notReady')) this.to('serving');
  }

  /** A peer connected to our control socket. */
  accept(channel: Channel, peer: Credentials): void {
    const connection = new Connection(channel);
    const refusal = this.refusal(peer);
    if (refusal) return this.refuse(connection, peer.pid, refusal.code, refusal.message);

    this.child = { connection, pid: peer.pid, accepting: true };
    this.to('handshaking', `pid ${peer.pid}`);
    this.expire(this.options.handshakeTimeoutMs, () =>
      this.dropChild(`child pid ${peer.pid} sent no hello within ${this.options.handshakeTimeoutMs} ms`),
    );
    connection.on('message', (message, fds) => this.onMessage(connection, message, fds));
    connection.on('protocolError', (error) => this.peerWarnings.report(peer.pid, `child pid ${peer.pid}: ${error.message}`));
    connection.on('close', () => this.onChildGone(connection));
  }

  /**
   * Stop now, whatever the child does (our own shutdown). A child that took
   * over gets our final stats twice: now, and once everything of ours has
   * stopped (should it not wait that long, it has the first); then the
   * channel closes.
   */
  async terminate(reason: string): Promise<void> {
    if (this.is('terminating', 'terminated')) return;
    const connection = this.is('draining', 'drained') ? this.child?.connection : undefined;
    this.to('terminating', reason);
    this.peerWarnings.flush();
    this.pushFinalStats(connection);
    try {
      await this.hooks.terminate();
    } catch (error) {
      this.hooks.warn(`terminating: ${(error as Error).message}`);
    }
    this.pushFinalStats(connection);
    this.child?.connection.end(); // after the terminate ack, if that is what we answered
    this.to('terminated');
  }

  private pushFinalStats(connection: Connection | undefined): void {
    if (!connection || connection.isClosed) return;
    try {
      this.sendStats(connection, { final: true });
    } catch (error) {
      this.hooks.warn(`our final stats could not be sent: ${(error as Error).message}`);
    }
  }

  private refusal(peer: Credentials): { code: ErrorCode; message: string } | undefined {
    if (!this.options.allowedUids.includes(peer.uid)) {
      return {
        code: ErrorCodes.PEER_REFUSED,
        message: `peer pid ${peer.pid} runs as uid ${peer.uid}; generation ${this.options.epoch} accepts only uid ${this.options.allowedUids.join(', ')}`,
      };
    }
    if (!this.is('serving')) {
      return {
        code: ErrorCodes.PARENT_BUSY,
        message: this.child
          ? `generation ${this.options.epoch} is already handing over to pid ${this.child.pid}; restart again once that one has taken over`
          : `generation ${this.options.epoch} is ${this.state}, not serving: restart from the newest generation`,
      };
    }
    return undefined;
  }

  private onMessage(connection: Connection, message: Message, fds: number[]): void {
    closeAll(fds); // requests never carry fds; decode() has refused any that do
    try {
      this.handle(connection, message);
    } catch (error) {
      answerError(connection, 'id' in message ? message.id : undefined, error as BatonError);
    }
  }

  private handle(connection: Connection, message: Message): void {
    switch (message.type) {
      case 'hello':
        return this.onHello(connection, message.protocol, message.hotRestartVersion, message.epoch);
      case 'getSockets':
        this.require('getSockets', 'childInitializing', 'childTakingOver');
        return void this.onGetSockets(connection, message).catch((error: BatonError) => answerError(connection, message.id, error));
      case 'drain':
        this.require('drain', 'childInitializing', 'childTakingOver');
        this.to('draining', `asked by child pid ${this.child?.pid}`);
        this.expireDraining(); // first: the deadlines hold whatever the hooks do
        this.hooks.stopAccepting();
        this.hooks.drain(this.options.drainMs);
        return connection.send({ type: 'ack', re: message.id });
      case 'getStats':
        this.require('getStats', 'draining', 'drained');
        return this.sendStats(connection, { re: message.id });
      case 'retired':
        this.require('retired', 'draining', 'drained');
        this.hooks.retired(message.listener, message.index);
        return connection.send({ type: 'ack', re: message.id });
      case 'accepting':
        this.require('accepting', 'draining', 'drained');
        this.child!.accepting = message.accepting;
        return connection.send({ type: 'ack', re: message.id });
      case 'terminate':
        this.require('terminate', 'draining', 'drained');
        connection.send({ type: 'ack', re: message.id });
        void this.terminate(`asked by child pid ${this.child?.pid}`);
        return;
      default:
        throw new BatonError(ErrorCodes.PROTOCOL, `a child does not send ${message.type}`);
    }
  }

  private onHello(connection: Connection, protocol: number, version: string, epoch: number): void {
    this.require('hello', 'handshaking');
    const mismatch =
      protocol !== PROTOCOL_VERSION
        ? `protocol ${protocol}, this generation speaks ${PROTOCOL_VERSION}`
        : version !== this.options.hotRestartVersion
          ? `hot restart version '${version}', this generation runs '${this.options.hotRestartVersion}'`
          : epoch <= this.options.epoch // any later one: the epochs after a failed start or a rollback skip numbers
            ? `restart epoch ${epoch} is not after this generation's, ${this.options.epoch}`
            : undefined;
    if (mismatch) {
      const code = protocol !== PROTOCOL_VERSION || version !== this.options.hotRestartVersion ? ErrorCodes.VERSION_MISMATCH : ErrorCodes.PROTOCOL;
      const { pid } = this.child!;
      this.child = undefined;
      this.refuse(connection, pid, code, `incompatible child: ${mismatch}; stop all generations for a cold restart, or run compatible builds`);
      this.to('serving', mismatch);
      return;
    }
    connection.send({
      type: 'welcome',
      protocol: PROTOCOL_VERSION,
      hotRestartVersion: this.options.hotRestartVersion,
      epoch: this.options.epoch,
      pid: process.pid,
    });
    this.to('childInitializing');
    this.childDeadline = performance.now() + this.options.childInitTimeoutMs;
    this.expire(this.options.childInitTimeoutMs, () =>
      this.dropChild(`child pid ${this.child?.pid} did not take over within ${this.options.childInitTimeoutMs} ms`),
    );
  }

  private async onGetSockets(connection: Connection, request: GetSockets): Promise<void> {
    const { refs, fds, held } = await this.hooks.sockets(request);
    // The child may have gone, or misbehaved, while we waited (for a socket on its way out).
    if (this.child?.connection !== connection || !this.is('childInitializing', 'childTakingOver')) return;
    const records = socketsRecords(request.id, refs, held);
    let sent = 0;
    for (const record of records) {
      connection.send(record, fds.slice(sent, sent + record.sockets.length));
      sent += record.sockets.length;
    }
    if (this.is('childInitializing')) {
      this.to('childTakingOver', `${fds.length} sockets in ${records.length} records`);
      // One deadline from hello to drain, not one per step: the supervisor counts the same time.
      this.expire(Math.max(0, this.childDeadline - performance.now()), () =>
        this.dropChild(`child pid ${this.child?.pid} took sockets but did not ask to drain within ${this.options.childInitTimeoutMs} ms`),
      );
    }
  }

  private sendStats(connection: Connection, how: { re: number } | { final: true }): void {
    const parts = this.hooks.stats();
    parts.forEach((snapshot, part) => connection.send({ type: 'stats', ...how, part, parts: parts.length, snapshot }));
  }

  /**
   * The child terminates us at its shutdown time, counted from the drain's
   * start whatever the drain time (Envoy's); should it not (it went away),
   * we go at ours, the same: a drain longer than that is cut short.
   */
  private expireDraining(): void {
    const { shutdownMs, drainMs } = this.options;
    if (shutdownMs <= drainMs) this.expire(shutdownMs, () => this.onShutdownTime());
    else this.expire(drainMs, () => this.onDrained());
  }

  private onDrained(): void {
    this.to('drained');
    this.expire(this.options.shutdownMs - this.options.drainMs, () => this.onShutdownTime());
  }

  private onShutdownTime(): void {
    void this.terminate(`parent shutdown time (${this.options.shutdownMs} ms) is over`);
  }

  private require(what: string, ...states: ParentState[]): void {
    if (!this.is(...states)) {
      throw new BatonError(ErrorCodes.INVALID_STATE, `${what} is not expected while the parent is ${this.state}`);
    }
  }

  /** Gives up on a child that is too slow: it is told why, so that it fails rather than serve beside us. */
  private dropChild(reason: string): void {
    if (!this.child) return;
    if (!this.is('childTakingOver')) return this.refuse(this.child.connection, this.child.pid, ErrorCodes.TIMEOUT, reason);
    // It holds our sockets and may have asked to drain as we gave up: a drain that crossed the
    // refusal is honoured (it serves already). Otherwise it fails and closes, or is cut off.
    const { connection } = this.child;
    this.hooks.warn(`gave up on a child: ${reason}`);
    connection.send({ type: 'refused', code: ErrorCodes.TIMEOUT, message: reason });
    this.expire(this.options.handshakeTimeoutMs, () => connection.close());
  }

  /** Tells a peer why it is turned away, and closes once that is sent. */
  private refuse(connection: Connection, pid: number, code: ErrorCode, message: string): void {
    this.peerWarnings.report(pid, `refused a child: ${message}`);
    connection.send({ type: 'refused', code, message });
    connection.end();
  }

  private onChildGone(connection: Connection): void {
    if (this.child?.connection !== connection) return;
    const { pid, accepting } = this.child;
    this.child = undefined;
    if (this.is('terminating', 'terminated')) return;
    if (this.is('draining', 'drained')) {
      // Its own child serves: accepting again would serve old code beside it.
      if (!accepting) return this.hooks.warn(`child pid ${pid} went away after its own child took over: draining on to our shutdown time`);
      this.hooks.resumeAccepting(`child pid ${pid} went away during our drain`);
    }
    if (!this.is('serving')) this.to('serving', `child pid ${pid} went away`);
  }
}

/** A request we could not serve is answered with why (a record we could not read, without re). */
function answerError(connection: Connection, re: number | undefined, error: BatonError): void {
  connection.send({ type: 'error', ...(re === undefined ? {} : { re }), code: error.code ?? ErrorCodes.PROTOCOL, message: error.message });
}

