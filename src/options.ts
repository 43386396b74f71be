// Envoy's hot-restart options, named for TypeScript, each also a CLI flag of
// `baton run` and an environment variable the supervisor hands to every
// generation. One row per option (flag, variable, type, unit, default, range,
// help) in `optionTable`; the defaults, the checks, the environment, the
// flags and `--help` are all read from the rows, so a new option is one row
// (and its field in HotRestartOptions, which the table's type requires).

import { join, resolve } from 'node:path';
import { MAX_UNIX_PATH } from './binding';
import { invalidArgument } from './errors';
import { defaultSocketDirectory } from './files';
import type { DrainStrategy } from './drain/controller';
import { PROTOCOL_VERSION, type SurplusPolicy } from './protocol/messages';
import { integerIn, isIntegerIn } from './validate';

/**
 * Envoy's hot-restart options, and baton's own: also `baton run` flags and
 * BATON_* variables (README's Options table has each one's default).
 */
export interface HotRestartOptions {
  /** 0 for the first generation; each hot restart adds one. */
  restartEpoch: number;
  /**
   * The epoch whose control socket a generation connects to: -1 (default)
   * for restartEpoch - 1. After a rollback the supervisor names the epoch
   * that serves, so the next one skips the epoch that died.
   */
  parentEpoch: number;
  /** Lets several independent instances share a host (and socket path). */
  baseId: number;
  /** Pick the smallest free base id (epoch 0 only). */
  useDynamicBaseId: boolean;
  /** Where to write the base id in use. */
  baseIdPath?: string;
  /**
   * Control socket prefix: a path (made absolute by resolveOptions), or '@' for the abstract namespace.
   * Default: baton_* in $RUNTIME_DIRECTORY, else $XDG_RUNTIME_DIR/baton, else <tmpdir>/baton-<uid> (checked: ours, mode 700).
   */
  socketPath: string;
  /** Mode of filesystem control sockets. */
  socketMode: number;
  /** How long a parent asks its connections to close. */
  drainTimeS: number;
  /** How long after the child takes over the parent is terminated (independent of drainTimeS). */
  parentShutdownTimeS: number;
  /** Never connect to a parent nor listen for a child. */
  disableHotRestart: boolean;
  /** The application's own compatibility tag; generations with different tags refuse each other. */
  compatibility: string;
  /** How long parent and child may take to exchange their hellos. */
  handshakeTimeoutMs: number;
  /** How long a request on the control channel (sockets, drain, stats) may wait for its answer. */
  requestTimeoutMs: number;
  /** How long a parent waits for its child to initialize and take over before it stops waiting. */
  childInitTimeoutS: number;
  /** Peers (parent and child) must run as one of these uids. Default: our own. */
  allowedUids: number[];
  /**
   * With fewer workers than the parent: 'drain' (default) takes the parent's
   * surplus sockets, serves their queues and retires them once empty, losing
   * nothing; 'close' lets the parent close them as it drains, as Envoy does,
   * losing what waits in them (to measure the difference).
   */
  surplusSockets: SurplusPolicy;
  /** How long a socket's queue must stay empty before it is retired (covers handshakes still under way). */
  retireGraceMs: number;
  /** How open connections are asked to close during a drain: spread over the drain time ('gradual'), or at once. */
  drainStrategy: DrainStrategy;
}

interface RowBase<T> {
  /** `--flag`, the option's name in kebab case. */
  flag: string;
  /** The variable that hands it to a generation (BATON_*); none for the supervisor's own options. */
  env?: string;
  default: T;
  /** One line for `--help`, which adds the default. */
  help: string;
}
/** A whole number in min..max; `unit` is also the last part of its name (drainTimeS, retireGraceMs). */
interface IntegerRow extends RowBase<number> {
  type: 'integer';
  unit?: 's' | 'ms';
  min: number;
  max: number;
}
/** A file mode, written in octal. */
interface OctalRow extends RowBase<number> {
  type: 'octal';
  min: number;
  max: number;
}
interface BooleanRow extends RowBase<boolean> {
  type: 'boolean';
}
interface StringRow<T extends string | undefined> extends RowBase<T> {
  type: 'string';
  /** What `--help` shows as the flag's value. */
  placeholder: string;
  pattern: RegExp;
  /** What `pattern` asks for, in words: "NAME must be <shape>". */
  shape: string;
}
interface ChoiceRow<T extends string> extends RowBase<T> {
  type: 'choice';
  values: readonly T[];
}
/** A non-empty list of uids, comma-separated as text. */
interface UidsRow extends RowBase<number[]> {
  type: 'uids';
}

