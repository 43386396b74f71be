#!/usr/bin/env node
// `baton run [options] -- <command> [args...]`: the supervisor. SIGHUP hot
// restarts, SIGTERM/SIGINT stop everything, SIGUSR1 is passed on, SIGUSR2
// upgrades baton itself in place; under systemd (NOTIFY_SOCKET) it tells
// systemd what happens. With BATON_UPGRADE_STATE in its environment it is
// the new image of an upgrade, and adopts what the state lists.
// `baton reload|status|rollback|upgrade`: ask the running supervisor.

import { readFileSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BatonError } from '../errors';
import { checkSocketDirectory, writeFileReplacing } from '../files';
import { defaultsOf, flagHelp, flagsConfig, fromFlags, hotRestartVersion, optionTable, resolveOptions } from '../options';
import { runCommand } from './commands';
import { SUPERVISOR_NODE_FLAGS, withSupervisorFlags } from './exec';
import { COMMANDS, type Command } from './messages';
import { SystemdNotifier, takeSystemdEnvironment, type SystemdEnvironment } from './notify';
import { commandOptionTable, supervisorOptionTable } from './options';
import { Supervisor, type LogEntry } from './supervisor';
import { answerCheck } from './upgrade';
import { carriedFds, decodeState, STATE_ENV, type CarriedOptions, type UpgradeState } from './upgrade-state';

const usage = `usage: baton run [options] -- <command> [args...]
       baton reload|status|rollback|upgrade [command options]
       baton --hot-restart-version [--compatibility TAG]
       baton -v | --version

Runs <command> as restart epoch 0 and hot restarts it on SIGHUP (or baton
reload): the next epoch takes over every listening socket from the one
before, which drains. Should the new epoch die while the one before still
drains, that one serves again (rollback).

  baton reload    start the next epoch and wait for its outcome (exit 0: took over, 1: failed)
  baton status    the supervisor and its generations (exit 0: one serves, 3: nothing runs)
  baton rollback  the serving epoch drains and the one it took over from serves again
  baton upgrade   the supervisor re-executes itself with the baton now installed (same pid,
                  generations kept; exit 0: upgraded, 1: refused or failed, the old one runs on)

options of run:
${flagHelp(optionTable, supervisorOptionTable)}
  -h, --help

options of reload, status, rollback and upgrade:
${flagHelp(commandOptionTable)}`;

/** This package's version: the new one's after an upgrade, as __dirname is the new code's. */
const VERSION = (JSON.parse(readFileSync(join(__dirname, '../../../package.json'), 'utf8')) as { version: string }).version;

function main(argv: string[]): void {
  // Taken before anything is spawned: no generation, nor the next image of an upgrade, inherits it.
  const carried = process.env[STATE_ENV];
  delete process.env[STATE_ENV];
  if (carried !== undefined) return adopt(carried);
  if (argv[0] === 'upgrade-check') return answerCheck(VERSION);
  if (COMMANDS.includes(argv[0] as Command)) return ask(argv[0] as Command, argv.slice(1));
  const flags = {
    ...flagsConfig(optionTable, supervisorOptionTable),
    'hot-restart-version': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'v' },
  } as const;
  const parsed = parseArgs({ args: withNegativeValues(argv, flags), allowPositionals: true, options: flags });
  const values = parsed.values as Record<string, unknown>;
  if (values.help) return void console.log(usage);
  if (values.version) return void console.log(VERSION);
  // Every flag is checked here, so that a bad value exits 2 before any generation starts.
  const engine = fromFlags(optionTable, values);
  if (values['hot-restart-version']) return void console.log(hotRestartVersion(engine.compatibility));
  const [verb, command, ...args] = parsed.positionals;
  if (verb !== 'run' || !command) throw new UsageError('expected `run -- <command> [args...]`');
  const { socketPath } = resolveOptions(engine); // and together (--use-dynamic-base-id with --restart-epoch 1, say)
  // A --socket-path directory that is missing or others can write exits 2 here, not as a failed epoch 0.
  if (engine.socketPath !== undefined && !socketPath.startsWith('@')) checkSocketDirectory(dirname(socketPath));
  const own = { ...defaultsOf(supervisorOptionTable), ...fromFlags(supervisorOptionTable, values) };
  const options = { command, args, engine, killTimeoutMs: own.killTimeoutS * 1000, rollback: own.rollback, log: own.log, ...(own.pidFile ? { pidFile: own.pidFile } : {}) };
  // Every flag checked, nothing open yet: this is where the process becomes node with the supervisor's own flags.
  const notFlagged = withSupervisorFlags();
  // Before the first generation starts: it must not inherit NOTIFY_SOCKET.
  const supervisor = supervise(options, takeSystemdEnvironment(process.env), notFlagged);
  if (own.pidFile) writeFileReplacing(own.pidFile, `${process.pid}\n`);
  supervisor.start();
}

