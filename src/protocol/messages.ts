// The control protocol between a generation and its child: one JSON record
// per SEQPACKET message, fds riding on `sockets` records only. Every record
// is validated here before anything acts on it; whatever does not fit is a
// ProtocolError naming the field, never a crash and never a lost socket.

import { SCM_MAX_FD } from '../binding';
import { BatonError, ErrorCodes } from '../errors';
import { isIntegerIn } from '../validate';

export const PROTOCOL_VERSION = 2;
/** Largest record either side sends or accepts. */
export const MAX_MESSAGE_BYTES = 64 * 1024;
/** Bounds on what one request may name, so a request can never be oversized. */
export const MAX_LISTENERS = 256;
export const MAX_WORKERS = 256;

export type Protocol = 'tcp' | 'udp';

/** A listener's identity across generations: sockets are matched on it. */
export interface ListenerAddress {
  protocol: Protocol;
  host: string;
  port: number;
}

/**
 * What the child does with the parent's sockets beyond its worker count:
 * 'drain' takes them all, serves them at once, steers new traffic away and
 * retires each once its queue stays empty (nothing lost); 'close' leaves them
 * to the parent, which closes them as it drains (Envoy's way: their queues
 * are lost).
 */
export type SurplusPolicy = 'drain' | 'close';

/** A listener as the child wants it: `sockets` when not one per worker (the admin listener has one). */
export interface WantedListener extends ListenerAddress {
  ipv6Only: boolean;
  sockets?: number;
}
/** A listener as the parent holds it: sockets 0..sockets-1. */
export interface HeldListener extends ListenerAddress {
  ipv6Only: boolean;
  sockets: number;
}

/** One socket in a `sockets` reply: the index into the request's listeners and the socket's index in its group. */
export interface SocketRef {
  listener: number;
  index: number;
}

// Child -> parent.
export interface Hello {
  type: 'hello';
  protocol: number;
  hotRestartVersion: string;
  epoch: number;
  pid: number;
}
/** Everything the child needs, in one request; the parent answers by src/listeners/plan.ts. */
export interface GetSockets {
  type: 'getSockets';
  id: number;
  listeners: WantedListener[];
  /** The child's worker count. */
  workers: number;
  surplus: SurplusPolicy;
}
export interface Drain {
  type: 'drain';
  id: number;
}
export interface Terminate {
  type: 'terminate';
  id: number;
}
/**
 * Whether the child itself accepts. It stops once a child of its own has
 * taken over: its death is then no reason for us to accept again.
 */
export interface Accepting {
  type: 'accepting';
  id: number;
  accepting: boolean;
}

/**
 * The child retired one of the sockets it took (a surplus one, once its
 * queue stayed empty): the parent closes its copy too, and tells its own
 * parent, so that the socket leaves its group (a UDP socket does only once
 * no process holds it).
 */
export interface Retired {
  type: 'retired';
  id: number;
  listener: ListenerAddress;
  index: number;
}

/** The parent's stats, as src/stats/registry.ts snapshots them; answered by `stats`. */
export interface GetStats {
  type: 'getStats';
  id: number;
}

// Parent -> child.
export interface Welcome {
  type: 'welcome';
  protocol: number;
  hotRestartVersion: string;
  epoch: number;
  pid: number;
}
export interface Sockets {
  type: 'sockets';
  re: number;
  part: number;
  parts: number;
  /** One entry per fd on this record, in order. */
  sockets: SocketRef[];
  /** Every listener the parent holds (first part only): both sides plan the handoff from it. */
  held: HeldListener[];
}
/**
 * A stats snapshot, in parts of at most one record each: the answer to
 * getStats (re), or unasked (final) as the parent terminates, once its
 * workers have stopped, before it closes the channel.
 */
export interface Stats {
  type: 'stats';
  re?: number;
  final?: true;
  part: number;
  parts: number;
  /** A part of a StatsSnapshot; checked whole when the child imports it. */
  snapshot: Record<string, unknown>;
}
export interface Ack {
  type: 'ack';
  re: number;
}
/** Answers a request (re) or, without re, a record that could not be read. */
export interface ErrorReply {
  type: 'error';
  re?: number;
  code: string;
  message: string;
}
/** The parent will not serve this child; it closes the channel after sending it. */
export interface Refused {
  type: 'refused';
  code: string;
  message: string;
}

export type ChildMessage = Hello | GetSockets | GetStats | Drain | Terminate | Accepting | Retired;
export type ParentMessage = Welcome | Sockets | Stats | Ack | ErrorReply | Refused;
export type Message = ChildMessage | ParentMessage;
export type Request = GetSockets | GetStats | Drain | Terminate | Accepting | Retired;
export type Reply = Sockets | Stats | Ack | ErrorReply;

