// Inside a worker thread: serve ordinary `net`/`http` servers and `dgram`
// sockets on this worker's sockets, and follow the generation's stop,
// resume, drain, retire and terminate as the pool relays them.

import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { DrainController } from '../drain/controller';
import { drainByProtocol, isHttp1Server } from '../drain/server';
import { ListenerServers, socketKey, type Servable } from '../listeners/servers';
import { EngineMetrics } from '../stats/engine';
import { workerStats, type ThreadStats } from '../stats/thread-stats';
import { BatonError, ErrorCodes, invalidArgument } from '../errors';
import { BOOT_KEY, isToWorker, type FromWorker, type ToWorker, type WorkerBootData, type WorkerListenerInfo, type WorkerListenerSockets, type WorkerSocketInfo } from './messages';

/** What a WorkerContext emits, besides what the servers it serves do by themselves. */
export interface WorkerContextEvents {
  /** Open connections should close within `ms` (the generation drains). */
  drain: [ms: number];
  /** The generation terminates: close everything now. */
  terminate: [];
}

/**
 * A worker thread's part of its generation (from workerContext()): which
 * sockets it serves, its stats and drain, and serve() to put an ordinary
 * server or dgram socket on them.
 */
export class WorkerContext extends EventEmitter<WorkerContextEvents> {
  /** This worker's index: it accepts on socket `index` of each listener. */
  readonly index: number;
  /** Its generation's restart epoch (0, 1, 2...). */
  readonly epoch: number;
  /** This thread's stats: what it counts reaches the process-wide view (and the next generations). */
  readonly stats: ThreadStats;
  /**
   * This worker's drain: ask `shouldClose()` per connection or response; the
   * http, https and http2 servers given to serve() follow it by themselves
   * (drainHttp, drainHttp2), others can with drainNet or their own checks.
   */
  readonly drainController: DrainController;
  /** The listeners this worker serves: name ('tcp://127.0.0.1:8080'), protocol, family, host, port, backlog. */
  readonly sockets: readonly WorkerListenerInfo[];
  /** The application's workerData, as given to the pool. */
  readonly data: unknown;
  /** What the application gave serve(), per listener name: served once the sockets have come. */
  private readonly targets = new Map<string, Servable>();
  /** Per listener name, the sockets to serve: they come once the generation has taken them, maybe after serve(). */
  private given?: Map<string, WorkerSocketInfo[]>;
  private readonly served = new Map<string, ListenerServers>();
  /** Per dead sibling, the servers on its sockets we serve until it is back. */
  private readonly adopted = new Map<number, ListenerServers[]>();
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
    this.sockets = boot.listeners;
    parentPort!.on('message', (message) => {
      if (isToWorker(message)) this.onCommand(message);
    });
    // A generation with no listeners (workers that consume a queue, say): nothing to wait for.
    if (this.byName.size === 0) this.post({ baton: 'ready' });
  }

  /** Whether the generation drains: open connections are being asked to close. */
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
   * server as HTTP/2 does (drainHttp2: GOAWAY, streams finish). The
   * thread may start before its generation holds the sockets (serve()
   * starts it while the handshake and the transfer go on): `target` then
   * listens as they come, before the worker says it is ready.
   */
  serve(target: Servable, name?: string): void {
    const listener = name === undefined ? this.onlyListener() : this.byName.get(name);
    if (!listener) throw invalidArgument(`no listener named '${name}'; this worker has ${[...this.byName.keys()].join(', ')}`);
    if (this.targets.has(listener.name)) throw invalidArgument(`listener ${listener.name} is already served`);
    this.targets.set(listener.name, target);
    if (target instanceof net.Server) {
      this.engine.countConnections(target, this.index);
      drainByProtocol(target, this.drainController);
    }
    if (this.given) this.attach(listener, target, this.given.get(listener.name) ?? []);
  }

  /** The sockets have come: what serve() was given so far is served now, the rest as it is given. */
  private onSockets(listeners: WorkerListenerSockets[]): void {
    this.given = new Map(listeners.map((l) => [l.name, l.sockets]));
    for (const [name, target] of this.targets) this.attach(this.byName.get(name)!, target, this.given.get(name) ?? []);
  }

  /** Dups and attaches one listener's sockets; 'ready' once every listener's are. */
  private attach(listener: WorkerListenerInfo, target: Servable, sockets: WorkerSocketInfo[]): void {
    const served = new ListenerServers(listener, target, sockets, this.index, (message) =>
      this.post({ baton: 'warning', message: `worker ${this.index}, ${message}` }),
    );
    for (const { index } of sockets) if (this.retired.has(socketKey(listener.name, index))) served.retire(index);
    this.served.set(listener.name, served);
    served.prepare(); // out of fds, this worker fails now: before its generation takes over
    served.attach((index) => this.accepting || this.keep.includes(socketKey(listener.name, index)));
    if (this.served.size === this.byName.size) this.post({ baton: 'ready' });
  }

  private onlyListener(): WorkerListenerInfo | undefined {
    if (this.byName.size === 0) throw invalidArgument('this generation has no listeners: there is nothing to serve');
    if (this.byName.size !== 1) throw invalidArgument('this worker has several listeners: name the one to serve');
    return this.byName.values().next().value;
  }

  /** Ours, and those of dead siblings we serve meanwhile. */
  private everyServers(): ListenerServers[] {
    return [...this.served.values(), ...[...this.adopted.values()].flat()];
  }

  private adopt(dead: number, listeners: WorkerListenerSockets[]): void {
    this.release(dead);
    const servers = listeners.flatMap(({ name, sockets }) => {
      const own = this.served.get(name);
      if (!own) return []; // not served here (yet): nothing to forward to
      const adopted = new ListenerServers(own.listener, own.target, sockets, -1, (message) =>
        this.post({ baton: 'warning', message: `worker ${this.index}, for worker ${dead}, ${message}` }),
      );
      for (const { index } of sockets) if (this.retired.has(socketKey(name, index))) adopted.retire(index);
      return [adopted];
    });
    this.adopted.set(dead, servers);
    for (const adopted of servers) {
      // Covering for a sibling must never cost this worker its life (out of fds, say): its sockets stay uncovered.
      try {
        adopted.prepare();
        adopted.attach((index) => this.accepting || this.keep.includes(socketKey(adopted.listener.name, index)));
      } catch (error) {
        adopted.close();
        this.post({ baton: 'warning', message: `worker ${this.index} could not serve the sockets of worker ${dead} of ${adopted.listener.name}: ${(error as Error).message}` });
      }
    }
  }

  private release(dead: number): void {
    for (const adopted of this.adopted.get(dead) ?? []) adopted.close();
    this.adopted.delete(dead);
  }

  private post(message: FromWorker): void {
    parentPort!.postMessage(message);
  }

  private onCommand(command: ToWorker): void {
    switch (command.baton) {
      case 'sockets':
        return this.onSockets(command.listeners);
      case 'stop':
        this.accepting = false;
        this.keep = command.keep;
        for (const served of this.everyServers()) served.stop((index) => command.keep.includes(socketKey(served.listener.name, index)));
        return;
      case 'resume':
        this.accepting = true;
        this.keep = [];
        this.drainController.stop();
        for (const served of this.everyServers()) served.attach();
        return;
      case 'retire':
        // Remembered for a listener not served yet: its fd number may be reused.
        this.retired.add(socketKey(command.listener, command.index));
        for (const served of this.everyServers()) if (served.listener.name === command.listener) served.retire(command.index); // our dup closes at once
        this.post({ baton: 'retired', listener: command.listener, index: command.index });
        return;
      case 'adopt':
        return this.adopt(command.dead, command.listeners);
      case 'release':
        return this.release(command.dead);
      case 'drain':
        this.drainController.restart(command.ms);
        this.emit('drain', command.ms);
        return;
      case 'terminate':
        this.emit('terminate');
        for (const dead of [...this.adopted.keys()]) this.release(dead);
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
