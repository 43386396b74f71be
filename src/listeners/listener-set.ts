// The sockets of one generation: for every listener and socket index, the one
// "master" fd this process owns. Workers serve dups of it; the parent's
// copy is what goes to the child; it is closed exactly once, by retire() or
// close(). It also holds each group's steering program.

import * as native from '../binding';
import { BatonError, ErrorCodes } from '../errors';
import { integerIn } from '../validate';
import type { HeldListener } from '../protocol/messages';
import { MAX_WORKERS } from '../protocol/messages';
import type { HandoffPlan } from './plan';
import type { Listener } from './spec';
import { refuseNewHandshakes, steerToFirst } from './steering';

/** Per listener (the child's index), per socket index: an fd handed over by the parent. */
export type InheritedSockets = Map<number, Map<number, number>>;

export type Origin = 'inherited' | 'created';

/** One socket of a generation: listener x index, and the worker that serves it (Follower.retire's argument). */
export interface SocketEntry {
  /** The listener it belongs to. */
  listener: Listener;
  /** Its position in the listener's SO_REUSEPORT group. */
  index: number;
  /** The worker that accepts on it: `index`, or for a surplus socket `index % workers`. */
  worker: number;
  /** The main thread's fd; workers serve dups of it. Closed by the generation, never by a follower. */
  fd: number;
  /** 'inherited' from the parent, or 'created' by this generation. */
  origin: Origin;
  /** Past our worker count: served, steered away from, and retired once its queue stays empty. */
  surplus: boolean;
}

export class ListenerSet {
  /** Per listener, by index. */
  private readonly sockets = new Map<number, Map<number, SocketEntry>>();
  /** Per listener: steer new traffic to the first N sockets, or leave the kernel's hash (null). */
  private readonly steering = new Map<number, number | null>();
  private closed = false;

  private constructor(
    readonly listeners: Listener[],
    readonly workers: number,
  ) {}

