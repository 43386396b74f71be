// The sockets of one generation: for every listener and worker index, the one
// "master" fd this process owns. Workers serve dups of it; the parent's
// copy is what goes to the child; it is closed exactly once, by close().

import { isIP, SocketAddress } from 'node:net';
import * as native from '../binding';
import type { Family } from '../binding';
import { BatonError, ErrorCodes, invalidArgument } from '../errors';
import type { InheritedSockets } from '../restart/child';
import type { ListenerAddress, Protocol, SocketRef } from '../protocol/messages';
import { MAX_LISTENERS, MAX_WORKERS } from '../protocol/messages';

export interface ListenerSpec {
  protocol?: Protocol;
  /** An IP literal: '127.0.0.1', '::', '::1'... */
  host: string;
  port: number;
  /** IPv6 listeners only: do not also accept IPv4. Default false. */
  ipv6Only?: boolean;
  /** TCP accept queue length. Default 511, as Node's. */
  backlog?: number;
}

export interface Listener {
  index: number;
  /** 'tcp://127.0.0.1:8080', 'udp://[::1]:5353'. */
  name: string;
  address: ListenerAddress;
  family: Family;
  ipv6Only: boolean;
  backlog: number;
}

export type Origin = 'inherited' | 'created';

export interface SocketEntry {
  listener: Listener;
  worker: number;
  fd: number;
  origin: Origin;
}

export const DEFAULT_BACKLOG = 511;

/** 'host:port', '[v6]:port', optionally prefixed 'tcp://' or 'udp://'. */
export function parseListen(text: string): ListenerSpec {
  const match = /^(?:(tcp|udp):\/\/)?(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!match) throw invalidArgument(`listen address '${text}' is not host:port, [v6]:port or udp://host:port`);
  return { protocol: (match[1] as Protocol | undefined) ?? 'tcp', host: match[2] ?? match[3], port: Number(match[4]) };
}

export function listenerName(address: ListenerAddress): string {
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `${address.protocol}://${host}:${address.port}`;
}

export function resolveListeners(specs: ListenerSpec[]): Listener[] {
  if (!Array.isArray(specs) || specs.length > MAX_LISTENERS) {
    throw invalidArgument(`listeners must be an array of at most ${MAX_LISTENERS}`);
  }
  const listeners = specs.map((spec, index): Listener => {
    const protocol = spec.protocol ?? 'tcp';
    const family = isIP(spec.host);
    if (protocol !== 'tcp' && protocol !== 'udp') throw invalidArgument(`listeners[${index}].protocol must be 'tcp' or 'udp'`);
    if (family === 0) throw invalidArgument(`listeners[${index}].host must be an IP address, got '${spec.host}'`);
    if (!Number.isInteger(spec.port) || spec.port < 1 || spec.port > 65535) {
      throw invalidArgument(`listeners[${index}].port must be 1..65535 (a fixed port: the next generation finds its sockets by it)`);
    }
    const backlog = spec.backlog ?? DEFAULT_BACKLOG;
    if (!Number.isInteger(backlog) || backlog < 1 || backlog > 65535) throw invalidArgument(`listeners[${index}].backlog must be 1..65535`);
    // Canonical ('0::1' is '::1'), since generations match their sockets by address.
    const host = new SocketAddress({ address: spec.host, family: family === 6 ? 'ipv6' : 'ipv4' }).address;
    const address = { protocol, host, port: spec.port };
    return { index, name: listenerName(address), address, family: family as Family, ipv6Only: spec.ipv6Only ?? false, backlog };
  });
  const names = new Set(listeners.map((l) => l.name));
  if (names.size !== listeners.length) throw invalidArgument('listeners must not repeat an address');
  return listeners;
}

export class ListenerSet {
  private readonly sockets = new Map<number, Map<number, SocketEntry>>();
  private closed = false;

  private constructor(
    readonly listeners: Listener[],
    readonly workers: number,
  ) {}

