// Inside a worker thread: serve ordinary `net`/`http` servers and `dgram`
// sockets on this worker's sockets, and follow the generation's stop,
// resume, drain and terminate. Each server listens on its own dup of the
// main thread's master fd, made right before listen() so the dup is owned
// by the server from its first instant (Node closes it with the server).

import * as dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import * as net from 'node:net';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as native from '../binding';
import { DrainController } from '../drain/controller';
import { stopListening } from '../drain/adapter';
import { drainHttp } from '../drain/http';
import { drainHttp2 } from '../drain/http2';
import { EngineMetrics } from '../stats/engine';
import { workerStats, type ThreadStats } from '../stats/thread-stats';
import { BatonError, ErrorCodes, invalidArgument } from '../errors';
import { BOOT_KEY, isToWorker, type FromWorker, type ToWorker, type WorkerBootData, type WorkerListenerInfo } from './messages';

type Servable = net.Server | dgram.Socket;

interface Served {
  listener: WorkerListenerInfo;
  target: Servable;
  /** Per socket index, what accepts on it: the target on our own socket, a forwarder on a surplus one. */
  servers: Map<number, Servable>;
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
  private readonly served = new Map<string, Served>();
  private readonly bound = new WeakSet<dgram.Socket>();
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
    const served: Served = { listener, target, servers: new Map() };
    this.served.set(listener.name, served);
    if (target instanceof net.Server) {
      this.engine.countConnections(target, this.index);
      if (target instanceof http.Server || target instanceof https.Server) drainHttp(target, this.drainController);
      else if (isHttp2Server(target)) drainHttp2(target, this.drainController);
    }
    if (this.accepting || this.keep.includes(listener.name)) this.attach(served);
    if (this.served.size === this.byName.size) this.post({ baton: 'ready' });
  }

  private onlyListener(): WorkerListenerInfo | undefined {
    if (this.byName.size !== 1) throw invalidArgument('this worker has several listeners: name the one to serve');
    return this.byName.values().next().value;
  }

  /** Starts serving every socket of the listener not yet served (a dgram socket, once bound, stays bound). */
  private attach(served: Served): void {
    for (const { index, fd } of served.listener.sockets) {
      if (this.retired.has(`${served.listener.name}#${index}`)) continue;
      let server = served.servers.get(index);
      if (!server) {
        server = index === this.index ? served.target : this.forwarder(served);
        served.servers.set(index, server);
      }
      if ('listen' in server ? server.listening : this.bound.has(server)) continue;
      const dup = native.dup(fd);
      if ('listen' in server) {
        server.listen({ fd: dup }, served.listener.backlog);
      } else {
        this.bound.add(server);
        server.bind({ fd: dup });
      }
    }
  }

  /** A server of ours on a surplus socket that hands what it gets to the application's target. */
  private forwarder({ listener, target }: Served): Servable {
    const forwarder: Servable =
      listener.protocol === 'tcp'
        ? net.createServer((socket) => target.emit('connection', socket))
        : dgram.createSocket(listener.family === 6 ? 'udp6' : 'udp4').on('message', (message, rinfo) => target.emit('message', message, rinfo));
    forwarder.on('error', (error: Error) => this.post({ baton: 'warning', message: `worker ${this.index}, ${listener.name}: ${error.message}` }));
    return forwarder;
  }

  private post(message: FromWorker): void {
    parentPort!.postMessage(message);
  }

  private onCommand(command: ToWorker): void {
    switch (command.baton) {
      case 'stop':
        // A dgram socket cannot bind again once closed: UDP is read until terminate.
        this.accepting = false;
        this.keep = command.keep;
        for (const served of this.served.values()) {
          if (command.keep.includes(served.listener.name)) continue;
          for (const server of served.servers.values()) if ('listen' in server) stopListening(server);
        }
        return;
      case 'resume':
        this.accepting = true;
        this.keep = [];
        this.drainController.stop();
        for (const served of this.served.values()) this.attach(served);
        return;
      case 'retire': {
        this.retired.add(`${command.listener}#${command.index}`);
        const server = this.served.get(command.listener)?.servers.get(command.index);
        if (server) stopServing(server); // closes our dup at once: the socket can go
        this.post({ baton: 'retired', listener: command.listener, index: command.index });
        return;
      }
      case 'drain':
        this.drainController.stop();
        this.drainController.start(command.ms);
        this.emit('drain', command.ms);
        return;
      case 'terminate':
        this.emit('terminate');
        for (const { target, servers } of this.served.values()) {
          for (const server of servers.values()) stopServing(server);
          if (target instanceof http.Server || target instanceof https.Server) target.closeAllConnections();
        }
        // Leave the thread once the application's own handles are closed; the pool forces it after a timeout.
        parentPort!.close();
        return;
    }
  }
}

/** http2.createServer and createSecureServer make these; Node exports no class to test against. */
function isHttp2Server(server: net.Server): server is http2.Http2Server {
  return server.constructor.name === 'Http2Server' || server.constructor.name === 'Http2SecureServer';
}

/**
 * Stops serving (its dup closes; the socket lives on in the master fd).
 * Connections a server accepted stay: closing them is the drain's.
 */
function stopServing(target: Servable): void {
  if ('listen' in target) return stopListening(target);
  try {
    target.close();
  } catch {
    // Already closed.
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
