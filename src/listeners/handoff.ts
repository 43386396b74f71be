// A generation's socket policy, on both sides of a handoff: the sockets a
// child takes (checked against the plan both sides derive), what the parent
// sends its child, and what it keeps, releases, retires or closes as the
// child takes over or goes away; the retirement of the surplus after a
// decrease; and each group's steering program. It decides; the generation
// wires it to the state machines and to the followers that serve the sockets.

import { EventEmitter } from 'node:events';
import { closeAll } from '../protocol/connection';
import type { GetSockets, HeldListener, ListenerAddress, SocketRef, SurplusPolicy, WantedListener } from '../protocol/messages';
import { ListenerSet, type InheritedSockets, type SocketEntry } from './listener-set';
import { listenerName, type Listener } from './spec';
import { planHandoff, takenSockets, type HandoffPlan } from './plan';
import { Retirer } from './retirer';

/** What the policy needs of its generation. */
export interface HandoffHost {
  /** Whatever serves the socket lets go of it (resolves once nothing does). */
  letGo(entry: SocketEntry): Promise<void>;
  /** Our own parent, if it still drains, closes its copy too (a UDP socket is only gone once all have). */
  tellParent(address: ListenerAddress, index: number): Promise<void>;
  /** Accept, or stop accepting except on the listeners in `keep`. */
  setAccepting(accepting: boolean, keep?: Listener[]): void;
  /** Whether we accept right now. */
  accepting(): boolean;
  /** Neither a parent that still drains nor a child on its way: the groups' program is ours alone. */
  alone(): boolean;
  warn(message: string): void;
}

export interface HandoffTimes {
  /** How long a TCP queue must stay empty before its socket is retired. */
  retireGraceMs: number;
  drainMs: number;
  /** How long a server may take to let go of a socket (a child's request waits for it). */
  requestTimeoutMs: number;
}

export interface HandoffEvents {
  retired: [entry: SocketEntry, waitedMs: number];
  /** Listeners our child dropped: served until their queues are empty, then closed. */
  released: [listeners: Listener[]];
}

/**
 * Adopts the sockets a parent handed over for `wanted` and creates the rest.
 * The parent planned from the same figures: what it sent is checked against
 * the plan. On failure every fd is closed.
 */
export function adoptSockets(
  listeners: Listener[],
  wanted: WantedListener[],
  workers: number,
  surplus: SurplusPolicy,
  taken: { fds: InheritedSockets; held: HeldListener[] },
): ListenerSet {
  let plan: HandoffPlan;
  try {
    plan = planHandoff(taken.held, wanted, workers, surplus);
  } catch (error) {
    closeAll([...taken.fds.values()].flatMap((byIndex) => [...byIndex.values()]));
    throw error;
  }
  return ListenerSet.assemble(listeners, workers, plan, taken.fds); // on failure it has closed every fd
}

export class HandoffPolicy extends EventEmitter<HandoffEvents> {
  private readonly retirer: Retirer;
  /** What our child's request decided: what we close or release as we drain. */
  private handoff?: { plan: HandoffPlan; policy: SurplusPolicy; held: Listener[] };

  constructor(
    readonly sockets: ListenerSet,
    times: HandoffTimes,
    private readonly host: HandoffHost,
  ) {
    super();
    // A socket that never goes quiet (nobody serves it) is given up on with the drain, never sooner than the grace allows;
    // a server that does not let go of one gets a request's time, as the next child's getSockets waits for it.
    const deadlineMs = Math.max(times.drainMs, 2 * times.retireGraceMs);
    this.retirer = new Retirer(sockets, { graceMs: times.retireGraceMs, deadlineMs, letGoMs: times.requestTimeoutMs }, (entry) => host.letGo(entry));
    this.retirer.on('retired', (entry, waitedMs) => {
      this.emit('retired', entry, waitedMs);
      void host.tellParent(entry.listener.address, entry.index);
    });
    this.retirer.on('idle', () => this.clearSteeringOnceAlone());
    this.retirer.on('warning', (message) => host.warn(message));
  }

  /**
   * Taking over: our new sockets join their groups after the adopted ones,
   * in index order, and every group gets our steering (or none) before
   * anything is accepted.
   */
  joinGroups(): void {
    this.sockets.listenInOrder();
    this.sockets.applySteering();
  }

