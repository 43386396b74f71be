// Runs one load (see ./index.ts) in its own process. Forked with an IPC
// channel (spawnLoad), it reports to its parent; run by hand, it prints the
// final result as one JSON line.
//
//   node dist/tools/load/cli.js --target 127.0.0.1:8080 [--target [::1]:8080 ...]
//     --concurrency 32 --duration-ms 10000 [--max-connections N]
//     [--timeout-ms 5000] [--expect-body-prefix epoch=] [--path /] [--protocol tcp|udp|keepalive|h2]
//     [--think-ms MIN-MAX] [--streams 4]

import { parseArgs } from 'node:util';
import { invalidArgument } from '../../src/errors';
import { parseHostPort } from '../../src/listeners/spec';
import { startLoad, type LoadOptions, type LoadProcessMessage, type LoadRun, type LoadTarget, type ThinkTime } from './index';

const USAGE =
  'usage: cli.js --target HOST:PORT [--target [IPV6]:PORT ...] --concurrency N --duration-ms MS\n' +
  '              [--max-connections N] [--timeout-ms MS] [--expect-body-prefix TEXT] [--path /PATH]\n' +
  '              [--protocol tcp|udp|keepalive|h2] [--think-ms MIN-MAX] [--streams N (h2: per session)]';
const SNAPSHOT_INTERVAL_MS = 200;

/** The listeners' own pattern, so a server's listen address is a target as it is written. */
function parseTarget(text: string): LoadTarget {
  const target = parseHostPort(text);
  if (target === undefined) throw invalidArgument(`--target must be HOST:PORT or [IPV6]:PORT, got "${text}"`);
  return target;
}

function parseInteger(flag: string, text: string): number {
  if (!/^\d+$/.test(text)) throw invalidArgument(`--${flag} must be a non-negative integer, got "${text}"`);
  return Number(text);
}

/** '5-20' (or '5', for exactly 5 ms) as { min, max }. */
function parseThinkTime(text: string): ThinkTime {
  const range = /^(\d+)(?:-(\d+))?$/.exec(text);
  if (range === null) throw invalidArgument(`--think-ms must be MIN-MAX in ms (5-20) or one number, got "${text}"`);
  return { min: Number(range[1]), max: Number(range[2] ?? range[1]) };
}

function required(flag: string, text: string | undefined): string {
  if (text === undefined) throw invalidArgument(`--${flag} is required`);
  return text;
}

/** Ranges and loopback are checked by startLoad; this only turns text into options. */
function parseOptions(args: string[]): LoadOptions {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      target: { type: 'string', multiple: true },
      concurrency: { type: 'string' },
      streams: { type: 'string' },
      'duration-ms': { type: 'string' },
      'max-connections': { type: 'string' },
      'timeout-ms': { type: 'string' },
      'expect-body-prefix': { type: 'string' },
      path: { type: 'string' },
      protocol: { type: 'string' },
      'think-ms': { type: 'string' },
    },
  });
  const optionalInteger = (flag: 'max-connections' | 'timeout-ms' | 'streams'): number | undefined => {
    const text = values[flag];
    return text === undefined ? undefined : parseInteger(flag, text);
  };
  return {
    targets: (values.target ?? []).map(parseTarget),
    concurrency: parseInteger('concurrency', required('concurrency', values.concurrency)),
    durationMs: parseInteger('duration-ms', required('duration-ms', values['duration-ms'])),
    streams: optionalInteger('streams'),
    maxConnections: optionalInteger('max-connections'),
    timeoutMs: optionalInteger('timeout-ms'),
    expectBodyPrefix: values['expect-body-prefix'],
    path: values.path,
    protocol: values.protocol as LoadOptions['protocol'],
    thinkMs: values['think-ms'] === undefined ? undefined : parseThinkTime(values['think-ms']),
  };
}

function post(message: LoadProcessMessage, then?: () => void): void {
  if (process.connected) process.send!(message, () => then?.());
  else then?.();
}

/** Snapshots every 200 ms, 'stop' from the parent, then the result, and exit. */
function reportToParent(run: LoadRun): void {
  const timer = setInterval(() => post({ type: 'snapshot', result: run.snapshot() }), SNAPSHOT_INTERVAL_MS);
  process.on('message', (message: { type?: unknown } | null) => {
    if (message?.type === 'stop') run.stop();
  });
  // Parent gone: nobody is left to report to or to stop us.
  process.once('disconnect', () => run.stop());
  void run.done.then((result) => {
    clearInterval(timer);
    post({ type: 'result', result }, () => {
      if (process.connected) process.disconnect();
      process.exit(0);
    });
  });
}

function main(): void {
  let run: LoadRun;
  try {
    run = startLoad(parseOptions(process.argv.slice(2)));
  } catch (error) {
    // Bad arguments (parseArgs or validation): say what and how, exit 2.
    process.stderr.write(`baton load: ${(error as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  process.once('SIGINT', () => run.stop());
  process.once('SIGTERM', () => run.stop());
  if (process.send !== undefined) reportToParent(run);
  else void run.done.then((result) => process.stdout.write(`${JSON.stringify(result)}\n`));
}

main();
