// What crosses `baton upgrade`'s exec: everything the supervisor knows, as
// one versioned JSON record in the new image's environment. The new code
// reads every version in READABLE_STATE_VERSIONS; its dry run (`baton
// upgrade-check`) refuses a state it cannot read before the old image execs.

import { resolveOptions, type HotRestartOptions } from '../options';
import { ProtocolError, bool, int, list, str, type Fields } from '../protocol/messages';
import type { StatusReport } from '../restart/status';
import { GENERATION_STATES, MAX_GENERATIONS, type GenerationState } from './messages';

export const STATE_ENV = 'BATON_UPGRADE_STATE';
export const STATE_VERSION = 1;
/** The versions this code reads: its own and older ones (none older yet). */
export const READABLE_STATE_VERSIONS: readonly number[] = [1];

export interface CarriedGeneration {
  epoch: number;
  parentEpoch?: number;
  pid: number;
  phase: GenerationState;
  reload: boolean;
  /** Relative, as the new image's performance.now() starts again at 0. */
  tookOverAgoMs?: number;
  takenOver?: Extract<StatusReport, { event: 'takenOver' }>;
  connections?: number;
  /** The supervisor's end of its status pipe; -1 once it was closed (the pipe's end of file came). */
  statusFd: number;
  /** Reaped by the old image but not reported yet (its last status lines were still being read). */
  exit?: { code: number | null; signal: NodeJS.Signals | null };
}

export interface CarriedOptions {
  command: string;
  args: string[];
  engine: Partial<HotRestartOptions>;
  killTimeoutMs: number;
  rollback: 'auto' | 'off';
  log: 'text' | 'json' | 'details';
  pidFile?: string;
}

export interface UpgradeState {
  stateVersion: number;
  /** The version of the image that wrote it. */
  batonVersion: string;
  baseId: number | null;
  highestEpoch: number | null;
  restarts: number;
  rollbacks: number;
  options: CarriedOptions;
  generations: CarriedGeneration[];
  /** The listening control socket, kept (no re-bind, no unlink). */
  controlFd: number | null;
  /** NOTIFY_SOCKET and WATCHDOG_USEC as systemd gave them to the first image. */
  systemd: { notifySocket: string; watchdogUsec?: string } | null;
  /** The `baton upgrade` client's connection, answered by the new image, and its request id. */
  answer: { fd: number; re: number } | null;
}

export function encodeState(state: UpgradeState): string {
  return JSON.stringify(state);
}

/** The fds an exec must keep open for `state`: exactly these lose CLOEXEC, for the exec only. */
export function carriedFds(state: UpgradeState): number[] {
  return [...(state.controlFd === null ? [] : [state.controlFd]), ...state.generations.map((g) => g.statusFd).filter((fd) => fd >= 0), ...(state.answer ? [state.answer.fd] : [])];
}

const MAX_FD = 2 ** 31 - 1;
const optional = <T>(o: Fields, key: string, read: (o: Fields, key: string) => T): Record<string, T> => (o[key] === undefined ? {} : { [key]: read(o, key) });
const intOrNull = (o: Fields, key: string, max = 2 ** 31 - 1) => (o[key] === null ? null : int(o, key, 0, max));
const object = (v: unknown, type: string): Fields => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ProtocolError(`${type} must be an object`);
  return { type, ...(v as Fields) };
};
const strings = (o: Fields, key: string) =>
  list(o, key, 4096, (v, i) => {
    if (typeof v !== 'string') throw new ProtocolError(`${o.type}.${key}[${i}] must be a string`);
    return v;
  });
function choice<T extends string>(o: Fields, key: string, values: readonly T[]): T {
  if (!values.includes(o[key] as T)) throw new ProtocolError(`${o.type}.${key} must be one of ${values.join(', ')}`);
  return o[key] as T;
}

function generation(v: unknown, i: number): CarriedGeneration {
  const g = object(v, `state.generations[${i}]`);
  const exit = g.exit === undefined ? undefined : object(g.exit, `${g.type}.exit`);
  return {
    epoch: int(g, 'epoch'),
    ...optional(g, 'parentEpoch', int),
    pid: int(g, 'pid', 1),
    phase: choice(g, 'phase', GENERATION_STATES),
    reload: bool(g, 'reload'),
    ...optional(g, 'tookOverAgoMs', (o, key) => int(o, key, 0, Number.MAX_SAFE_INTEGER)),
    // The generation's own report, as the image before received it: checked as an object, kept as it is.
    ...(g.takenOver === undefined ? {} : { takenOver: (object(g.takenOver, `${g.type}.takenOver`), g.takenOver as CarriedGeneration['takenOver']) }),
    ...optional(g, 'connections', int),
    statusFd: g.statusFd === -1 ? -1 : int(g, 'statusFd', 3, MAX_FD),
    ...(exit ? { exit: { code: intOrNull(exit, 'code', 255), signal: exit.signal === null ? null : (str(exit, 'signal', 16) as NodeJS.Signals) } } : {}),
  };
}

function version1(s: Fields): UpgradeState {
  const o = object(s.options, 'state.options');
  object(o.engine, 'state.options.engine');
  const engine = o.engine as Partial<HotRestartOptions>;
  resolveOptions(engine); // every engine option checked as `baton run` checks its flags
  const systemd = s.systemd === null ? null : object(s.systemd, 'state.systemd');
  const answer = s.answer === null ? null : object(s.answer, 'state.answer');
  return {
    stateVersion: STATE_VERSION,
    batonVersion: str(s, 'batonVersion', 64),
    baseId: intOrNull(s, 'baseId'),
    highestEpoch: intOrNull(s, 'highestEpoch'),
    restarts: int(s, 'restarts'),
    rollbacks: int(s, 'rollbacks'),
    options: {
      command: str(o, 'command', 4096),
      args: strings(o, 'args'),
      engine,
      killTimeoutMs: int(o, 'killTimeoutMs'),
      rollback: choice(o, 'rollback', ['auto', 'off'] as const),
      log: choice(o, 'log', ['text', 'json', 'details'] as const),
      ...optional(o, 'pidFile', (f, key) => str(f, key, 4096)),
    },
    generations: list(s, 'generations', MAX_GENERATIONS, generation),
    controlFd: s.controlFd === null ? null : int(s, 'controlFd', 3, MAX_FD),
    systemd: systemd && { notifySocket: str(systemd, 'notifySocket', 4096), ...optional(systemd, 'watchdogUsec', (f, key) => str(f, key, 32)) },
    answer: answer && { fd: int(answer, 'fd', 3, MAX_FD), re: int(answer, 're') },
  };
}

/** Older versions are read into the current shape here, one reader each. */
const readers: Record<number, (s: Fields) => UpgradeState> = { 1: version1 };

/** Parses and checks a state; a ProtocolError says what this code cannot read. */
export function decodeState(text: string): UpgradeState {
  let s: unknown;
  try {
    s = JSON.parse(text);
  } catch {
    throw new ProtocolError(`the upgrade state is not JSON (${text.length} characters)`);
  }
  const fields = object(s, 'state');
  const read = typeof fields.stateVersion === 'number' ? readers[fields.stateVersion] : undefined;
  if (!read) {
    throw new ProtocolError(
      `upgrade state version ${JSON.stringify(fields.stateVersion)} cannot be read by this baton, which reads version ${READABLE_STATE_VERSIONS.join(', ')}: ` +
        'restart the supervisor instead (a cold restart), or upgrade in steps through a version that reads both',
    );
  }
  return read(fields);
}