export type OptionRow = IntegerRow | OctalRow | BooleanRow | StringRow<string | undefined> | ChoiceRow<string> | UidsRow;

/** The row an option of type T must have. */
type RowFor<T> = [T] extends [boolean]
  ? BooleanRow
  : [T] extends [number]
    ? IntegerRow | OctalRow
    : [T] extends [number[]]
      ? UidsRow
      : [T] extends [string | undefined]
        ? string extends T
          ? StringRow<T>
          : ChoiceRow<Exclude<T, undefined>>
        : never;

/** One row for each key of O, no more and no fewer (checked by the compiler), each of the right type. */
export type OptionTable<O, Extra = object> = { [K in keyof Required<O>]: RowFor<O[K]> & Extra };
/** Any table, for what reads only the rows (flags, help). */
type AnyOptionTable = Record<string, OptionRow>;

const MAX_SECONDS = 7 * 86_400;
const UID = /^\d+(,\d+)*$/;

/** The options that cross from the supervisor to a generation. */
export const optionTable: OptionTable<HotRestartOptions, { env: string }> = {
  restartEpoch: { flag: 'restart-epoch', env: 'BATON_RESTART_EPOCH', type: 'integer', min: 0, max: 2 ** 31 - 1, default: 0, help: 'hot restart epoch (0 = no parent)' },
  parentEpoch: { flag: 'parent-epoch', env: 'BATON_PARENT_EPOCH', type: 'integer', min: -1, max: 2 ** 31 - 2, default: -1, help: 'epoch of the parent to connect to (-1: restart epoch - 1)' },
  baseId: { flag: 'base-id', env: 'BATON_BASE_ID', type: 'integer', min: 0, max: 2 ** 31 - 1, default: 0, help: 'base id, for several instances on one host' },
  useDynamicBaseId: { flag: 'use-dynamic-base-id', env: 'BATON_USE_DYNAMIC_BASE_ID', type: 'boolean', default: false, help: 'pick a free base id (epoch 0 only)' },
  baseIdPath: { flag: 'base-id-path', env: 'BATON_BASE_ID_PATH', type: 'string', placeholder: 'path', pattern: /^[^\0]+$/, shape: 'a file path', default: undefined, help: 'write the base id in use to this file' },
  socketPath: { flag: 'socket-path', env: 'BATON_SOCKET_PATH', type: 'string', placeholder: 'path', pattern: /^[^\0]+$/, shape: "a path, or '@' and a name (abstract namespace)", default: join(defaultSocketDirectory(), 'baton'), help: "control socket prefix, in a directory only we write ('@name': abstract namespace, any user can squat)" },
  socketMode: { flag: 'socket-mode', env: 'BATON_SOCKET_MODE', type: 'octal', min: 0, max: 0o777, default: 0o600, help: 'mode of filesystem control sockets' },
  drainTimeS: { flag: 'drain-time-s', env: 'BATON_DRAIN_TIME_S', type: 'integer', unit: 's', min: 0, max: MAX_SECONDS, default: 600, help: 'seconds the old generation drains' },
  drainStrategy: { flag: 'drain-strategy', env: 'BATON_DRAIN_STRATEGY', type: 'choice', values: ['gradual', 'immediate'], default: 'gradual', help: 'close connections spread over the drain time, or at once' },
  parentShutdownTimeS: { flag: 'parent-shutdown-time-s', env: 'BATON_PARENT_SHUTDOWN_TIME_S', type: 'integer', unit: 's', min: 0, max: MAX_SECONDS, default: 900, help: 'seconds until the old generation is terminated' },
  childInitTimeoutS: { flag: 'child-init-timeout-s', env: 'BATON_CHILD_INIT_TIMEOUT_S', type: 'integer', unit: 's', min: 1, max: 86_400, default: 600, help: 'seconds a new epoch may take to take over' },
  handshakeTimeoutMs: { flag: 'handshake-timeout-ms', env: 'BATON_HANDSHAKE_TIMEOUT_MS', type: 'integer', unit: 'ms', min: 1, max: 600_000, default: 5_000, help: 'ms parent and child may take to shake hands' },
  requestTimeoutMs: { flag: 'request-timeout-ms', env: 'BATON_REQUEST_TIMEOUT_MS', type: 'integer', unit: 'ms', min: 1, max: 600_000, default: 5_000, help: 'ms a control request waits for its answer' },
  surplusSockets: { flag: 'surplus-sockets', env: 'BATON_SURPLUS_SOCKETS', type: 'choice', values: ['drain', 'close'], default: 'drain', help: "fewer workers: 'drain' the surplus sockets, or 'close' them (Envoy)" },
  retireGraceMs: { flag: 'retire-grace-ms', env: 'BATON_RETIRE_GRACE_MS', type: 'integer', unit: 'ms', min: 0, max: 600_000, default: 2_000, help: 'ms a TCP queue stays empty before its socket is retired (UDP: at most 100)' },
  disableHotRestart: { flag: 'disable-hot-restart', env: 'BATON_DISABLE_HOT_RESTART', type: 'boolean', default: false, help: 'no hand-over: every generation starts cold' },
  compatibility: { flag: 'compatibility', env: 'BATON_COMPATIBILITY', type: 'string', placeholder: 'tag', pattern: /^[\w.+-]{0,64}$/, shape: 'at most 64 letters, digits, and . + - _', default: '', help: 'the application\'s tag: generations with another one refuse to hand over' },
  allowedUids: { flag: 'allowed-uids', env: 'BATON_ALLOWED_UIDS', type: 'uids', default: [process.getuid?.() ?? 0], help: 'uids a parent or child may run as' },
};