  /**
   * Adopts what the plan takes from the parent and creates the rest. Each
   * adopted fd is checked to be the socket it claims to be; on any failure
   * every fd is closed and the parent, which still holds its own, is
   * unaffected.
   */
  static assemble(listeners: Listener[], workers: number, plan: HandoffPlan, inherited: InheritedSockets): ListenerSet {
    integerIn(workers, 'workers', 1, MAX_WORKERS);
    const set = new ListenerSet(listeners, workers);
    const unclaimed = new Set([...inherited.values()].flatMap((byIndex) => [...byIndex.values()]));
    try {
      for (const { listener: i, sockets, steerTo } of plan.listeners) {
        const listener = listeners[i];
        set.steering.set(i, steerTo);
        set.keepTrafficOffNew(listener, inherited.get(i));
        for (const { index, action, worker } of sockets) {
          if (action === 'create') {
            set.add({ listener, index, worker, fd: createSocket(listener), origin: 'created', surplus: false });
            continue;
          }
          const fd = inherited.get(i)?.get(index);
          if (fd === undefined) throw new BatonError(ErrorCodes.PROTOCOL, `the parent did not hand over socket ${index} of ${listener.name}`);
          unclaimed.delete(fd);
          set.add({ listener, index, worker, fd, origin: 'inherited', surplus: action === 'surplus' });
          checkSocket(listener, fd);
        }
      }
    } catch (error) {
      for (const fd of unclaimed) native.close(fd);
      set.close();
      throw error;
    }
    if (unclaimed.size > 0) {
      for (const fd of unclaimed) native.close(fd);
      set.close();
      throw new BatonError(ErrorCodes.PROTOCOL, `the parent handed over ${unclaimed.size} sockets that were not asked for`);
    }
    return set;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  entries(): SocketEntry[] {
    return [...this.sockets.values()].flatMap((byIndex) => [...byIndex.values()]);
  }

  /** The sockets that match, highest index first: the order they are retired in, which keeps each group's order. */
  fromTop(match: (entry: SocketEntry) => boolean): SocketEntry[] {
    return this.entries()
      .filter(match)
      .sort((a, b) => b.index - a.index);
  }

  /** The sockets one worker accepts on: its own, plus surplus ones (the admin listener's are the generation's). */
  servedBy(worker: number): SocketEntry[] {
    return this.entries().filter((e) => e.worker === worker && e.listener.role === 'workers');
  }

  /** Whether the entry is still one of ours (not retired, not closed). */
  holds(entry: SocketEntry): boolean {
    return !this.closed && this.sockets.get(entry.listener.index)?.get(entry.index) === entry;
  }

  entry(listener: number, index: number): SocketEntry {
    const entry = this.sockets.get(listener)?.get(index);
    if (!entry || this.closed) throw new BatonError(ErrorCodes.INVALID_STATE, `no socket ${index} for listener ${listener}`);
    return entry;
  }

  fd(listener: number, index: number): number {
    return this.entry(listener, index).fd;
  }

  /** A new fd for socket `index` of `listener`, owned by the caller: give it to net/http/dgram. */
  dup(listener: number, index: number): number {
    return native.dup(this.fd(listener, index));
  }

  /** What this generation can hand to a child: per listener with sockets, how many (indexes 0..n-1). */
  held(): Array<{ listener: Listener; held: HeldListener }> {
    return this.listeners.flatMap((listener) => {
      // Retiring goes from the highest index down, so what stays is 0..n-1.
      const sockets = this.sockets.get(listener.index)?.size ?? 0;
      return sockets === 0 ? [] : [{ listener, held: { ...listener.address, ipv6Only: listener.ipv6Only, sockets } }];
    });
  }

  /**
   * TCP sockets listen in index order, which is the order of the group: a
   * steering program picks sockets by position. Listening again only updates
   * the backlog of a socket that already does.
   */
  listenInOrder(): void {
    for (const listener of this.listeners) {
      if (listener.address.protocol !== 'tcp') continue;
      const byIndex = [...(this.sockets.get(listener.index)?.values() ?? [])].sort((a, b) => a.index - b.index);
      for (const entry of byIndex) native.listen(entry.fd, listener.backlog);
    }
  }

  /**
   * Sets or clears every listener's steering program, as planned: a group
   * never keeps another generation's. With no surplus, a TCP group needs
   * none: the kernel's hash spreads over exactly our sockets. A UDP group is
   * steered to ours all the same, since a child's new socket joins it as it
   * is bound and must take no datagram unless that child takes over (one
   * that fails, or that we give up on, may hold it a while yet).
   */
  applySteering(): void {
    for (const [listener, planned] of this.steering) {
      const ours = this.sockets.get(listener);
      const first = ours?.values().next().value;
      if (!first) continue;
      const steerTo = planned ?? (first.listener.address.protocol === 'udp' ? ours!.size : null);
      if (steerTo !== null) native.attachBpf(first.fd, 'reuseport', steerToFirst(steerTo));
      else detach(first.fd, 'reuseport');
    }
  }

  /** Steer `listener`'s group to our own sockets only (a child's are in it too); applied by applySteering. */
  steerToOwn(listener: number): void {
    // Our surplus (after a decrease of our own) is on its way out: not to be steered to either.
    const ours = [...(this.sockets.get(listener)?.values() ?? [])].filter((e) => !e.surplus).length;
    if (ours > 0) this.steering.set(listener, ours);
  }

  /** No more steering once no surplus is left (see applySteering). */
  clearSteering(): void {
    for (const listener of this.steering.keys()) this.steering.set(listener, null);
    this.applySteering();
  }

  /**
   * A TCP listener being released takes no new handshakes while it serves
   * what it has queued (the client's retried SYN finds the listener that
   * replaces it, if any). A UDP one keeps answering: refused datagrams would
   * be lost, even ones meant for a socket that replaces it (a new group for a
   * changed ipv6Only, or the listener added back), as the kernel picks the
   * older socket first; it goes once its queue is empty (see Retirer).
   */
  refuseNew(listener: number, refuse: boolean): void {
    for (const entry of this.sockets.get(listener)?.values() ?? []) {
      if (entry.listener.address.protocol !== 'tcp') continue;
      if (refuse) native.attachBpf(entry.fd, 'socket', refuseNewHandshakes());
      else detach(entry.fd, 'socket');
    }
  }

  /** What waits in a socket: queued connections (TCP) or bytes of datagrams (UDP). */
  queued(entry: SocketEntry): number {
    const info = native.socketInfo(entry.fd);
    return entry.listener.address.protocol === 'tcp' ? info.acceptQueue : info.receiveQueueBytes;
  }

  /**
   * A UDP socket about to be retired takes no more datagrams from anyone
   * (connected to itself); it is still read. Not one bound to a wildcard
   * address: connecting would also pin its own address to loopback, and
   * whoever still answers through it could not reach a remote peer; such a
   * socket closes in its group, where a datagram the kernel hands it as it
   * goes is lost (README). Whether it left.
   */
  leaveGroup(entry: SocketEntry): boolean {
    const { protocol, host } = entry.listener.address;
    if (!this.holds(entry) || protocol !== 'udp' || host === '0.0.0.0' || host === '::') return false;
    native.connectToSelf(entry.fd);
    return true;
  }

  /**
   * Closes one socket for good. A TCP listener is shut down first: whoever
   * else holds it (the parent, until it exits), it leaves the group now.
   */
  retire(entry: SocketEntry): void {
    if (!this.holds(entry)) return;
    this.sockets.get(entry.listener.index)!.delete(entry.index);
    try {
      // ENOTCONN: shut down already, by the generation that retired it first.
      if (entry.listener.address.protocol === 'tcp') tolerating('ENOTCONN', () => native.shutdown(entry.fd));
    } finally {
      native.close(entry.fd);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const entry of this.entries()) native.close(entry.fd);
  }

  /**
   * A UDP socket joins its group as it is bound, long before our workers
   * read it: the parent's traffic is kept on the sockets it serves (its
   * held ones, positions 0..n-1) until take-over sets our program. TCP
   * sockets join only when they listen, at take-over.
   */
  private keepTrafficOffNew(listener: Listener, adopted: Map<number, number> | undefined): void {
    if (listener.address.protocol !== 'udp' || !adopted || adopted.size === 0) return;
    native.attachBpf(adopted.values().next().value!, 'reuseport', steerToFirst(adopted.size));
  }

  private add(entry: SocketEntry): void {
    if (!this.sockets.has(entry.listener.index)) this.sockets.set(entry.listener.index, new Map());
    this.sockets.get(entry.listener.index)!.set(entry.index, entry);
  }
}

/** Runs a syscall whose failure with `code` means the wanted state is there already. */
function tolerating(code: string, syscall: () => void): void {
  try {
    syscall();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== code) throw error;
  }
}

