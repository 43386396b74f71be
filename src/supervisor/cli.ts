#!/usr/bin/env node
// `baton run [options] -- <command> [args...]`: the supervisor. SIGHUP hot
// restarts, SIGTERM/SIGINT stop everything, SIGUSR1 is passed on; under
// systemd (NOTIFY_SOCKET) it tells systemd what happens.
// `baton reload|status|rollback`: ask the running supervisor.

import { readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BatonError } from '../errors';
import { writeFileReplacing } from '../files';
import { defaultsOf, flagHelp, flagsConfig, fromFlags, hotRestartVersion, optionTable, resolveOptions } from '../options';
import { runCommand } from './commands';
import { COMMANDS, type Command } from './messages';
import { SystemdNotifier, takeSystemdEnvironment } from './notify';
import { commandOptionTable, supervisorOptionTable } from './options';
import { Supervisor, type LogEntry } from './supervisor';

const usage = `usage: baton run [options] -- <command> [args...]
       baton reload|status|rollback [command options]
       baton --hot-restart-version [--compatibility TAG]
       baton -v | --version

Runs <command> as restart epoch 0 and hot restarts it on SIGHUP (or baton
reload): the next epoch takes over every listening socket from the one
before, which drains. Should the new epoch die while the one before still
drains, that one serves again (rollback).

  baton reload    start the next epoch and wait for its outcome (exit 0: took over, 1: failed)
  baton status    the supervisor and its generations (exit 0: one serves, 3: nothing runs)
  baton rollback  the serving epoch drains and the one it took over from serves again

options of run:
${flagHelp(optionTable, supervisorOptionTable)}
  -h, --help

options of reload, status and rollback:
${flagHelp(commandOptionTable)}`;

function main(argv: string[]): void {
  if (COMMANDS.includes(argv[0] as Command)) return ask(argv[0] as Command, argv.slice(1));
  const options = {
    ...flagsConfig(optionTable, supervisorOptionTable),
    'hot-restart-version': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'v' },
  } as const;
  const parsed = parseArgs({ args: withNegativeValues(argv, options), allowPositionals: true, options });
  const values = parsed.values as Record<string, unknown>;
  if (values.help) return void console.log(usage);
  if (values.version) return void console.log(JSON.parse(readFileSync(join(__dirname, '../../../package.json'), 'utf8')).version);
  // Every flag is checked here, so that a bad value exits 2 before any generation starts.
  const engine = fromFlags(optionTable, values);
  if (values['hot-restart-version']) return void console.log(hotRestartVersion(engine.compatibility));
  const [verb, command, ...args] = parsed.positionals;
  if (verb !== 'run' || !command) throw new UsageError('expected `run -- <command> [args...]`');
  resolveOptions(engine); // and together (--use-dynamic-base-id with --restart-epoch 1, say)
  const own = { ...defaultsOf(supervisorOptionTable), ...fromFlags(supervisorOptionTable, values) };

  const supervisor = new Supervisor({ command, args, engine, killTimeoutMs: own.killTimeoutS * 1000, rollback: own.rollback });
  const write = own.log === 'json' ? (e: LogEntry) => JSON.stringify({ time: new Date().toISOString(), ...e }) : (e: LogEntry) => formatText(e, own.log === 'details');
  const print = (entry: LogEntry) => process.stderr.write(`${write(entry)}\n`);
  supervisor.on('log', print);
  // Before the first generation starts: it must not inherit NOTIFY_SOCKET.
  const systemd = takeSystemdEnvironment(process.env);
  if (systemd) new SystemdNotifier(supervisor, systemd, print);

  const { pidFile } = own;
  if (pidFile) writeFileReplacing(pidFile, `${process.pid}\n`);
  supervisor.on('done', (code) => {
    if (pidFile) unlinkSync(pidFile);
    process.exit(code);
  });
  process.on('SIGHUP', () => supervisor.restart());
  process.on('SIGTERM', () => supervisor.stop('SIGTERM'));
  process.on('SIGINT', () => supervisor.stop('SIGINT'));
  process.on('SIGUSR1', () => supervisor.signalAll('SIGUSR1'));
  supervisor.start();
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