  /**
   * Adopts what the parent handed over and creates the rest. Each adopted fd
   * is checked to be the socket it claims to be; on any failure every fd is
   * closed and the parent, which still holds its own, is unaffected.
   */
  static assemble(listeners: Listener[], workers: number, inherited: InheritedSockets): ListenerSet {
    if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) throw invalidArgument(`workers must be 1..${MAX_WORKERS}`);
    const set = new ListenerSet(listeners, workers);
    const unclaimed = [...inherited.fds.values()].flatMap((byWorker) => [...byWorker.values()]);
    try {
      for (const listener of listeners) {
        for (let worker = 0; worker < workers; worker++) {
          const fd = inherited.fds.get(listener.index)?.get(worker);
          if (fd === undefined) {
            set.add(listener, worker, createSocket(listener), 'created');
          } else {
            unclaimed.splice(unclaimed.indexOf(fd), 1);
            set.add(listener, worker, fd, 'inherited');
            checkSocket(listener, fd);
          }
        }
      }
    } catch (error) {
      for (const fd of unclaimed) native.close(fd);
      set.close();
      throw error;
    }
    for (const fd of unclaimed) native.close(fd);
    return set;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  entries(): SocketEntry[] {
    return [...this.sockets.values()].flatMap((byWorker) => [...byWorker.values()]);
  }

  fd(listener: number, worker: number): number {
    const entry = this.sockets.get(listener)?.get(worker);
    if (!entry || this.closed) throw new BatonError(ErrorCodes.INVALID_STATE, `no socket for listener ${listener}, worker ${worker}`);
    return entry.fd;
  }

  /** A new fd for the socket of (listener, worker), owned by the caller: give it to net/http/dgram. */
  dup(listener: number, worker: number): number {
    return native.dup(this.fd(listener, worker));
  }

  /** The sockets a child asks for, matched by address and worker index; the fds stay ours. */
  lookup(addresses: ListenerAddress[], workers: number[]): { refs: SocketRef[]; fds: number[]; available: number[] } {
    const refs: SocketRef[] = [];
    const fds: number[] = [];
    const available = addresses.map((address, i) => {
      const listener = this.listeners.find((l) => l.name === listenerName(address));
      const byWorker = listener && this.sockets.get(listener.index);
      if (!byWorker) return 0;
      for (const worker of workers) {
        const entry = byWorker.get(worker);
        if (entry) {
          refs.push({ listener: i, worker });
          fds.push(entry.fd);
        }
      }
      return byWorker.size;
    });
    return { refs, fds, available };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const entry of this.entries()) native.close(entry.fd);
  }

  private add(listener: Listener, worker: number, fd: number, origin: Origin): void {
    if (!this.sockets.has(listener.index)) this.sockets.set(listener.index, new Map());
    this.sockets.get(listener.index)!.set(worker, { listener, worker, fd, origin });
  }
}

/**
 * A TCP socket is only bound here: its worker's listen() puts it in the
 * SO_REUSEPORT group, so a generation that fails before its workers serve
 * never held connections it would then reset.
 */
function createSocket(listener: Listener): number {
  const { host, port, protocol } = listener.address;
  return protocol === 'tcp'
    ? native.tcpBind(listener.family, host, port, listener.ipv6Only)
    : native.udpBind(listener.family, host, port, listener.ipv6Only);
}

/** An inherited fd must be the socket the parent says it is. */
function checkSocket(listener: Listener, fd: number): void {
  const info = native.socketInfo(fd);
  const tcp = listener.address.protocol === 'tcp';
  const ok =
    info.family === listener.family &&
    info.type === (tcp ? 'stream' : 'dgram') &&
    info.port === listener.address.port &&
    info.reusePort &&
    info.listening === tcp;
  if (!ok) {
    throw new BatonError(
      ErrorCodes.PROTOCOL,
      `the parent handed over fd ${fd} for ${listener.name}, but it is a ${info.type} socket on ${info.address}:${info.port}` +
        ` (reuseport ${info.reusePort}, listening ${info.listening})`,
    );
  }
}
