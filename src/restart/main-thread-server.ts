// A server on the main thread that serves a generation's sockets of one
// listener, as a worker thread does: its own socket and, after a decrease,
// the surplus ones it is given until they are retired. It is a follower of
// the generation. The admin listener is one; an application that runs its
// workers its own way (or none) serves with serveOnMainThread().

import * as net from 'node:net';
import { drainByProtocol, isHttp1Server } from '../drain/server';
import type { ListenerSet, SocketEntry } from '../listeners/listener-set';
import type { Listener } from '../listeners/spec';
import { ListenerServers, type Servable } from '../listeners/servers';
import { invalidArgument } from '../errors';
import type { Follower } from './follower';
import type { Generation } from './generation';

export interface MainThreadServeOptions {
  /** The listener's name ('tcp://127.0.0.1:8080'); default: the only listener. */
  listener?: string;
  /** Whose sockets to serve: worker `worker`'s own and its surplus ones. Default 0. */
  worker?: number;
}

export class MainThreadServer implements Follower {
  private readonly servers: ListenerServers;
  private readonly listener: Listener;

  constructor(sockets: ListenerSet, target: Servable, options: MainThreadServeOptions, warn: (message: string) => void) {
    const { listener: name, worker = 0 } = options;
    const candidates = sockets.listeners.filter((l) => (name === undefined ? l.role === 'workers' : l.name === name));
    if (candidates.length !== 1) {
      const names = sockets.listeners.map((l) => l.name).join(', ');
      throw invalidArgument(name === undefined ? `name the listener to serve: this generation has ${names}` : `no listener named '${name}'; this generation has ${names}`);
    }
    this.listener = candidates[0];
    if (!Number.isInteger(worker) || worker < 0 || worker >= sockets.workers) throw invalidArgument(`worker must be 0..${sockets.workers - 1}`);
    const own = this.listener.role === 'admin' ? 0 : worker;
    const served = sockets.entries().filter((e) => e.listener === this.listener && (this.listener.role === 'admin' || e.worker === worker));
    const info = { name: this.listener.name, protocol: this.listener.address.protocol, family: this.listener.family, backlog: this.listener.backlog };
    this.servers = new ListenerServers(info, target, served, own, warn);
  }

  get target(): Servable {
    return this.servers.target;
  }

  resumeAccepting(): void {
    this.servers.attach();
  }

  stopAccepting(keep: readonly Listener[]): void {
    if (!keep.includes(this.listener)) this.servers.stop();
  }

  /** Its kept-alive connections are the drain's to close. */
  retire(entry: SocketEntry): void {
    if (entry.listener === this.listener) this.servers.retire(entry.index);
  }

  terminate(): void {
    this.servers.close();
    const target = this.servers.target;
    if (target instanceof net.Server && isHttp1Server(target)) target.closeAllConnections();
  }
}

/**
 * Serves `target` (an http, https, http2 or net server, or a dgram socket)
 * on the main thread, on the generation's sockets of one listener: from
 * takeOver() on (or at once if the generation already accepts), stopping
 * and draining with the generation (drainHttp or drainHttp2 for those
 * servers), letting go of retired sockets, closed at termination.
 */
export function serveOnMainThread(generation: Generation, target: Servable, options: MainThreadServeOptions = {}): MainThreadServer {
  const server = new MainThreadServer(generation.listenerSet, target, options, (message) => generation.warn(message));
  if (target instanceof net.Server) drainByProtocol(target, generation.drainController);
  generation.follow(server);
  return server;
}