/** The ids of a record that could not be read, as far as it was readable. */
export interface RecordIds {
  /** Its own request id: the error answers it. */
  re?: number;
  /** The id of our request it answers: that request fails. */
  answers?: number;
}

export class ProtocolError extends BatonError {
  readonly re?: number;
  readonly answers?: number;

  constructor(message: string, ids: RecordIds = {}) {
    super(ErrorCodes.PROTOCOL, message);
    if (ids.re !== undefined) this.re = ids.re;
    if (ids.answers !== undefined) this.answers = ids.answers;
  }
}

export function encode(message: Message): Buffer {
  const data = Buffer.from(JSON.stringify(message));
  if (data.length > MAX_MESSAGE_BYTES) {
    throw new ProtocolError(`a ${message.type} record is ${data.length} bytes, over the limit of ${MAX_MESSAGE_BYTES}`);
  }
  return data;
}

export type Fields = Record<string, unknown>;

export function int(o: Fields, key: string, min = 0, max = 2 ** 31 - 1): number {
  const v = o[key];
  if (!isIntegerIn(v, min, max)) throw new ProtocolError(`${o.type}.${key} must be an integer in ${min}..${max}`, idsOf(o));
  return v;
}

export function bool(o: Fields, key: string): boolean {
  const v = o[key];
  if (typeof v !== 'boolean') throw new ProtocolError(`${o.type}.${key} must be true or false`, idsOf(o));
  return v;
}

function oneOf<T extends string>(o: Fields, key: string, values: readonly T[]): T {
  const v = o[key];
  if (!values.includes(v as T)) throw new ProtocolError(`${o.type}.${key} must be one of ${values.join(', ')}`, idsOf(o));
  return v as T;
}

export function str(o: Fields, key: string, maxLength = 256): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length > maxLength) {
    throw new ProtocolError(`${o.type}.${key} must be a string of at most ${maxLength} characters`, idsOf(o));
  }
  return v;
}

export function list<T>(o: Fields, key: string, max: number, item: (v: unknown, i: number) => T): T[] {
  const v = o[key];
  if (!Array.isArray(v) || v.length > max) {
    throw new ProtocolError(`${o.type}.${key} must be an array of at most ${max} entries`, idsOf(o));
  }
  return v.map(item);
}

/** A record's valid ids: a request's, so the error answers it; a reply's, so our request fails at once. */
function idsOf(o: Fields): RecordIds {
  const valid = (id: unknown): id is number => isIntegerIn(id, 0, 2 ** 31 - 1);
  return { ...(valid(o.id) ? { re: o.id } : {}), ...(valid(o.re) ? { answers: o.re } : {}) };
}

function listenerAddress(o: Fields, v: unknown, where = 'listener'): ListenerAddress {
  const a = (v ?? {}) as Fields;
  if (a.protocol !== 'tcp' && a.protocol !== 'udp') throw new ProtocolError(`${o.type}.${where}.protocol must be 'tcp' or 'udp'`, idsOf(o));
  if (typeof a.host !== 'string' || a.host.length > 64 || !isIntegerIn(a.port, 0, 65535)) {
    throw new ProtocolError(`${o.type}.${where} must have a host string and a port 0..65535`, idsOf(o));
  }
  return { protocol: a.protocol, host: a.host, port: a.port };
}

function listenerWithSockets(o: Fields, key: string, v: unknown, i: number, socketsRequired: boolean) {
  const address = listenerAddress(o, v, `${key}[${i}]`);
  const { ipv6Only, sockets } = (v ?? {}) as Fields;
  if (typeof ipv6Only !== 'boolean') throw new ProtocolError(`${o.type}.${key}[${i}].ipv6Only must be true or false`, idsOf(o));
  if ((socketsRequired || sockets !== undefined) && !isIntegerIn(sockets, 1, MAX_WORKERS)) {
    throw new ProtocolError(`${o.type}.${key}[${i}].sockets must be 1..${MAX_WORKERS}`, idsOf(o));
  }
  return { ...address, ipv6Only, ...(sockets === undefined ? {} : { sockets: sockets as number }) };
}

const wantedListener = (o: Fields, key: string) => (v: unknown, i: number): WantedListener => listenerWithSockets(o, key, v, i, false);
const heldListener = (o: Fields) => (v: unknown, i: number) => listenerWithSockets(o, 'held', v, i, true) as HeldListener;

function socketRefs(o: Fields): SocketRef[] {
  return list(o, 'sockets', SCM_MAX_FD, (v, i) => {
    const r = (v ?? {}) as Fields;
    if (!isIntegerIn(r.listener, 0, MAX_LISTENERS - 1) || !isIntegerIn(r.index, 0, MAX_WORKERS - 1)) {
      throw new ProtocolError(`sockets.sockets[${i}] must name a listener and a socket index`, idsOf(o));
    }
    return { listener: r.listener, index: r.index };
  });
}