export const defaultOptions: HotRestartOptions = defaultsOf(optionTable);

/** The string two generations must share to hand over (Envoy's --hot-restart-version). */
export function hotRestartVersion(compatibility = ''): string {
  return `baton.protocol${PROTOCOL_VERSION}${compatibility ? `.${compatibility}` : ''}`;
}

/** Fills defaults and checks every option; throws BATON_INVALID_ARGUMENT naming the one that is wrong. */
export function resolveOptions(given: Partial<HotRestartOptions> = {}): HotRestartOptions {
  const o: HotRestartOptions = { ...defaultOptions, ...stripUndefined(given) };
  checkOptions(optionTable, o);
  // Absolute once and for all, so that instances spelling one path differently see each other.
  if (!o.socketPath.startsWith('@')) o.socketPath = resolve(o.socketPath);
  // Room in sun_path for the longest name this instance can bind: `_<base id>_<epoch>` appended, '@' not counted.
  const longest = `${o.socketPath.replace(/^@/, '')}_${o.useDynamicBaseId ? optionTable.baseId.max : o.baseId}_${optionTable.restartEpoch.max}`;
  if (Buffer.byteLength(longest) > MAX_UNIX_PATH) {
    throw invalidArgument(`socketPath is too long: ${longest} would be ${Buffer.byteLength(longest)} bytes, over the ${MAX_UNIX_PATH} of a Unix socket name; give a shorter --socket-path`);
  }
  if (o.parentEpoch === -1) o.parentEpoch = o.restartEpoch - 1;
  if (o.parentEpoch >= o.restartEpoch) throw invalidArgument(`parentEpoch must be before restartEpoch (${o.restartEpoch}), got ${o.parentEpoch}`);
  if (o.useDynamicBaseId && o.restartEpoch > 0) {
    throw invalidArgument('useDynamicBaseId is for the first generation only: later epochs must be given the base id it chose');
  }
  return o;
}

/** Options a generation finds in its environment (as `baton run` sets them), each checked, named by its variable. */
export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<HotRestartOptions> {
  const options: Record<string, unknown> = {};
  for (const [key, row] of rowsOf(optionTable)) {
    const raw = env[row.env];
    if (raw !== undefined && raw !== '') options[key] = parseText(row, raw, row.env);
  }
  return options as Partial<HotRestartOptions>;
}

/** The environment that hands `options` to a generation. */
export function optionsToEnv(options: Partial<HotRestartOptions>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, row] of rowsOf(optionTable)) {
    const value = options[key];
    if (value !== undefined) env[row.env] = format(row, value);
  }
  return env;
}

/** Every row's default (none for an option without one). */
export function defaultsOf<O>(table: OptionTable<O>): O {
  return Object.fromEntries(rowsOf(table).flatMap(([key, row]) => (row.default === undefined ? [] : [[key, row.default]]))) as O;
}

/** Checks every value of `values` against its row, naming it by its key. */
export function checkOptions<O>(table: OptionTable<O>, values: Partial<O>): void {
  for (const [key, row] of rowsOf(table)) {
    const value = values[key];
    if (value !== undefined) check(row, value, String(key));
  }
}

/** `util.parseArgs` descriptors for the flags of these tables. */
export function flagsConfig(...tables: AnyOptionTable[]): Record<string, { type: 'string' | 'boolean' }> {
  return Object.fromEntries(tables.flatMap(rowsOf).map(([, row]) => [row.flag, { type: row.type === 'boolean' ? 'boolean' : 'string' }]));
}

