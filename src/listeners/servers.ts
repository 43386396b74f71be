// The servers one thread runs on its sockets of one listener: the
// application's server on its own socket and, after a decrease, a forwarder
// on each surplus socket that hands what it gets to that server. Each
// listens on its own dup of the master fd (Node closes it with the server).
// The dups are made ahead, when the servers are given (before the worker
// says it is ready) and again right after each stop, so that a thread out
// of fds fails before its generation takes over, not after; a dup not yet
// listened on is ours and closed by retire() or close(). Worker threads and
// main-thread servers share it.

import * as dgram from 'node:dgram';
import { readdirSync, readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as native from '../binding';
import { stopListening } from '../drain/adapter';
import { BatonError, ErrorCodes, isSystemError } from '../errors';

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

/** How a socket is named across threads: 'tcp://127.0.0.1:8080#2'. */
export function socketKey(listener: string, index: number): string {
  return `${listener}#${index}`;
}

export class ListenerServers {
  /** Per socket index, what accepts on it: the target on our own socket, a forwarder on a surplus one. */
  private readonly servers = new Map<number, Servable>();
  private readonly bound = new WeakSet<dgram.Socket>();
  private readonly retired = new Set<number>();
  /** Per socket index, a dup made ahead for its next listen(). */
  private readonly spare = new Map<number, number>();
  private closed = false;

  constructor(
    readonly listener: ServedListener,
    readonly target: Servable,
    private readonly sockets: readonly ServedSocket[],
    /** The socket the target itself serves. */
    private readonly ownIndex: number,
    /** A forwarder's error (it has no user to tell otherwise). */
    private readonly warn: (message: string) => void,
  ) {}

  /**
   * Makes the dup of every socket not served and not retired, ahead of
   * attach(). Out of fds, a BATON_CAPACITY error names the limit; what it
   * made is kept (and closed by close()).
   */
  prepare(): void {
    if (this.closed) return;
    for (const { index, fd } of this.sockets) {
      if (this.retired.has(index) || this.spare.has(index) || this.serving(index)) continue;
      try {
        this.spare.set(index, native.dup(fd));
      } catch (error) {
        if (!isSystemError(error, 'EMFILE') && !isSystemError(error, 'ENFILE')) throw error;
        throw new BatonError(ErrorCodes.CAPACITY, `no fd left to serve socket ${index} of ${this.listener.name}: ${fdLimit()}`, { cause: error });
      }
    }
  }

  /** Starts serving every socket not served yet, or only those `only` picks (a dgram socket, once bound, stays bound). */
  attach(only: (index: number) => boolean = () => true): void {
    for (const { index, fd } of this.sockets) {
      if (this.retired.has(index) || !only(index) || this.serving(index)) continue;
      let server = this.servers.get(index);
      if (!server) {
        server = index === this.ownIndex ? this.target : this.forwarder();
        this.servers.set(index, server);
      }
      const dup = this.spare.get(index) ?? native.dup(fd);
      this.spare.delete(index);
      if ('listen' in server) {
        server.listen({ fd: dup }, this.listener.backlog);
      } else {
        this.bound.add(server);
        server.bind({ fd: dup });
      }
    }
  }

  /**
   * Stops accepting, except on the sockets `keep` picks; connections stay
   * (closing them is the drain's). A dgram socket cannot bind again once
   * closed: UDP is read until close().
   */
  stop(keep: (index: number) => boolean = () => false): void {
    for (const [index, server] of this.servers) if ('listen' in server && !keep(index)) stopListening(server);
    try {
      this.prepare(); // for a resume (our child went away): it must not be the moment we run out of fds
    } catch (error) {
      this.warn(`${this.listener.name}: no dup ahead for a resume (${(error as Error).message}); one is made then`);
    }
  }

  private serving(index: number): boolean {
    const server = this.servers.get(index);
    return server !== undefined && ('listen' in server ? server.listening : this.bound.has(server));
  }

  private closeSpare(index: number): void {
    const fd = this.spare.get(index);
    this.spare.delete(index);
    if (fd !== undefined) native.close(fd);
  }

  /** Lets go of one socket for good (its dup closes at once; its fd number may be reused, so it is never served again). */
  retire(index: number): void {
    this.retired.add(index);
    this.closeSpare(index);
    const server = this.servers.get(index);
    if (server) stopServing(server);
  }

  /** Stops serving every socket. */
  close(): void {
    this.closed = true;
    for (const server of this.servers.values()) stopServing(server);
    for (const index of [...this.spare.keys()]) this.closeSpare(index);
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

/** The process's open fds and its limit (RLIMIT_NOFILE, soft); undefined where /proc cannot say. */
export function fdUsage(): { open: number; limit: number } | undefined {
  try {
    const open = readdirSync('/proc/self/fd').length;
    const limit = Number(/^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1]);
    return Number.isFinite(limit) ? { open, limit } : undefined;
  } catch {
    return undefined;
  }
}

/** The process's open fds against its limit, and what to do about it. */
export function fdLimit(): string {
  const usage = fdUsage();
  const facts = usage ? `${usage.open} fds open, limit ${usage.limit}` : 'fds exhausted';
  return `${facts} (RLIMIT_NOFILE): raise it (ulimit -n, LimitNOFILE= in a systemd unit) or start fewer workers`;
}