const decoders: { [T in Message['type']]: (o: Fields) => Extract<Message, { type: T }> } = {
  hello: (o) => ({
    type: 'hello',
    protocol: int(o, 'protocol'),
    hotRestartVersion: str(o, 'hotRestartVersion'),
    epoch: int(o, 'epoch'),
    pid: int(o, 'pid', 1),
  }),
  welcome: (o) => ({
    type: 'welcome',
    protocol: int(o, 'protocol'),
    hotRestartVersion: str(o, 'hotRestartVersion'),
    epoch: int(o, 'epoch'),
    pid: int(o, 'pid', 1),
  }),
  getSockets: (o) => ({
    type: 'getSockets',
    id: int(o, 'id'),
    listeners: list(o, 'listeners', MAX_LISTENERS, wantedListener(o, 'listeners')),
    workers: int(o, 'workers', 1, MAX_WORKERS),
    surplus: oneOf(o, 'surplus', ['drain', 'close'] as const),
  }),
  getStats: (o) => ({ type: 'getStats', id: int(o, 'id') }),
  stats: (o) => {
    const parts = int(o, 'parts', 1, 1024);
    const snapshot = o.snapshot;
    if (typeof snapshot !== 'object' || snapshot === null || Array.isArray(snapshot)) throw new ProtocolError('stats.snapshot must be an object', idsOf(o));
    return {
      type: 'stats',
      ...(o.re === undefined ? {} : { re: int(o, 're') }),
      ...(o.final === true ? { final: true as const } : {}),
      part: int(o, 'part', 0, parts - 1),
      parts,
      snapshot: snapshot as Record<string, unknown>,
    };
  },
  drain: (o) => ({ type: 'drain', id: int(o, 'id') }),
  terminate: (o) => ({ type: 'terminate', id: int(o, 'id') }),
  accepting: (o) => ({ type: 'accepting', id: int(o, 'id'), accepting: bool(o, 'accepting') }),
  retired: (o) => ({
    type: 'retired',
    id: int(o, 'id'),
    listener: listenerAddress(o, o.listener),
    index: int(o, 'index', 0, MAX_WORKERS - 1),
  }),
  sockets: (o) => {
    const parts = int(o, 'parts', 1, MAX_LISTENERS * MAX_WORKERS);
    return {
      type: 'sockets',
      re: int(o, 're'),
      part: int(o, 'part', 0, parts - 1),
      parts,
      sockets: socketRefs(o),
      held: list(o, 'held', MAX_LISTENERS, heldListener(o)),
    };
  },
  ack: (o) => ({ type: 'ack', re: int(o, 're') }),
  error: (o) => ({
    type: 'error',
    ...(o.re === undefined ? {} : { re: int(o, 're') }),
    code: str(o, 'code', 64),
    message: str(o, 'message', 4096),
  }),
  refused: (o) => ({ type: 'refused', code: str(o, 'code', 64), message: str(o, 'message', 4096) }),
};

/**
 * Parses and validates one record. `fdCount` is how many fds came with it:
 * only a `sockets` record may carry fds, exactly one per entry. The caller
 * owns the fds and closes them when this throws.
 */
export function decode(data: Buffer, fdCount: number): Message {
  if (data.length > MAX_MESSAGE_BYTES) {
    throw new ProtocolError(`record of ${data.length} bytes is over the limit of ${MAX_MESSAGE_BYTES}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.toString('utf8'));
  } catch {
    throw new ProtocolError(`record is not JSON (${data.length} bytes)`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ProtocolError('record is not a JSON object');
  }
  const o = parsed as Fields;
  const decoder = typeof o.type === 'string' && Object.hasOwn(decoders, o.type) ? decoders[o.type as Message['type']] : undefined;
  if (!decoder) throw new ProtocolError(`unrecognized message type ${excerpt(o.type)}`, idsOf(o));
  const message = decoder(o);
  const expected = message.type === 'sockets' ? message.sockets.length : 0;
  if (fdCount !== expected) {
    throw new ProtocolError(`a ${message.type} record came with ${fdCount} fds, expected ${expected}`, idsOf(o));
  }
  return message;
}

/** Splits the fds of a getSockets answer into records of at most SCM_MAX_FD. */
export function socketsRecords(re: number, refs: SocketRef[], held: HeldListener[]): Sockets[] {
  const parts = Math.max(1, Math.ceil(refs.length / SCM_MAX_FD));
  return Array.from({ length: parts }, (_, part) => ({
    type: 'sockets',
    re,
    part,
    parts,
    sockets: refs.slice(part * SCM_MAX_FD, (part + 1) * SCM_MAX_FD),
    held: part === 0 ? held : [],
  }));
}

/** A peer's value quoted in an error, short enough that the error itself always fits a record. */
export function excerpt(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}