/** Options from parsed flags (strings and booleans as util.parseArgs returns them), each checked, named by its flag. */
export function fromFlags<O>(table: OptionTable<O>, values: Record<string, unknown>): Partial<O> {
  const options: Partial<Record<keyof O, unknown>> = {};
  for (const [key, row] of rowsOf(table)) {
    const raw = values[row.flag];
    if (typeof raw === 'boolean') options[key] = raw;
    else if (typeof raw === 'string') options[key] = parseText(row, raw, `--${row.flag}`);
  }
  return options as Partial<O>;
}

/** `--help` lines for the flags of these tables, each with its default. */
export function flagHelp(...tables: AnyOptionTable[]): string {
  const rows = tables.flatMap(rowsOf).map(([, row]) => [`  --${row.flag}${row.type === 'boolean' ? '' : ` <${placeholder(row)}>`}`, row] as const);
  const width = Math.max(...rows.map(([flag]) => flag.length)) + 2;
  return rows.map(([flag, row]) => `${flag.padEnd(width)}${row.help} (default: ${shownDefault(row)})`).join('\n');
}

function rowsOf<T extends object>(table: T): [keyof T, T[keyof T] & OptionRow][] {
  return Object.entries(table) as [keyof T, T[keyof T] & OptionRow][];
}

/** A flag's or a variable's text as the row's type, checked. */
function parseText(row: OptionRow, raw: string, name: string): unknown {
  switch (row.type) {
    case 'integer':
      if (!/^\d+$/.test(raw)) throw invalidArgument(`${name} must be a whole number, got '${raw}'`);
      return check(row, Number(raw), name);
    case 'octal':
      if (!/^[0-7]{1,4}$/.test(raw)) throw invalidArgument(`${name} must be an octal mode such as 600, got '${raw}'`);
      return check(row, parseInt(raw, 8), name);
    case 'boolean':
      if (!/^(1|0|true|false)$/.test(raw)) throw invalidArgument(`${name} must be 1, 0, true or false, got '${raw}'`);
      return raw === '1' || raw === 'true';
    case 'uids':
      if (!UID.test(raw)) throw invalidArgument(`${name} must be uids separated by commas, got '${raw}'`);
      return check(row, raw.split(',').map(Number), name);
    case 'string':
    case 'choice':
      return check(row, raw, name);
  }
}

function check(row: OptionRow, value: unknown, name: string): unknown {
  switch (row.type) {
    case 'integer':
      return integerIn(value, name, row.min, row.max);
    case 'octal':
      if (!isIntegerIn(value, row.min, row.max)) {
        throw invalidArgument(`${name} must be an octal mode in ${row.min.toString(8)}..${row.max.toString(8)}, got ${formatOctal(value)}`);
      }
      return value;
    case 'boolean':
      if (typeof value !== 'boolean') throw invalidArgument(`${name} must be true or false, got ${String(value)}`);
      return value;
    case 'string':
      if (typeof value !== 'string' || !row.pattern.test(value)) throw invalidArgument(`${name} must be ${row.shape}, got '${String(value)}'`);
      return value;
    case 'choice':
      if (!row.values.includes(value as string)) throw invalidArgument(`${name} must be ${alternatives(row.values)}, got '${String(value)}'`);
      return value;
    case 'uids':
      if (!Array.isArray(value) || value.length === 0 || !value.every((uid) => isIntegerIn(uid, 0, 2 ** 32 - 2))) {
        throw invalidArgument(`${name} must be a non-empty array of uids, got ${JSON.stringify(value)}`);
      }
      return value;
  }
}

/** The value as text, as a flag or a variable takes it. */
function format(row: OptionRow, value: unknown): string {
  if (row.type === 'octal') return formatOctal(value);
  if (row.type === 'uids') return (value as number[]).join(',');
  return String(value);
}

function formatOctal(value: unknown): string {
  return typeof value === 'number' ? value.toString(8) : String(value);
}

function placeholder(row: OptionRow): string {
  switch (row.type) {
    case 'integer':
      return row.unit ?? 'n';
    case 'octal':
      return 'mode';
    case 'string':
      return row.placeholder;
    case 'choice':
      return row.values.join('|');
    case 'uids':
      return 'uid,...';
    case 'boolean':
      return '';
  }
}

function shownDefault(row: OptionRow): string {
  if (row.default === undefined || row.default === '') return 'none';
  if (row.type === 'boolean') return row.default ? 'on' : 'off';
  return format(row, row.default);
}

/** 'a', 'a' or 'b', 'a', 'b' or 'c'. */
function alternatives(values: readonly string[]): string {
  const quoted = values.map((v) => `'${v}'`);
  return quoted.length > 1 ? `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}` : quoted.join('');
}

export function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
