// A tiny explicit state machine: named states, a table of allowed
// transitions, a timing for every transition, and at most one deadline per
// state that is cleared by leaving it. Parent and child are built on it.

import { EventEmitter } from 'node:events';
import { BatonError, ErrorCodes } from '../errors';

/** One state change of a state machine ('transition' events). */
export interface Transition<S extends string> {
  /** Which machine: 'child' (this generation on its way to serving) or 'parent' (towards its own child). */
  machine: string;
  /** The state left. */
  from: S;
  /** The state entered. */
  to: S;
  /** Milliseconds since the machine was created. */
  atMs: number;
  /** Milliseconds spent in `from`. */
  inStateMs: number;
  /** What caused it or came with it, where there is something to say: a peer's pid, a failure, the sockets handed over. */
  reason?: string;
}

export type TransitionTable<S extends string> = { readonly [K in S]: readonly S[] };

export class StateMachine<S extends string> extends EventEmitter<{ transition: [Transition<S>]; warning: [message: string] }> {
  private current: S;
  private readonly createdAt = performance.now();
  private enteredAt = this.createdAt;
  private deadline?: NodeJS.Timeout;

  constructor(
    readonly name: string,
    initial: S,
    private readonly table: TransitionTable<S>,
  ) {
    super();
    this.current = initial;
  }

  get state(): S {
    return this.current;
  }

  is(...states: S[]): boolean {
    return states.includes(this.current);
  }

  can(to: S): boolean {
    return this.table[this.current].includes(to);
  }

  to(next: S, reason?: string): void {
    if (!this.can(next)) {
      throw new BatonError(ErrorCodes.INVALID_STATE, `${this.name}: no transition from ${this.current} to ${next}`);
    }
    clearTimeout(this.deadline);
    this.deadline = undefined;
    const now = performance.now();
    const transition: Transition<S> = {
      machine: this.name,
      from: this.current,
      to: next,
      atMs: round(now - this.createdAt),
      inStateMs: round(now - this.enteredAt),
      ...(reason === undefined ? {} : { reason }),
    };
    this.current = next;
    this.enteredAt = now;
    this.emit('transition', transition);
  }

  /** Runs `onTimeout` unless the machine has left the current state within `ms`. */
  expire(ms: number, onTimeout: () => void): void {
    clearTimeout(this.deadline);
    const state = this.current;
    this.deadline = setTimeout(() => {
      if (this.current === state) onTimeout();
    }, ms);
    this.deadline.unref();
  }
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;
