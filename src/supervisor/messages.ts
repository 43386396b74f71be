// The supervisor's command line protocol (`baton reload|status|rollback|upgrade`):
// one JSON record per SEQPACKET message on the supervisor's control socket,
// never any fd. A client sends a command, the supervisor answers it once.
// Every record is checked here, both ways, like the generations' protocol
// (src/protocol/messages.ts, whose size bound and checks it shares).

import { MAX_LISTENERS, MAX_MESSAGE_BYTES, ProtocolError, bool, excerpt, int, list, str, type Fields } from '../protocol/messages';

export const SUPERVISOR_PROTOCOL = 1;
/** Generations a status lists at most: more cannot be running (each drains on its deadline), and the record stays small. */
export const MAX_GENERATIONS = 64;

export const COMMANDS = ['reload', 'status', 'rollback', 'upgrade'] as const;
export type Command = (typeof COMMANDS)[number];

export type CommandRequest = { [C in Command]: { type: C; protocol: number; id: number } }[Command];

/** What a reload or a rollback came to, rendered once, by the supervisor: its log and the client print the same `message`. */
export interface CommandOutcome {
  ok: boolean;
  message: string;
  /** The epoch the command was about: the one a reload started, the one a rollback made serve again. */
  epoch?: number;
  /** The epoch serving now, null for none. */
  serving?: number | null;
  /** Why it failed. */
  reason?: string;
  /** A reload that took over: ms from the ask to the take-over, worker counts, sockets. */
  tookOverMs?: number;
  workers?: number;
  parentWorkers?: number;
  inherited?: number;
  created?: number;
  /** A rollback: from the epoch that served to the one that serves again. */
  from?: number;
  to?: number;
}

export type GenerationState = 'starting' | 'serving' | 'draining' | 'stopping';
export const GENERATION_STATES: readonly GenerationState[] = ['starting', 'serving', 'draining', 'stopping'];

export interface GenerationStatus {
  epoch: number;
  pid: number;
  state: GenerationState;
  /** From its take-over report: null before it took over. */
  workers: number | null;
  listeners: Array<{ name: string; sockets: number }>;
  sinceTakeOverMs: number | null;
  /** Connections open at its last load report, null before the first. */
  connections: number | null;
}

export interface SupervisorStatus {
  pid: number;
  /** The version of baton the supervisor runs (the new one after `baton upgrade`); absent from one older than `baton upgrade`, which a newer client may ask. */
  batonVersion?: string;
  /** null until the first generation has chosen one (--use-dynamic-base-id). */
  baseId: number | null;
  socket: string;
  restarts: number;
  rollbacks: number;
  generations: GenerationStatus[];
}

export interface Outcome extends CommandOutcome {
  type: 'outcome';
  protocol: number;
  re: number;
}
export interface StatusReply {
  type: 'snapshot';
  protocol: number;
  re: number;
  status: SupervisorStatus;
}
export interface ErrorReply {
  type: 'error';
  protocol: number;
  re?: number;
  code: string;
  message: string;
}
export type SupervisorReply = Outcome | StatusReply | ErrorReply;
export type SupervisorMessage = CommandRequest | SupervisorReply;

export function encodeRecord(message: SupervisorMessage): Buffer {
  const data = Buffer.from(JSON.stringify(message));
  if (data.length > MAX_MESSAGE_BYTES) {
    throw new ProtocolError(`a ${message.type} record is ${data.length} bytes, over the limit of ${MAX_MESSAGE_BYTES}`);
  }
  return data;
}

const MAX_INT = 2 ** 31 - 1;

function optionalInt(o: Fields, key: string): Record<string, number> {
  return o[key] === undefined ? {} : { [key]: int(o, key) };
}

function intOrNull(o: Fields, key: string): number | null {
  return o[key] === null ? null : int(o, key, 0, Number.MAX_SAFE_INTEGER);
}