/** Detaching what is not attached (ENOENT) is already the wanted state. */
function detach(fd: number, target: 'reuseport' | 'socket'): void {
  tolerating('ENOENT', () => native.detachBpf(fd, target));
}

/**
 * A TCP socket is only bound here: listenInOrder() puts it in its
 * SO_REUSEPORT group at take-over, so a generation that fails before then
 * never held connections it would then reset.
 */
function createSocket(listener: Listener): number {
  const { host, port, protocol } = listener.address;
  return protocol === 'tcp'
    ? native.tcpBind(listener.family, host, port, listener.ipv6Only)
    : native.udpBind(listener.family, host, port, listener.ipv6Only);
}

/** An inherited fd must be the socket the parent says it is. */
function checkSocket(listener: Listener, fd: number): void {
  const info = native.socketInfo(fd);
  const tcp = listener.address.protocol === 'tcp';
  const ok =
    info.family === listener.family &&
    info.type === (tcp ? 'stream' : 'dgram') &&
    info.port === listener.address.port &&
    info.reusePort &&
    info.listening === tcp;
  if (!ok) {
    throw new BatonError(
      ErrorCodes.PROTOCOL,
      `the parent handed over fd ${fd} for ${listener.name}, but it is a ${info.type} socket on ${info.address}:${info.port}` +
        ` (reuseport ${info.reusePort}, listening ${info.listening})`,
    );
  }
}
