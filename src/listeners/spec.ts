// Listeners as a user writes them ('127.0.0.1:8080', { host, port, ... }) and
// as a generation uses them: validated, canonical, indexed and named. Text
// and checks only; the sockets themselves are the ListenerSet's.

import { isIP, SocketAddress } from 'node:net';
import type { Family } from '../binding';
import { invalidArgument } from '../errors';
import { MAX_LISTENERS, type ListenerAddress, type Protocol } from '../protocol/messages';

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
  /** 'workers': one socket per worker; 'admin': one socket, served by the generation itself (GET /metrics). */
  role: 'workers' | 'admin';
  /** 'tcp://127.0.0.1:8080', 'udp://[::1]:5353'. */
  name: string;
  address: ListenerAddress;
  family: Family;
  ipv6Only: boolean;
  backlog: number;
}

export const DEFAULT_BACKLOG = 511;

/**
 * 'host:port' or '[v6]:port'; undefined if the text is neither, so the caller
 * names what it was parsing. Host and port are checked by resolveListeners.
 */
export function parseHostPort(text: string): Pick<ListenerSpec, 'host' | 'port'> | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  return match ? { host: match[1] ?? match[2], port: Number(match[3]) } : undefined;
}

/** 'host:port', '[v6]:port', optionally prefixed 'tcp://' or 'udp://'. */
export function parseListen(text: string): ListenerSpec {
  const scheme = /^(tcp|udp):\/\//.exec(text);
  const address = parseHostPort(scheme ? text.slice(scheme[0].length) : text);
  if (!address) throw invalidArgument(`listen address '${text}' is not host:port, [v6]:port or udp://host:port`);
  return { protocol: (scheme?.[1] as Protocol | undefined) ?? 'tcp', ...address };
}

export function listenerName(address: ListenerAddress): string {
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `${address.protocol}://${host}:${address.port}`;
}

/** The listeners, and the admin listener after them if there is one. */
export function resolveListeners(specs: ListenerSpec[], admin?: ListenerSpec): Listener[] {
  if (!Array.isArray(specs) || specs.length + (admin ? 1 : 0) > MAX_LISTENERS) {
    throw invalidArgument(`listeners must be an array of at most ${MAX_LISTENERS}`);
  }
  if (admin && (admin.protocol ?? 'tcp') !== 'tcp') throw invalidArgument('the admin listener must be TCP');
  const listeners = [...specs, ...(admin ? [admin] : [])].map((spec, index): Listener => {
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
    const role = admin && index === specs.length ? 'admin' : 'workers';
    return { index, role, name: listenerName(address), address, family: family as Family, ipv6Only: spec.ipv6Only ?? false, backlog };
  });
  const names = new Set(listeners.map((l) => l.name));
  if (names.size !== listeners.length) throw invalidArgument('listeners must not repeat an address');
  return listeners;
}
