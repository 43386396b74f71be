// The servers one thread runs on its sockets of one listener: the
// application's server on its own socket and, after a decrease, a forwarder
// on each surplus socket that hands what it gets to that server. Each
// listens on its own dup of the master fd, made right before listen() so
// the dup is owned by the server from its first instant (Node closes it
// with the server). Worker threads and main-thread servers share it.

import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as native from '../binding';
import { stopListening } from '../drain/adapter';

export type Servable = net.Server | dgram.Socket;

export interface ServedListener {
  name: string;
  protocol: 'tcp' | 'udp';
  family: 4 | 6;
  backlog: number;
}

export interface ServedSocket {
  /** Its position in the listener's group. */
  index: number;
  /** The master fd (owned elsewhere); the server listens on a dup of it. */
  fd: number;
}

export class ListenerServers {
  /** Per socket index, what accepts on it: the target on our own socket, a forwarder on a surplus one. */
  private readonly servers = new Map<number, Servable>();
  private readonly bound = new WeakSet<dgram.Socket>();
  private readonly retired = new Set<number>();

  constructor(
    readonly listener: ServedListener,
    readonly target: Servable,
    private readonly sockets: readonly ServedSocket[],
    /** The socket the target itself serves. */
    private readonly ownIndex: number,
    /** A forwarder's error (it has no user to tell otherwise). */
    private readonly warn: (message: string) => void,
  ) {}

  /** Starts serving every socket not served yet (a dgram socket, once bound, stays bound). */
  attach(): void {
    for (const { index, fd } of this.sockets) {
      if (this.retired.has(index)) continue;
      let server = this.servers.get(index);
      if (!server) {
        server = index === this.ownIndex ? this.target : this.forwarder();
        this.servers.set(index, server);
      }
      if ('listen' in server ? server.listening : this.bound.has(server)) continue;
      const dup = native.dup(fd);
      if ('listen' in server) {
        server.listen({ fd: dup }, this.listener.backlog);
      } else {
        this.bound.add(server);
        server.bind({ fd: dup });
      }
    }
  }

  /** Stops accepting; connections stay (closing them is the drain's). A dgram socket cannot bind again once closed: UDP is read until close(). */
  stop(): void {
    for (const server of this.servers.values()) if ('listen' in server) stopListening(server);
  }

  /** Lets go of one socket for good (its dup closes at once; its fd number may be reused, so it is never served again). */
  retire(index: number): void {
    this.retired.add(index);
    const server = this.servers.get(index);
    if (server) stopServing(server);
  }

  /** Stops serving every socket. */
  close(): void {
    for (const server of this.servers.values()) stopServing(server);
  }

  private forwarder(): Servable {
    const { protocol, family, name } = this.listener;
    const target = this.target;
    const forwarder: Servable =
      protocol === 'tcp'
        ? net.createServer((socket) => target.emit('connection', socket))
        : dgram.createSocket(family === 6 ? 'udp6' : 'udp4').on('message', (message, rinfo) => target.emit('message', message, rinfo));
    forwarder.on('error', (error: Error) => this.warn(`${name}: ${error.message}`));
    return forwarder;
  }
}

/** Stops serving (its dup closes; the socket lives on in the master fd). Connections a server accepted stay. */
function stopServing(target: Servable): void {
  if ('listen' in target) return stopListening(target);
  try {
    target.close();
  } catch {
    // Already closed.
  }
}
