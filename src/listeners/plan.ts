// Which socket goes where at a hot restart: pure, no I/O, the same answer on
// both sides (the parent to know what to send and what it keeps, the child
// to check what it got and what to do with it). A socket's index is its
// position in its SO_REUSEPORT group and, for the first `workers` of them,
// the worker that accepts on it.

import { invalidArgument } from '../errors';
import { MAX_WORKERS, type HeldListener, type SurplusPolicy, type WantedListener } from '../protocol/messages';
import { listenerName } from './spec';

export type SocketAction =
  | 'adopt' // the parent's socket, accepted on by the worker of the same index
  | 'create' // a new socket, joining the group after the adopted ones
  | 'surplus'; // the parent's socket past our worker count: served, steered away from, retired

export interface PlannedSocket {
  index: number;
  action: SocketAction;
  /** The worker that accepts on it. */
  worker: number;
}

export interface ListenerPlan {
  /** Index into the child's listeners. */
  listener: number;
  /** Index into the parent's listeners, when the child takes its sockets. */
  held?: number;
  /** Ordered by index. */
  sockets: PlannedSocket[];
  /** Steer new traffic to the first `steerTo` sockets of the group, or clear any program (null). */
  steerTo: number | null;
  /** Surplus indexes, highest first: each leaving socket is the group's last, so the order stays. */
  retire: number[];
  /** The parent's sockets the child leaves (policy 'close'); the parent closes them as it drains. */
  closedByParent: number[];
}

export interface HandoffPlan {
  listeners: ListenerPlan[];
  /**
   * The parent's listeners the child does not take: removed from its config,
   * or changed in a way a socket cannot follow (IPV6_V6ONLY is fixed at bind).
   * The parent serves what they have queued, then closes them.
   */
  released: number[];
}

export function planHandoff(held: HeldListener[], wanted: WantedListener[], workers: number, policy: SurplusPolicy): HandoffPlan {
  if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) throw invalidArgument(`workers must be 1..${MAX_WORKERS}`);
  if (policy !== 'drain' && policy !== 'close') throw invalidArgument(`surplus policy must be 'drain' or 'close', got ${String(policy)}`);
  const heldByName = new Map(held.map((h, i) => [listenerName(h), i]));
  const taken = new Set<number>();
  const listeners = wanted.map((want, listener): ListenerPlan => {
    const h = heldByName.get(listenerName(want));
    const adoptable = h !== undefined && held[h].ipv6Only === want.ipv6Only;
    const count = adoptable ? held[h].sockets : 0;
    if (!Number.isInteger(count) || count < 0 || count > MAX_WORKERS) throw invalidArgument(`held sockets must be 0..${MAX_WORKERS}`);
    if (adoptable) taken.add(h);
    const sockets = want.sockets ?? workers;
    if (!Number.isInteger(sockets) || sockets < 1 || sockets > MAX_WORKERS) throw invalidArgument(`a listener's sockets must be 1..${MAX_WORKERS}`);
    return planListener(listener, adoptable ? h : undefined, count, sockets, policy);
  });
  return { listeners, released: held.map((_, i) => i).filter((i) => !taken.has(i)) };
}

function planListener(listener: number, held: number | undefined, count: number, workers: number, policy: SurplusPolicy): ListenerPlan {
  const sockets: PlannedSocket[] = [];
  for (let index = 0; index < workers; index++) {
    sockets.push({ index, action: index < count ? 'adopt' : 'create', worker: index });
  }
  const beyond = Array.from({ length: Math.max(0, count - workers) }, (_, i) => workers + i);
  if (policy === 'drain') for (const index of beyond) sockets.push({ index, action: 'surplus', worker: index % workers });
  return {
    listener,
    ...(held === undefined ? {} : { held }),
    sockets,
    steerTo: policy === 'drain' && beyond.length > 0 ? workers : null,
    retire: policy === 'drain' ? [...beyond].reverse() : [],
    closedByParent: policy === 'close' ? beyond : [],
  };
}

/** The parent's sockets the child takes, in the order they are sent: [child listener, index]. */
export function takenSockets(plan: HandoffPlan): Array<{ listener: number; held: number; index: number }> {
  return plan.listeners.flatMap((l) =>
    l.held === undefined ? [] : l.sockets.filter((s) => s.action !== 'create').map((s) => ({ listener: l.listener, held: l.held!, index: s.index })),
  );
}
