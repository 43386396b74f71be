// Envoy's hot-restart options, named for TypeScript, each also a CLI flag of
// `baton run` and an environment variable the supervisor hands to every
// generation. One table drives validation, the flags and the environment.

import { resolve } from 'node:path';
import { invalidArgument } from './errors';
import type { DrainStrategy } from './drain/controller';
import { PROTOCOL_VERSION, type SurplusPolicy } from './protocol/messages';

export interface HotRestartOptions {
  /** 0 for the first generation; each hot restart adds one. */
  restartEpoch: number;
  /** Lets several independent instances share a host (and socket path). */
  baseId: number;
  /** Pick the smallest free base id (epoch 0 only). */
  useDynamicBaseId: boolean;
  /** Where to write the base id in use. */
  baseIdPath?: string;
  /** Control socket prefix; '@' for the abstract namespace, else a path (made absolute by resolveOptions). */
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
  handshakeTimeoutMs: number;
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

type Kind = 'int' | 'bool' | 'string' | 'mode';

interface Spec {
  key: keyof HotRestartOptions;
  flag: string;
  env: string;
  kind: Kind;
  description: string;
}

/** The options that cross from the supervisor to a generation. */
export const optionSpecs: Spec[] = [
  { key: 'restartEpoch', flag: 'restart-epoch', env: 'BATON_RESTART_EPOCH', kind: 'int', description: 'hot restart epoch (0 = no parent)' },
  { key: 'baseId', flag: 'base-id', env: 'BATON_BASE_ID', kind: 'int', description: 'base id, for several instances on one host' },
  { key: 'useDynamicBaseId', flag: 'use-dynamic-base-id', env: 'BATON_USE_DYNAMIC_BASE_ID', kind: 'bool', description: 'pick a free base id (epoch 0 only)' },
  { key: 'baseIdPath', flag: 'base-id-path', env: 'BATON_BASE_ID_PATH', kind: 'string', description: 'write the base id in use to this file' },
  { key: 'socketPath', flag: 'socket-path', env: 'BATON_SOCKET_PATH', kind: 'string', description: "control socket prefix ('@' = abstract namespace)" },
  { key: 'socketMode', flag: 'socket-mode', env: 'BATON_SOCKET_MODE', kind: 'mode', description: 'octal mode of filesystem control sockets' },
  { key: 'drainTimeS', flag: 'drain-time-s', env: 'BATON_DRAIN_TIME_S', kind: 'int', description: 'seconds the old generation drains' },
  { key: 'drainStrategy', flag: 'drain-strategy', env: 'BATON_DRAIN_STRATEGY', kind: 'string', description: "'gradual' (default) or 'immediate'" },
  { key: 'parentShutdownTimeS', flag: 'parent-shutdown-time-s', env: 'BATON_PARENT_SHUTDOWN_TIME_S', kind: 'int', description: 'seconds until the old generation is terminated' },
  { key: 'childInitTimeoutS', flag: 'child-init-timeout-s', env: 'BATON_CHILD_INIT_TIMEOUT_S', kind: 'int', description: 'seconds a new epoch may take to take over' },
  { key: 'surplusSockets', flag: 'surplus-sockets', env: 'BATON_SURPLUS_SOCKETS', kind: 'string', description: "fewer workers: 'drain' the surplus sockets (default) or 'close' them (Envoy)" },
  { key: 'retireGraceMs', flag: 'retire-grace-ms', env: 'BATON_RETIRE_GRACE_MS', kind: 'int', description: 'ms a TCP queue stays empty before its socket is retired (UDP: at most 100)' },
  { key: 'disableHotRestart', flag: 'disable-hot-restart', env: 'BATON_DISABLE_HOT_RESTART', kind: 'bool', description: 'no hand-over: every generation starts cold' },
];

export const defaultOptions: HotRestartOptions = {
  restartEpoch: 0,
  baseId: 0,
  useDynamicBaseId: false,
  socketPath: '@baton',
  socketMode: 0o600,
  drainTimeS: 600,
  parentShutdownTimeS: 900,
  disableHotRestart: false,
  compatibility: '',
  handshakeTimeoutMs: 5_000,
  requestTimeoutMs: 5_000,
  childInitTimeoutS: 600,
  allowedUids: [process.getuid?.() ?? 0],
  surplusSockets: 'drain',
  retireGraceMs: 2_000,
  drainStrategy: 'gradual',
};

/** The string two generations must share to hand over (Envoy's --hot-restart-version). */
export function hotRestartVersion(compatibility = ''): string {
  return `baton.protocol${PROTOCOL_VERSION}${compatibility ? `.${compatibility}` : ''}`;
}

function parseValue(spec: Spec, raw: string, from: string): unknown {
  switch (spec.kind) {
    case 'int':
      if (!/^\d+$/.test(raw)) throw invalidArgument(`${from} must be a whole number, got '${raw}'`);
      return Number(raw);
    case 'mode':
      if (!/^[0-7]{1,4}$/.test(raw)) throw invalidArgument(`${from} must be an octal mode such as 600, got '${raw}'`);
      return parseInt(raw, 8);
    case 'bool':
      if (!/^(1|0|true|false)$/.test(raw)) throw invalidArgument(`${from} must be 1, 0, true or false, got '${raw}'`);
      return raw === '1' || raw === 'true';
    case 'string':
      return raw;
  }
}

/** Options a generation finds in its environment (as `baton run` sets them). */
export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<HotRestartOptions> {
  const options: Record<string, unknown> = {};
  for (const spec of optionSpecs) {
    const raw = env[spec.env];
    if (raw !== undefined && raw !== '') options[spec.key] = parseValue(spec, raw, spec.env);
  }
  return options as Partial<HotRestartOptions>;
}

/** The environment that hands `options` to a generation. */
export function optionsToEnv(options: Partial<HotRestartOptions>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const spec of optionSpecs) {
    const value = options[spec.key];
    if (value === undefined) continue;
    env[spec.env] = spec.kind === 'mode' ? (value as number).toString(8) : String(value);
  }
  return env;
}

