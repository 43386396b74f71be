// What the worker pool (main thread) and a worker thread say to each other.

import type { DrainStrategy } from '../drain/controller';
import type { StatsHandle } from '../stats/thread-stats';

export interface WorkerSocketInfo {
  /** Its position in the listener's group; the worker's own index for the socket it serves directly. */
  index: number;
  /** The main thread's master fd; the worker serves its own dup of it. */
  fd: number;
}

export interface WorkerListenerInfo {
  name: string;
  protocol: 'tcp' | 'udp';
  family: 4 | 6;
  host: string;
  port: number;
  backlog: number;
}

/** One listener's sockets for one worker: its own and, after a decrease, surplus ones it serves until they are retired. */
export interface WorkerListenerSockets {
  name: string;
  sockets: WorkerSocketInfo[];
}

export interface WorkerBootData {
  index: number;
  epoch: number;
  accepting: boolean;
  /** While not accepting, the sockets still served until retired (socketKey: 'tcp://127.0.0.1:8080#2'). */
  keep: string[];
  /** This thread's part of the process-wide stats (StatsRegistry.forWorker). */
  stats: StatsHandle;
  drainStrategy: DrainStrategy;
  /** What it will serve; the sockets come in a 'sockets' message (the thread loads its script meanwhile). */
  listeners: WorkerListenerInfo[];
  /** The application's own workerData. */
  data: unknown;
}

export const BOOT_KEY = '__baton';

export type ToWorker =
  /** The sockets to serve, once the generation has them: the worker attaches them and says 'ready'. */
  | { baton: 'sockets'; listeners: WorkerListenerSockets[] }
  /** Stop accepting, except on the sockets in `keep` (socketKey), served until retired. */
  | { baton: 'stop'; keep: string[] }
  | { baton: 'resume' }
  /** Let go of one socket for good; answered with 'retired'. */
  | { baton: 'retire'; listener: string; index: number }
  | { baton: 'drain'; ms: number }
  /** A sibling died: serve its sockets too (forwarded to our own servers) until it is back. */
  | { baton: 'adopt'; dead: number; listeners: WorkerListenerSockets[] }
  /** The sibling is back (or gone for good with its generation): stop serving its sockets. */
  | { baton: 'release'; dead: number }
  | { baton: 'terminate' };

export type FromWorker =
  /** Serving every listener: every socket dup'd and attached (it accepts from take-over on). */
  | { baton: 'ready' }
  | { baton: 'retired'; listener: string; index: number }
  | { baton: 'warning'; message: string };

export function isFromWorker(message: unknown): message is FromWorker {
  return typeof message === 'object' && message !== null && ['ready', 'retired', 'warning'].includes((message as FromWorker).baton);
}

export function isToWorker(message: unknown): message is ToWorker {
  return typeof message === 'object' && message !== null && typeof (message as ToWorker).baton === 'string';
}