/** The new image of `baton upgrade`: the same supervisor, carried across the exec; its pid file already names this pid. */
function adopt(text: string): void {
  let state: UpgradeState;
  try {
    state = decodeState(text);
  } catch (error) {
    // The dry run read this state, so only code changed on disk since then gets here; the generations are orphans now.
    console.error(`baton: cannot read the state of the upgrade (${(error as Error).message}); the generations run on unsupervised: stop them and start baton again`);
    return void (process.exitCode = 1);
  }
  // The exec of an older image that ran without them; nothing carried has been read yet.
  const notFlagged = withSupervisorFlags({ [STATE_ENV]: text }, carriedFds(state));
  supervise(state.options, state.systemd ?? undefined, notFlagged).adopt(state);
}

/**
 * A supervisor with its log, systemd notifier, pid file and signals; started (or adopting) is the caller's.
 * `notFlagged`: why it runs without its node flags, logged.
 */
function supervise(options: CarriedOptions, systemd: SystemdEnvironment | undefined, notFlagged: string | undefined): Supervisor {
  const { log, pidFile } = options;
  const image = { cliPath: process.argv[1], argv: process.argv.slice(2), log, ...(pidFile ? { pidFile } : {}), ...(systemd ? { systemd } : {}) };
  const supervisor = new Supervisor({ ...options, version: VERSION, upgrade: image });
  const write = log === 'json' ? (e: LogEntry) => JSON.stringify({ time: new Date().toISOString(), ...e }) : (e: LogEntry) => formatText(e, log === 'details');
  const print = (entry: LogEntry) => process.stderr.write(`${write(entry)}\n`);
  supervisor.on('log', print);
  if (notFlagged) print({ level: 'warn', message: `the supervisor runs without its node flags (${SUPERVISOR_NODE_FLAGS.join(' ')}): ${notFlagged}` });
  collectAfterEachTakeOver(supervisor);
  if (systemd) new SystemdNotifier(supervisor, systemd, print);
  supervisor.on('done', (code) => {
    if (pidFile) unlinkSync(pidFile);
    process.exit(code);
  });
  process.on('SIGHUP', () => supervisor.restart());
  process.on('SIGTERM', () => supervisor.stop('SIGTERM'));
  process.on('SIGINT', () => supervisor.stop('SIGINT'));
  process.on('SIGUSR1', () => supervisor.signalAll('SIGUSR1'));
  process.on('SIGUSR2', () => void supervisor.upgrade());
  return supervisor;
}

function ask(verb: Command, argv: string[]): void {
  const options = flagsConfig(commandOptionTable);
  const { values } = parseArgs({ args: withNegativeValues(argv, options), options });
  const flags = { ...defaultsOf(commandOptionTable), ...fromFlags(commandOptionTable, values) };
  void runCommand(verb, flags).then((code) => (process.exitCode = code));
}

/**
 * `--base-id -1` as `--base-id=-1`, so that the flag's own check says what
 * is wrong with the value: parseArgs takes a value that starts with '-'
 * for a forgotten one ("argument is ambiguous"). Only before `--`.
 */
function withNegativeValues(argv: string[], options: Record<string, { type: string }>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const [arg, next] = [argv[i], argv[i + 1]];
    if (arg === '--') return [...out, ...argv.slice(i)];
    const takesValue = arg.startsWith('--') && options[arg.slice(2)]?.type === 'string';
    if (takesValue && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

/**
 * A full garbage collection after each take-over, when the generation before
 * has become garbage: V8 lets a heap this small (a few MB live) fill with
 * old garbage for hundreds of reloads before it collects on its own (RSS +9
 * MB over 1,000), and a supervisor whose memory only grows reads as a leak.
 * Node has no gc() without --expose-gc at start: the flag set now reaches a
 * new context's global, as Jest's leak detector does it.
 */
function collectAfterEachTakeOver(supervisor: Supervisor): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  setFlagsFromString('--no-expose-gc');
  supervisor.on('tookOver', () => setImmediate(gc));
}

function formatText(entry: LogEntry, details: boolean): string {
  const line = `baton ${entry.level}: ${entry.message}`;
  return details && typeof entry.stack === 'string' ? `${line}\n${entry.stack}` : line;
}

class UsageError extends Error {}

try {
  main(process.argv.slice(2));
} catch (error) {
  if (error instanceof UsageError || error instanceof BatonError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    console.error(`baton: ${(error as Error).message}\n\n${usage}`);
    process.exit(2);
  }
  throw error;
}