/** `util.parseArgs` option descriptors for the flags. */
export function parseArgsConfig(): Record<string, { type: 'string' | 'boolean' }> {
  return Object.fromEntries(optionSpecs.map((s) => [s.flag, { type: s.kind === 'bool' ? 'boolean' : 'string' }]));
}

/** Options from parsed flags (strings and booleans as util.parseArgs returns them). */
export function optionsFromFlags(values: Record<string, string | boolean | undefined>): Partial<HotRestartOptions> {
  const options: Record<string, unknown> = {};
  for (const spec of optionSpecs) {
    const raw = values[spec.flag];
    if (raw === undefined) continue;
    options[spec.key] = typeof raw === 'boolean' ? raw : parseValue(spec, raw, `--${spec.flag}`);
  }
  return options as Partial<HotRestartOptions>;
}

export function flagHelp(): string {
  return optionSpecs.map((s) => `  --${s.flag}${s.kind === 'bool' ? '' : ' <value>'}`.padEnd(34) + s.description).join('\n');
}

const intRange = (o: HotRestartOptions, key: keyof HotRestartOptions, min: number, max: number) => {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw invalidArgument(`${key} must be an integer in ${min}..${max}`);
};

/** Fills defaults and checks every option; throws BATON_INVALID_ARGUMENT naming the one that is wrong. */
export function resolveOptions(given: Partial<HotRestartOptions> = {}): HotRestartOptions {
  const o: HotRestartOptions = { ...defaultOptions, ...stripUndefined(given) };
  intRange(o, 'restartEpoch', 0, 2 ** 31 - 1);
  intRange(o, 'baseId', 0, 2 ** 31 - 1);
  intRange(o, 'socketMode', 0, 0o777);
  intRange(o, 'drainTimeS', 0, 86_400 * 7);
  intRange(o, 'parentShutdownTimeS', 0, 86_400 * 7);
  intRange(o, 'handshakeTimeoutMs', 1, 600_000);
  intRange(o, 'requestTimeoutMs', 1, 600_000);
  intRange(o, 'childInitTimeoutS', 1, 86_400);
  intRange(o, 'retireGraceMs', 0, 600_000);
  if (o.drainStrategy !== 'gradual' && o.drainStrategy !== 'immediate') {
    throw invalidArgument(`drainStrategy must be 'gradual' or 'immediate', got '${String(o.drainStrategy)}'`);
  }
  if (o.surplusSockets !== 'drain' && o.surplusSockets !== 'close') {
    throw invalidArgument(`surplusSockets must be 'drain' or 'close', got '${String(o.surplusSockets)}'`);
  }
  if (typeof o.socketPath !== 'string' || o.socketPath.length === 0) throw invalidArgument('socketPath must be a non-empty string');
  // Absolute once and for all, so that instances spelling one path differently see each other.
  if (!o.socketPath.startsWith('@')) o.socketPath = resolve(o.socketPath);
  if (o.socketPath.length > 90) throw invalidArgument(`socketPath must be at most 90 characters once absolute, got ${o.socketPath}`);
  if (typeof o.compatibility !== 'string' || !/^[\w.+-]{0,64}$/.test(o.compatibility)) {
    throw invalidArgument('compatibility must be at most 64 letters, digits, and . + - _');
  }
  if (!Array.isArray(o.allowedUids) || o.allowedUids.length === 0 || !o.allowedUids.every((u) => Number.isInteger(u) && u >= 0)) {
    throw invalidArgument('allowedUids must be a non-empty array of uids');
  }
  if (o.useDynamicBaseId && o.restartEpoch > 0) {
    throw invalidArgument('useDynamicBaseId is for the first generation only: later epochs must be given the base id it chose');
  }
  return o;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
