// Real processes for the integration tests: generations started directly or
// under the supervisor, their JSON output collected, fds counted. Every
// process started here is killed when the test ends.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { sleep, steady, waitFor } from './wait';
import type { TestContext } from 'node:test';
import { spawnLoad, type LoadOptions } from '../../tools/load';

export const ROOT = resolve(__dirname, '../../..');
export const FIXTURE = resolve(ROOT, 'test/fixtures/generation.mjs');
export const EXAMPLE = resolve(ROOT, 'examples/http-server.mjs');
export const CLI = resolve(ROOT, 'dist/src/supervisor/cli.js');

export type Line = Record<string, unknown>;

export class Proc {
  readonly lines: Line[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Exited, and every line it printed read: a line not seen by now will never come. */
  private closed = false;

  constructor(readonly child: ChildProcess) {
    this.exited = new Promise((done) => child.on('exit', (code, signal) => done({ code, signal })));
    child.on('close', () => (this.closed = true));
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (text) => {
        try {
          this.lines.push(JSON.parse(text) as Line);
        } catch {
          this.lines.push({ text });
          process.stderr.write(`${text}\n`);
        }
      });
    }
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The first line (from the start) that matches; fails once the process has closed its output without printing one. */
  waitFor(match: (line: Line) => boolean, { timeoutMs = 15_000, what = 'line' }: { timeoutMs?: number; what?: string } = {}): Promise<Line> {
    return waitFor(
      () => {
        const found = this.lines.find(match);
        if (!found && this.closed) throw new Error(`process ${this.pid} exited before printing the ${what}; it printed:\n${this.dump()}`);
        return found;
      },
      { timeoutMs, what: () => `the ${what}; printed:\n${this.dump()}` },
    );
  }

  dump(): string {
    return this.lines.map((l) => JSON.stringify(l)).join('\n');
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }

  /** Every pid this process reported (a supervisor's generations). */
  reportedPids(): number[] {
    return this.lines.map((l) => l.pid).filter((pid): pid is number => typeof pid === 'number' && pid !== this.pid);
  }

  /**
   * Ends it whatever state the test left it in: SIGTERM, SIGKILL after a
   * grace period, SIGKILL for anything it reported starting, and its pipes
   * closed so that nothing it left behind can keep the test process alive.
   */
  async cleanUp(graceMs = 3000): Promise<void> {
    this.kill('SIGTERM');
    await Promise.race([this.exited, sleep(graceMs)]);
    this.kill('SIGKILL');
    for (const pid of this.reportedPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    for (const stream of [this.child.stdout, this.child.stderr]) stream?.destroy();
  }
}

/**
 * Starts a process whose JSON lines on stdout and stderr are collected (under
 * the supervisor: its log on stderr, its generations' lines on stdout); other
 * lines are passed on to ours. It is killed at the end of the test.
 */
export function start(t: TestContext, command: string, args: string[], options: SpawnOptions = {}): Proc {
  const proc = new Proc(spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...options }));
  t.after(() => proc.cleanUp());
  return proc;
}

/** A generation of test/fixtures/generation.mjs, started without the supervisor. */
export function startGeneration(t: TestContext, env: Record<string, string | number>): Proc {
  return start(t, process.execPath, [FIXTURE], { env: testEnv(env) });
}

/** The supervisor running the example server, its log in JSON. */
export function startSupervisor(t: TestContext, configPath: string, flags: string[] = []): Proc {
  return start(t, process.execPath, [CLI, 'run', '--log', 'json', ...flags, '--', process.execPath, EXAMPLE, '--config', configPath]);
}

/** The supervisor running generations of test/fixtures/generation.mjs, driven by `env`; `nodeFlags` are the supervisor's node's. */
export function superviseFixture(t: TestContext, flags: string[], env: Record<string, string | number>, nodeFlags: string[] = []): Proc {
  return start(t, process.execPath, [...nodeFlags, CLI, 'run', '--log', 'json', ...flags, '--', process.execPath, FIXTURE], { env: testEnv(env) });
}

/** A generation of the fixture under an fd limit (RLIMIT_NOFILE, soft and hard), as `prlimit --nofile` sets it. */
export function startGenerationLimited(t: TestContext, nofile: number, env: Record<string, string | number>): Proc {
  return start(t, 'prlimit', [`--nofile=${nofile}:${nofile}`, process.execPath, FIXTURE], { env: testEnv(env) });
}

const testEnv = (env: Record<string, string | number>) => ({ ...process.env, ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)])) });

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * The fd count of `pid` once it is `expected`, or what it is after
 * `timeoutMs`: an fd closed a moment after the event awaited is no leak.
 */
export async function fdCountReaching(pid: number, expected: number, timeoutMs = 3000): Promise<number> {
  await waitFor(() => fdCount(pid) === expected, { timeoutMs }).catch(() => undefined);
  return fdCount(pid);
}

/** The fd count of `pid` once it has not changed for a while: what the process keeps. */
export const settledFdCount = (pid: number) => steady(() => fdCount(pid), { what: `the fd count of ${pid} to settle` });

/** A socket path prefix that no other test or instance shares. */
export function uniqueSocketPath(name: string): string {
  return `@baton-test-${name}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/** A load from a separate process against loopback, stopped when the test ends whatever happens. */
export function load(t: TestContext, port: number, options: Partial<Omit<LoadOptions, 'signal'>> = {}) {
  const run = spawnLoad({ targets: [{ host: '127.0.0.1', port }], concurrency: 16, durationMs: 60_000, ...options });
  t.after(() => run.stop());
  return run;
}

/** Sockets on the port in the kernel's tables (as `ss -ltn` / `ss -lun` show them): TCP listening, or UDP bound. */
export function kernelSockets(protocol: 'tcp' | 'udp', port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync(`/proc/net/${protocol}`, 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length > 3 && f[1].endsWith(`:${hexPort}`) && f[3] === (protocol === 'tcp' ? '0A' : '07')).length;
}

/** Once the load has been answered by each of `from` ('epoch=1', 'epoch=1 worker=0'), or at all if none is named. */
export function answered(run: ReturnType<typeof load>, { from = [] as string[], timeoutMs = 10_000 } = {}): Promise<true> {
  const missing = () => {
    const responders = Object.keys(run.snapshot().byResponder);
    return from.filter((f) => !responders.some((r) => r === f || r.startsWith(`${f} `)));
  };
  return waitFor(() => run.snapshot().answered > 0 && missing().length === 0, {
    timeoutMs,
    what: () => `answers from ${from.length ? missing().join(', ') : 'the server'} (so far ${JSON.stringify(run.snapshot().byResponder)})`,
  });
}
