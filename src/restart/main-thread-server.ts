// A server on the main thread that serves a generation's sockets of one
// listener, as a worker thread does: its own socket and, after a decrease,
// the surplus ones it is given until they are retired. It is a follower of
// the generation. The admin listener is one; an application that runs its
// workers its own way (or none) serves with serveOnMainThread().

import * as net from 'node:net';
import { isHttp1Server } from '../drain/server';
import type { ListenerSet, SocketEntry } from '../listeners/listener-set';
import type { Listener } from '../listeners/spec';
import { ListenerServers, type Servable } from '../listeners/servers';
import { invalidArgument } from '../errors';
import type { Follower } from './follower';

/** serveOnMainThread()'s options: which sockets to serve. */
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
    this.servers.prepare();
  }

  get target(): Servable {
    return this.servers.target;
  }

  resumeAccepting(): void {
    this.servers.attach();
  }

  stopAccepting(keep: readonly SocketEntry[]): void {
    this.servers.stop((index) => keep.some((e) => e.listener === this.listener && e.index === index));
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
