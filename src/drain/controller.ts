// When open connections should close during a drain (Envoy's drain
// strategies). `gradual`: asked "should this connection close now?", the
// answer is yes with probability elapsed/drainTime, and always once the drain
// time is over, so the clients leave spread over the drain instead of all at
// once. `immediate`: always yes. The controller also counts the connections
// the adapters track, for the drain's progress.

import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { BatonError, ErrorCodes, invalidArgument } from '../errors';
import { integerIn } from '../validate';

export type DrainStrategy = 'gradual' | 'immediate';

export interface DrainControllerOptions {
  /** Default `gradual`. */
  strategy?: DrainStrategy;
  /** A number in [0, 1); default Math.random. For tests. */
  random?: () => number;
  /** Milliseconds, monotonic; default performance.now. For tests. */
  now?: () => number;
}

/** A drain's figures ('progress' events, progress()). */
export interface DrainProgress {
  /** Whether a drain is under way (its time may be over). */
  draining: boolean;
  /** Connections still open (tracked by the adapters). */
  connections: number;
  /** The drain time asked for, in ms. */
  drainMs: number;
  /** Since the drain started, in ms; 0 when not draining. */
  elapsedMs: number;
  /** Until the drain time is over; 0 after it, and when not draining. */
  remainingMs: number;
}

/** What a DrainController emits. */
export interface DrainControllerEvents {
  /** A drain started, to last `drainMs`. */
  start: [drainMs: number];
  /** The drain time is over: every answer is yes from now on. */
  deadline: [];
  /** The drain was called off (the generation serves again). */
  stop: [];
  /** While draining: a tracked connection opened or closed; also on start, deadline and stop. */
  progress: [progress: DrainProgress];
}

/** A connection (a socket, an HTTP/2 session): anything that emits `close` once. */
export interface Closeable {
  on(event: 'close', listener: () => void): unknown;
}

const STRATEGIES: readonly DrainStrategy[] = ['gradual', 'immediate'];

/**
 * When open connections should close during a drain (Envoy's strategies):
 * ask shouldClose() per connection or response. The drain adapters ask it
 * for their servers, and it counts the connections they track.
 */
export class DrainController extends EventEmitter<DrainControllerEvents> {
  /** 'gradual' (spread over the drain time) or 'immediate'. */
  readonly strategy: DrainStrategy;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly tracked = new Set<Closeable>();
  private draws = new WeakMap<object, number>();
  private startedAt = 0;
  private drainMs = 0;
  private state: 'idle' | 'draining' | 'overdue' = 'idle';
  private timer: NodeJS.Timeout | undefined;
  /** Every tracked connection's one close listener (`this` is the connection): no closure per connection. */
  private readonly untrack: (this: Closeable) => void;

  constructor(options: DrainControllerOptions = {}) {
    super();
    if (typeof options !== 'object' || options === null) throw invalidArgument('options must be an object');
    const { strategy = 'gradual', random = Math.random, now = () => performance.now() } = options;
    if (!STRATEGIES.includes(strategy)) throw invalidArgument(`strategy must be one of ${STRATEGIES.join(', ')}`);
    if (typeof random !== 'function' || typeof now !== 'function') throw invalidArgument('random and now must be functions');
    this.strategy = strategy;
    this.random = random;
    this.now = now;
    const controller = this;
    this.untrack = function untrack(this: Closeable): void {
      if (controller.tracked.delete(this)) controller.progressed();
    };
  }

  /** Whether a drain is under way (until stop()). */
  get draining(): boolean {
    return this.state !== 'idle';
  }

  /** The drain time is over (until stop()). */
  get overdue(): boolean {
    return this.state === 'overdue';
  }

  /** Connections open, as tracked by the adapters (track()). */
  get connections(): number {
    return this.tracked.size;
  }

  /** Starts draining for `drainMs`; the deadline event fires when it is over. */
  start(drainMs: number): void {
    integerIn(drainMs, 'drainMs', 0, 2 ** 31 - 1);
    if (this.draining) throw new BatonError(ErrorCodes.INVALID_STATE, 'already draining: stop() first');
    this.state = 'draining';
    this.draws = new WeakMap();
    this.startedAt = this.now();
    this.drainMs = drainMs;
    this.emit('start', drainMs);
    this.progressed();
    // Unref'd: a drain alone must not keep the process up.
    this.timer = setTimeout(() => this.expire(), drainMs).unref();
  }

  /**
   * Drains for `drainMs` from now, calling off the drain under way if any (a
   * generation asked to drain again, after it resumed or by a later child).
   * A bad `drainMs` leaves the drain under way untouched.
   */
  restart(drainMs: number): void {
    integerIn(drainMs, 'drainMs', 0, 2 ** 31 - 1);
    this.stop();
    this.start(drainMs);
  }

  /** Calls the drain off: answers are no again. */
  stop(): void {
    if (!this.draining) return;
    clearTimeout(this.timer);
    this.state = 'idle';
    this.emit('stop');
    this.emit('progress', this.progress());
  }

  /**
   * Should a connection close now? No unless draining; see the strategies.
   * Each call draws anew (Envoy asks once per response). Given the
   * connection, its draw is kept for the whole drain: a connection asked
   * again and again (an idle one, checked periodically) closes at a time
   * spread evenly over the drain, not within its first moments.
   */
  shouldClose(connection?: object): boolean {
    if (this.state === 'idle') return false;
    if (this.state === 'overdue' || this.strategy === 'immediate') return true;
    const elapsed = this.now() - this.startedAt;
    if (elapsed >= this.drainMs) return true;
    return this.draw(connection) < elapsed / this.drainMs;
  }

  private draw(connection: object | undefined): number {
    if (connection === undefined) return this.random();
    let draw = this.draws.get(connection);
    if (draw === undefined) {
      draw = this.random();
      this.draws.set(connection, draw);
    }
    return draw;
  }

  /** Counts `connection` until it emits close. */
  track(connection: Closeable): void {
    if (typeof connection?.on !== 'function') throw invalidArgument('connection must emit close');
    if (this.tracked.has(connection)) return;
    this.tracked.add(connection);
    connection.on('close', this.untrack);
    this.progressed();
  }

  /** The drain's figures now. */
  progress(): DrainProgress {
    const elapsedMs = this.draining ? this.now() - this.startedAt : 0;
    return {
      draining: this.draining,
      connections: this.tracked.size,
      drainMs: this.drainMs,
      elapsedMs,
      // Once overdue none is left, whatever the clock says: a timer may fire a fraction of a ms before performance.now() reaches it.
      remainingMs: this.state === 'draining' ? Math.max(0, this.drainMs - elapsedMs) : 0,
    };
  }

  private expire(): void {
    this.state = 'overdue';
    this.emit('deadline');
    this.progressed();
  }

  private progressed(): void {
    if (this.draining) this.emit('progress', this.progress());
  }
}
