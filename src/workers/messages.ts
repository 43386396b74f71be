// What the worker pool (main thread) and a worker thread say to each other.

export interface WorkerListenerInfo {
  name: string;
  protocol: 'tcp' | 'udp';
  host: string;
  port: number;
  backlog: number;
  /** The main thread's master fd; the worker serves its own dup of it. */
  fd: number;
}

export interface WorkerBootData {
  index: number;
  epoch: number;
  accepting: boolean;
  listeners: WorkerListenerInfo[];
  /** The application's own workerData. */
  data: unknown;
}

export const BOOT_KEY = '__baton';

export type ToWorker =
  | { baton: 'stop' }
  | { baton: 'resume' }
  | { baton: 'drain'; ms: number }
  | { baton: 'terminate' };

export type FromWorker =
  /** Serving every listener. */
  { baton: 'ready' };

export function isFromWorker(message: unknown): message is FromWorker {
  return typeof message === 'object' && message !== null && (message as FromWorker).baton === 'ready';
}

export function isToWorker(message: unknown): message is ToWorker {
  return typeof message === 'object' && message !== null && typeof (message as ToWorker).baton === 'string';
}
