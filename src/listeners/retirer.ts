// Retires sockets without resetting a connection: each is served until
// nothing waits in it and nothing has for a grace period (which also covers
// handshakes still in SYN_RECV, which no queue figure shows; UDP needs only
// UDP_GRACE_MS), then its server lets go of it and the socket is closed. A
// UDP socket first leaves its group, still served, for UDP_GRACE_MS more:
// the kernel can deliver a datagram to a socket that leaves as it looks the
// group up, and one still in the group when it closes would lose it (see
// native/listener.cc). One at a time, in the order
// given (the highest index first keeps a group's order). Queues are sampled
// on a timer: nothing here ever blocks the event loop.

import { EventEmitter } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import type { ListenerSet, SocketEntry } from './listener-set';

/** Enough for a datagram the kernel routed to a UDP socket just before its steering changed, or as it left its group, to reach its queue. */
const UDP_GRACE_MS = 100;

export interface RetirerOptions {
  /** How long a TCP queue must stay empty. */
  graceMs: number;
  /** A socket still not quiet after this is retired anyway, with a warning: what it holds is lost. */
  deadlineMs: number;
  /** How long the server may take to let go of a socket; after that it is retired anyway, with a warning. */
  letGoMs: number;
  /** How often queues are sampled. Default 50 ms. */
  pollMs?: number;
}

export interface RetirerEvents {
  retired: [entry: SocketEntry, waitedMs: number];
  /** The last socket watched is retired. */
  idle: [];
  warning: [message: string];
}

interface Pending {
  entry: SocketEntry;
  since: number;
  quietSince?: number;
  /** When a UDP socket left its group (it is still served). */
  leftAt?: number;
}

export class Retirer extends EventEmitter<RetirerEvents> {
  private queue: Pending[] = [];
  private inFlight?: { entry: SocketEntry; done: Promise<void> };
  private timer?: NodeJS.Timeout;
  /** When each socket was first watched: a stop() (a child asking for the sockets) does not restart its deadline. */
  private readonly firstWatched = new WeakMap<SocketEntry, number>();

  constructor(
    private readonly set: ListenerSet,
    private readonly options: RetirerOptions,
    /** Resolves once no server accepts on (or reads) the socket any more. */
    private readonly stopServing: (entry: SocketEntry) => Promise<void>,
  ) {
    super();
  }

  /** Sockets still to retire (one being retired included). */
  get pending(): number {
    return this.queue.length + (this.inFlight ? 1 : 0);
  }

  watch(entries: SocketEntry[]): void {
    const now = performance.now();
    for (const entry of entries) {
      if (entry === this.inFlight?.entry || this.queue.some((p) => p.entry === entry)) continue;
      if (!this.firstWatched.has(entry)) this.firstWatched.set(entry, now);
      this.queue.push({ entry, since: this.firstWatched.get(entry)! });
    }
    this.timer ??= setInterval(() => this.tick(), this.options.pollMs ?? 50).unref();
    this.tick();
  }

  /**
   * Retires nothing more. A socket already on its way out still goes:
   * resolves once it is gone, so that what is handed over after is exactly
   * what stays (and the group's order with it).
   */
  async stop(): Promise<void> {
    // A UDP socket that left its group cannot go back (and no child may take it): it goes, once what reached it as it left is read.
    const left = this.queue.find((p) => p.leftAt !== undefined);
    this.queue = [];
    if (left && !this.inFlight) {
      const graceLeft = Math.max(0, UDP_GRACE_MS - (performance.now() - left.leftAt!));
      this.inFlight = { entry: left.entry, done: delay(graceLeft).then(() => this.retire(left, performance.now())) };
    }
    if (!this.inFlight) this.stopTimer();
    await this.inFlight?.done;
  }

  private tick(): void {
    if (this.set.isClosed) return void this.stop();
    // One on its way out meanwhile (watched again before it went) is not ours to sample.
    this.queue = this.queue.filter((p) => this.set.holds(p.entry));
    const now = performance.now();
    for (const pending of this.queue) {
      if (this.set.queued(pending.entry) > 0) pending.quietSince = undefined;
      else pending.quietSince ??= now;
    }
    const head = this.queue[0];
    if (this.inFlight || !head) return;
    const graceMs = head.entry.listener.address.protocol === 'tcp' ? this.options.graceMs : Math.min(this.options.graceMs, UDP_GRACE_MS);
    const quiet = head.quietSince !== undefined && now - head.quietSince >= graceMs;
    const late = now - head.since >= this.options.deadlineMs;
    if (!quiet && !late) return;
    // Served a little longer once out of its group; one that stays in it (a wildcard address) goes at once.
    if (head.leftAt === undefined && this.leaveGroup(head.entry)) {
      head.leftAt = now;
      head.quietSince = now;
      if (!late) return;
    }
    this.queue.shift();
    this.inFlight = { entry: head.entry, done: this.retire(head, now) };
  }

  /** Whether a UDP socket left its group; one that could not is a warning. */
  private leaveGroup(entry: SocketEntry): boolean {
    try {
      return this.set.leaveGroup(entry);
    } catch (error) {
      this.emit('warning', `socket ${entry.index} of ${entry.listener.name} could not leave its group before closing (${(error as Error).message}): a datagram may be lost`);
      return false;
    }
  }

  private async retire(pending: Pending, now: number): Promise<void> {
    const { entry } = pending;
    // A server that never lets go must not hold up the next handoff, which waits for this one.
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.emit('warning', `socket ${entry.index} of ${entry.listener.name}: its server did not let go within ${this.options.letGoMs} ms; retired anyway`);
        resolve();
      }, this.options.letGoMs);
    });
    try {
      await Promise.race([this.stopServing(entry), late]);
    } catch (error) {
      this.emit('warning', `socket ${entry.index} of ${entry.listener.name}: ${(error as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
    if (this.set.holds(entry)) {
      const left = this.set.queued(entry);
      if (left > 0) {
        const what = entry.listener.address.protocol === 'tcp' ? `${left} queued connections` : `${left} bytes of queued datagrams`;
        this.emit('warning', `retiring socket ${entry.index} of ${entry.listener.name} with ${what} after ${this.options.deadlineMs} ms: they are lost`);
      }
      this.set.retire(entry);
      this.emit('retired', entry, Math.round(now - pending.since));
    }
    this.inFlight = undefined;
    if (this.queue.length > 0) return this.tick();
    this.stopTimer();
    this.emit('idle');
  }

  private stopTimer(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