function generationStatus(v: unknown, i: number): GenerationStatus {
  if (typeof v !== 'object' || v === null) throw new ProtocolError(`status.generations[${i}] must be an object`);
  const g: Fields = { type: `status.generations[${i}]`, ...(v as Fields) };
  const state = g.state as GenerationState;
  if (!GENERATION_STATES.includes(state)) throw new ProtocolError(`${String(g.type)}.state must be one of ${GENERATION_STATES.join(', ')}`);
  return {
    epoch: int(g, 'epoch'),
    pid: int(g, 'pid', 1),
    state,
    workers: g.workers === null ? null : int(g, 'workers'),
    listeners: list(g, 'listeners', MAX_LISTENERS, (l, j) => {
      const listener: Fields = { type: `${String(g.type)}.listeners[${j}]`, ...((l ?? {}) as Fields) };
      return { name: str(listener, 'name'), sockets: int(listener, 'sockets') };
    }),
    sinceTakeOverMs: intOrNull(g, 'sinceTakeOverMs'),
    connections: intOrNull(g, 'connections'),
  };
}

const decoders: { [T in SupervisorMessage['type']]: (o: Fields) => Extract<SupervisorMessage, { type: T }> } = {
  reload: (o) => ({ type: 'reload', protocol: int(o, 'protocol'), id: int(o, 'id') }),
  status: (o) => ({ type: 'status', protocol: int(o, 'protocol'), id: int(o, 'id') }),
  snapshot: (o) => {
    const s: Fields = { type: 'snapshot.status', ...((o.status ?? {}) as Fields) };
    return {
      type: 'snapshot',
      protocol: int(o, 'protocol'),
      re: int(o, 're'),
      status: {
        pid: int(s, 'pid', 1),
        ...(s.batonVersion === undefined ? {} : { batonVersion: str(s, 'batonVersion', 64) }),
        baseId: s.baseId === null ? null : int(s, 'baseId'),
        socket: str(s, 'socket', 1024),
        restarts: int(s, 'restarts', 0, MAX_INT),
        rollbacks: int(s, 'rollbacks', 0, MAX_INT),
        generations: list(s, 'generations', MAX_GENERATIONS, generationStatus),
      },
    };
  },
  rollback: (o) => ({ type: 'rollback', protocol: int(o, 'protocol'), id: int(o, 'id') }),
  upgrade: (o) => ({ type: 'upgrade', protocol: int(o, 'protocol'), id: int(o, 'id') }),
  outcome: (o) => ({
    type: 'outcome',
    protocol: int(o, 'protocol'),
    re: int(o, 're'),
    ok: bool(o, 'ok'),
    message: str(o, 'message', 4096),
    ...optionalInt(o, 'epoch'),
    ...(o.serving === undefined ? {} : { serving: o.serving === null ? null : int(o, 'serving') }),
    ...(o.reason === undefined ? {} : { reason: str(o, 'reason', 4096) }),
    ...optionalInt(o, 'tookOverMs'),
    ...optionalInt(o, 'workers'),
    ...optionalInt(o, 'parentWorkers'),
    ...optionalInt(o, 'inherited'),
    ...optionalInt(o, 'created'),
    ...optionalInt(o, 'from'),
    ...optionalInt(o, 'to'),
  }),
  error: (o) => ({
    type: 'error',
    protocol: int(o, 'protocol'),
    ...(o.re === undefined ? {} : { re: int(o, 're') }),
    code: str(o, 'code', 64),
    message: str(o, 'message', 4096),
  }),
};

/** Parses and checks one record; a ProtocolError names what is wrong (and the request's id, when it had a valid one). */
export function decodeRecord(data: Buffer): SupervisorMessage {
  let o: unknown;
  try {
    o = JSON.parse(data.toString('utf8'));
  } catch {
    throw new ProtocolError(`record is not JSON (${data.length} bytes)`);
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new ProtocolError('record is not a JSON object');
  const fields = o as Fields;
  const decoder = typeof fields.type === 'string' && Object.hasOwn(decoders, fields.type) ? decoders[fields.type as SupervisorMessage['type']] : undefined;
  if (!decoder) throw new ProtocolError(`unrecognized record type ${excerpt(fields.type)}`);
  if (fields.protocol !== SUPERVISOR_PROTOCOL) {
    throw new ProtocolError(
      `supervisor protocol ${excerpt(fields.protocol)}, this side speaks ${SUPERVISOR_PROTOCOL}: run the baton command of the same version as \`baton run\``,
      typeof fields.id === 'number' ? { re: fields.id } : {},
    );
  }
  return decoder(fields);
}

export function isCommand(message: SupervisorMessage): message is CommandRequest {
  return COMMANDS.includes(message.type as Command);
}
