// Whatever serves a generation's sockets (its worker threads, the admin
// listener, a server on the main thread, anything an application adds)
// follows the same five moments of the generation, through this one shape.

import type { SocketEntry } from '../listeners/listener-set';
import type { Listener } from '../listeners/spec';

export interface Follower {
  /**
   * Stop accepting new connections: a child took over (and we drain), or we
   * shut down. The sockets stay open. Listeners in `keep` (ones the child
   * dropped) are still served until each socket is retired.
   */
  stopAccepting?(keep: readonly Listener[]): void;
  /**
   * Accept on every socket: at takeOver() (not before, so that a handoff
   * failing earlier has accepted nothing it would drop), again when a child
   * that took over went away (rollback), and at once for a follower that
   * joins a generation that accepts.
   */
  resumeAccepting?(): void;
  /** Ask open connections to close within `ms`. */
  drain?(ms: number): void;
  /**
   * A socket is about to be closed for good (a surplus one after a
   * decrease, or a listener the child dropped): resolve once nothing of
   * this follower accepts on it or reads it any more.
   */
  retire?(entry: SocketEntry): Promise<void> | void;
  /** The generation terminates: close everything; the sockets close once every follower is done. */
  terminate?(): Promise<void> | void;
}