  /** A child asks for our sockets: both sides plan from what we hold now. */
  async handOut(request: GetSockets): Promise<{ refs: SocketRef[]; fds: number[]; held: HeldListener[] }> {
    await this.retirer.stop(); // from here on, what the child may take stays
    const held = this.sockets.held();
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
      fds: taken.map(({ held: h, index }) => this.sockets.fd(held[h].listener.index, index)),
      held: held.map((h) => h.held),
    };
  }

  /**
   * The child serves and we drain. Listeners it dropped keep being served
   * until their queues are empty, with new handshakes refused; with Envoy's
   * policy they, and the surplus it left us, are closed at once.
   */
  childTookOver(): void {
    void this.retirer.stop();
    // A child that asked for nothing (it took no socket of ours) leaves us nothing to release or close.
    if (!this.handoff) return this.host.setAccepting(false);
    const { plan, policy, held } = this.handoff;
    const released = plan.released.map((i) => held[i]);
    const close = plan.listeners.flatMap((l) => l.closedByParent.map((index) => this.sockets.entry(held[l.held!].index, index)));
    const envoy = policy === 'close';
    this.host.setAccepting(false, envoy ? [] : released);
    if (released.length > 0) this.emit('released', released);
    for (const listener of released) {
      const entries = this.sockets.fromTop((e) => e.listener === listener);
      if (envoy) close.push(...entries);
      else {
        this.sockets.refuseNew(listener.index, true);
        this.retirer.watch(entries);
      }
    }
    for (const entry of close) {
      void this.letGo(entry).then(async (gone) => {
        if (gone) await this.host.tellParent(entry.listener.address, entry.index);
      });
    }
  }

  /** The child went away after we started draining: we serve everything we still hold, as before. */
  childWentAway(): void {
    void this.retirer.stop();
    for (const index of this.handoff?.plan.released ?? []) this.sockets.refuseNew(this.handoff!.held[index].index, false);
    this.handoff = undefined;
    this.sockets.applySteering();
    this.host.setAccepting(true);
    this.retireSurplus();
  }

  /**
   * A child that went away before the drain: our own steering again (it may
   * have set its own as it failed to take over), and our own surplus is ours
   * to retire again.
   */
  childFailed(): void {
    this.sockets.applySteering();
    this.retireSurplus();
  }

  /** Our surplus sockets (after a decrease), highest index first. */
  retireSurplus(): void {
    if (!this.host.accepting()) return;
    void this.retirer.stop();
    this.retirer.watch(this.sockets.fromTop((e) => e.surplus));
  }

  /**
   * With no surplus left and no parent holding old sockets, the kernel's own
   * hash spreads over exactly ours. Only while no child of ours is on its
   * way: the groups' program is the newest generation's.
   */
  clearSteeringOnceAlone(): void {
    if (this.sockets.isClosed || !this.host.accepting() || !this.host.alone()) return;
    if (this.sockets.entries().some((e) => e.surplus)) return;
    this.sockets.clearSteering();
  }

  /** Our child retired a socket it took from us: our copy goes too, and our parent's, if it still drains. */
  async closeRetired(address: ListenerAddress, index: number): Promise<void> {
    const name = listenerName(address);
    const entry = this.sockets.entries().find((e) => e.listener.name === name && e.index === index);
    if (entry) await this.letGo(entry);
    await this.host.tellParent(address, index);
  }

  /** Without hot restart no child shares our sockets: every one leaves its group now. */
  letGoOfAll(): void {
    for (const entry of this.sockets.fromTop(() => true)) void this.letGo(entry);
  }

  /** Retires nothing more (the generation stops). */
  stop(): Promise<void> {
    return this.retirer.stop();
  }

  /**
   * Our servers let go of a socket, then it closes: in that order, so that a
   * worker starting right now never dups an fd number closed under it.
   * Whether it went; a failure is a warning.
   */
  private async letGo(entry: SocketEntry): Promise<boolean> {
    try {
      await this.host.letGo(entry);
      this.sockets.retire(entry);
      return true;
    } catch (error) {
      this.host.warn(`closing socket ${entry.index} of ${entry.listener.name}: ${(error as Error).message}`);
      return false;
    }
  }
}
