// Inside a worker thread: serve ordinary `net`/`http` servers and `dgram`
// sockets on this worker's sockets, and follow the generation's stop,
// resume, drain, retire and terminate as the pool relays them.

import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { DrainController } from '../drain/controller';
import { drainByProtocol, isHttp1Server } from '../drain/server';
import { ListenerServers, type Servable } from '../listeners/servers';
import { EngineMetrics } from '../stats/engine';
import { workerStats, type ThreadStats } from '../stats/thread-stats';
import { BatonError, ErrorCodes, invalidArgument } from '../errors';
import { BOOT_KEY, isToWorker, type FromWorker, type ToWorker, type WorkerBootData, type WorkerListenerInfo } from './messages';

export interface WorkerContextEvents {
  /** Open connections should close within `ms` (the generation drains). */
  drain: [ms: number];
  /** The generation terminates: close everything now. */
  terminate: [];
}

export class WorkerContext extends EventEmitter<WorkerContextEvents> {
  readonly index: number;
  readonly epoch: number;
  /** This thread's stats: what it counts reaches the process-wide view (and the next generations). */
  readonly stats: ThreadStats;
  /**
   * This worker's drain: ask `shouldClose()` per connection or response; the
   * http, https and http2 servers given to serve() follow it by themselves
   * (drainHttp, drainHttp2), others can with drainNet or their own checks.
   */
  readonly drainController: DrainController;
  readonly sockets: ReadonlyArray<Omit<WorkerListenerInfo, 'sockets'>>;
  /** The application's workerData, as given to the pool. */
  readonly data: unknown;
  private readonly served = new Map<string, ListenerServers>();
  private accepting: boolean;
  /** While not accepting: the listeners still served (a child dropped them; they are served until retired). */
  private keep: string[];
  /** 'listener#index' of every socket retired, served or not yet: its fd number may be reused. */
  private readonly retired = new Set<string>();
  private readonly byName: Map<string, WorkerListenerInfo>;
  private readonly engine: EngineMetrics;

  constructor(boot: WorkerBootData) {
    super();
    this.index = boot.index;
    this.epoch = boot.epoch;
    this.data = boot.data;
    this.accepting = boot.accepting;
    this.keep = boot.keep;
    this.stats = workerStats(boot.stats);
    this.engine = new EngineMetrics(this.stats);
    this.drainController = new DrainController({ strategy: boot.drainStrategy });
    this.engine.trackDrain(this.drainController);
    this.byName = new Map(boot.listeners.map((l) => [l.name, l]));
    this.sockets = boot.listeners.map(({ sockets: _sockets, ...rest }) => rest);
    parentPort!.on('message', (message) => {
      if (isToWorker(message)) this.onCommand(message);
    });
  }

  get isDraining(): boolean {
    return this.drainController.draining;
  }

  /**
   * Serves `target` on this worker's socket of listener `name` (default: the
   * only listener), and on any surplus socket of it this worker is given
   * after a decrease (their connections or datagrams are emitted on
   * `target`). Its accepted connections are counted
   * (baton_connections_accepted_total). An http or https server follows the
   * drain as HTTP/1.1 expects (drainHttp: `Connection: close`, idle
   * keep-alive connections closed, requests in flight finish), an http2
   * server as HTTP/2 does (drainHttp2: GOAWAY, streams finish).
   */
  serve(target: Servable, name?: string): void {
    const listener = name === undefined ? this.onlyListener() : this.byName.get(name);
    if (!listener) throw invalidArgument(`no listener named '${name}'; this worker has ${[...this.byName.keys()].join(', ')}`);
    if (this.served.has(listener.name)) throw invalidArgument(`listener ${listener.name} is already served`);
    const served = new ListenerServers(listener, target, listener.sockets, this.index, (message) =>
      this.post({ baton: 'warning', message: `worker ${this.index}, ${message}` }),
    );
    for (const index of listener.sockets.map((s) => s.index)) if (this.retired.has(`${listener.name}#${index}`)) served.retire(index);
    this.served.set(listener.name, served);
    if (target instanceof net.Server) {
      this.engine.countConnections(target, this.index);
      drainByProtocol(target, this.drainController);
    }
    if (this.accepting || this.keep.includes(listener.name)) served.attach();
    if (this.served.size === this.byName.size) this.post({ baton: 'ready' });
  }

  private onlyListener(): WorkerListenerInfo | undefined {
    if (this.byName.size !== 1) throw invalidArgument('this worker has several listeners: name the one to serve');
    return this.byName.values().next().value;
  }

  private post(message: FromWorker): void {
    parentPort!.postMessage(message);
  }

  private onCommand(command: ToWorker): void {
    switch (command.baton) {
      case 'stop':
        this.accepting = false;
        this.keep = command.keep;
        for (const served of this.served.values()) if (!command.keep.includes(served.listener.name)) served.stop();
        return;
      case 'resume':
        this.accepting = true;
        this.keep = [];
        this.drainController.stop();
        for (const served of this.served.values()) served.attach();
        return;
      case 'retire':
        // Remembered for a listener not served yet: its fd number may be reused.
        this.retired.add(`${command.listener}#${command.index}`);
        this.served.get(command.listener)?.retire(command.index); // closes our dup at once: the socket can go
        this.post({ baton: 'retired', listener: command.listener, index: command.index });
        return;
      case 'drain':
        this.drainController.stop();
        this.drainController.start(command.ms);
        this.emit('drain', command.ms);
        return;
      case 'terminate':
        this.emit('terminate');
        for (const served of this.served.values()) {
          served.close();
          if (served.target instanceof net.Server && isHttp1Server(served.target)) served.target.closeAllConnections();
        }
        // Leave the thread once the application's own handles are closed; the pool forces it after a timeout.
        parentPort!.close();
        return;
    }
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
