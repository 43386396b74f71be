#!/usr/bin/env node
// `baton run [options] -- <command> [args...]`: the supervisor. SIGHUP hot
// restarts, SIGTERM/SIGINT stop everything, SIGUSR1 is passed on.

import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BatonError } from '../errors';
import { flagHelp, hotRestartVersion, optionsFromFlags, parseArgsConfig } from '../options';
import { Supervisor, type LogEntry } from './supervisor';

const usage = `usage: baton run [options] -- <command> [args...]
       baton --hot-restart-version [--compatibility TAG]
       baton -v | --version

Runs <command> as restart epoch 0 and hot restarts it on SIGHUP: the next
epoch takes over every listening socket from the one before, which drains.

options:
${flagHelp()}
  --pid-file <path>               write the supervisor's pid here
  --kill-timeout-s <s>            SIGKILL generations this long after SIGTERM (30)
  --log <text|json>               log format on stderr (text)
  --compatibility <tag>           with --hot-restart-version: the application's tag
  -h, --help`;

function main(argv: string[]): void {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...parseArgsConfig(),
      'pid-file': { type: 'string' },
      'kill-timeout-s': { type: 'string' },
      log: { type: 'string', default: 'text' },
      compatibility: { type: 'string' },
      'hot-restart-version': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  });
  if (values.help) return void console.log(usage);
  if (values.version) return void console.log(JSON.parse(readFileSync(join(__dirname, '../../../package.json'), 'utf8')).version);
  if (values['hot-restart-version']) return void console.log(hotRestartVersion(values.compatibility));
  const [verb, command, ...args] = positionals;
  if (verb !== 'run' || !command) throw new UsageError('expected `run -- <command> [args...]`');
  if (values.log !== 'text' && values.log !== 'json') throw new UsageError('--log must be text or json');
  const killTimeoutS = values['kill-timeout-s'] ?? '30';
  if (!/^\d+$/.test(killTimeoutS)) throw new UsageError('--kill-timeout-s must be a whole number');

  const supervisor = new Supervisor({ command, args, engine: optionsFromFlags(values), killTimeoutMs: Number(killTimeoutS) * 1000 });
  const write = values.log === 'json' ? (e: LogEntry) => JSON.stringify({ time: new Date().toISOString(), ...e }) : formatText;
  supervisor.on('log', (entry) => process.stderr.write(`${write(entry)}\n`));

  const pidFile = values['pid-file'];
  if (pidFile) writeFileSync(pidFile, `${process.pid}\n`);
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

function formatText(entry: LogEntry): string {
  return `baton ${entry.level}: ${entry.message}`;
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
