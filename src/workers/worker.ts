// Inside a worker thread: serve ordinary `net`/`http` servers and `dgram`
// sockets on this worker's sockets, and follow the generation's stop,
// resume, drain and terminate. Each server listens on its own dup of the
// main thread's master fd, made right before listen() so the dup is owned
// by the server from its first instant (Node closes it with the server).

import type * as dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import * as http from 'node:http';
import type * as net from 'node:net';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as native from '../binding';
import { BatonError, ErrorCodes, invalidArgument } from '../errors';
import { BOOT_KEY, isToWorker, type WorkerBootData, type WorkerListenerInfo } from './messages';

type Servable = net.Server | dgram.Socket;

interface Served {
  listener: WorkerListenerInfo;
  target: Servable;
}

export interface WorkerContextEvents {
  /** Open connections should close within `ms` (the generation drains). */
  drain: [ms: number];
  /** The generation terminates: close everything now. */
  terminate: [];
}

export class WorkerContext extends EventEmitter<WorkerContextEvents> {
  readonly index: number;
  readonly epoch: number;
  readonly sockets: ReadonlyArray<Omit<WorkerListenerInfo, 'fd'>>;
  /** The application's workerData, as given to the pool. */
  readonly data: unknown;
  private readonly served: Served[] = [];
  private readonly bound = new WeakSet<dgram.Socket>();
  private accepting: boolean;
  private draining = false;
  private readonly byName: Map<string, WorkerListenerInfo>;

  constructor(boot: WorkerBootData) {
    super();
    this.index = boot.index;
    this.epoch = boot.epoch;
    this.data = boot.data;
    this.accepting = boot.accepting;
    this.byName = new Map(boot.listeners.map((l) => [l.name, l]));
    this.sockets = boot.listeners.map(({ fd: _fd, ...rest }) => rest);
    parentPort!.on('message', (message) => {
      if (isToWorker(message)) this.onCommand(message);
    });
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /**
   * Serves `target` on this worker's socket of listener `name` (default: the
   * only listener). An http.Server also gets drain handling: responses carry
   * `Connection: close` and idle keep-alive connections are closed.
   */
  serve(target: Servable, name?: string): void {
    const listener = name === undefined ? this.onlyListener() : this.byName.get(name);
    if (!listener) throw invalidArgument(`no listener named '${name}'; this worker has ${[...this.byName.keys()].join(', ')}`);
    if (this.served.some((s) => s.listener === listener)) throw invalidArgument(`listener ${listener.name} is already served`);
    this.served.push({ listener, target });
    if (target instanceof http.Server) {
      target.prependListener('request', (_req, res) => {
        if (this.draining) res.setHeader('connection', 'close');
      });
    }
    if (this.accepting) this.attach(listener, target);
    if (this.served.length === this.byName.size) parentPort!.postMessage({ baton: 'ready' });
  }

  private onlyListener(): WorkerListenerInfo | undefined {
    if (this.byName.size !== 1) throw invalidArgument('this worker has several listeners: name the one to serve');
    return this.byName.values().next().value;
  }

  /** Starts serving `target` unless it already does (a dgram socket, once bound, stays bound). */
  private attach(listener: WorkerListenerInfo, target: Servable): void {
    if ('listen' in target ? target.listening : this.bound.has(target)) return;
    const fd = native.dup(listener.fd);
    if ('listen' in target) return void target.listen({ fd }, listener.backlog);
    this.bound.add(target);
    target.bind({ fd });
  }

  private onCommand(command: { baton: string; ms?: number }): void {
    switch (command.baton) {
      case 'stop':
        // A dgram socket cannot bind again once closed: UDP is read until terminate.
        this.accepting = false;
        for (const { target } of this.served) if ('listen' in target && target.listening) target.close();
        return;
      case 'resume':
        this.accepting = true;
        this.draining = false;
        for (const { listener, target } of this.served) this.attach(listener, target);
        return;
      case 'drain':
        this.draining = true;
        for (const { target } of this.served) if (target instanceof http.Server) target.closeIdleConnections();
        this.emit('drain', command.ms ?? 0);
        return;
      case 'terminate':
        this.emit('terminate');
        for (const { target } of this.served) {
          stopServing(target);
          if (target instanceof http.Server) target.closeAllConnections();
        }
        // Leave the thread once the application's own handles are closed; the pool forces it after a timeout.
        parentPort!.close();
        return;
    }
  }
}

/** Stops serving (its dup closes; the socket lives on in the master fd). */
function stopServing(target: Servable): void {
  if (!('listen' in target)) {
    try {
      target.close();
    } catch {
      // Already closed.
    }
  } else if (target.listening) {
    target.close();
  }
}

let context: WorkerContext | undefined;

/** This worker thread's context; throws outside a thread started by the worker pool. */
export function workerContext(): WorkerContext {
  if (context) return context;
  const boot = (workerData as Record<string, unknown> | null)?.[BOOT_KEY] as WorkerBootData | undefined;
  if (isMainThread || !boot || !parentPort) {
    throw new BatonError(ErrorCodes.INVALID_STATE, 'workerContext() is for worker threads started by baton\'s worker pool');
  }
  context = new WorkerContext(boot);
  return context;
}
