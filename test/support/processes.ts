// Real processes for the integration tests: generations started directly or
// under the supervisor, their JSON output collected, fds counted. Every
// process started here is killed when the test ends.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
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
  private waiters: Array<() => void> = [];

  constructor(readonly child: ChildProcess) {
    this.exited = new Promise((done) => child.on('exit', (code, signal) => done({ code, signal })));
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (text) => {
        try {
          this.lines.push(JSON.parse(text) as Line);
        } catch {
          this.lines.push({ text });
          process.stderr.write(`${text}\n`);
        }
        for (const wake of this.waiters.splice(0)) wake();
      });
    }
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The first line (from the start) that matches, waiting for it for at most `ms`. */
  async waitFor(match: (line: Line) => boolean, ms = 15_000, what = 'line'): Promise<Line> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.lines.find(match);
      if (found) return found;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`process ${this.pid} exited before printing the ${what}; it printed:\n${this.dump()}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for the ${what}; printed:\n${this.dump()}`);
      await new Promise<void>((wake) => {
        const timer = setTimeout(wake, Math.min(left, 250));
        this.waiters.push(() => {
          clearTimeout(timer);
          wake();
        });
      });
    }
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

/** The supervisor running generations of test/fixtures/generation.mjs, driven by `env`. */
export function superviseFixture(t: TestContext, flags: string[], env: Record<string, string | number>): Proc {
  return start(t, process.execPath, [CLI, 'run', '--log', 'json', ...flags, '--', process.execPath, FIXTURE], { env: testEnv(env) });
}

/** A generation of the fixture under an fd limit (RLIMIT_NOFILE, soft and hard), as `prlimit --nofile` sets it. */
export function startGenerationLimited(t: TestContext, nofile: number, env: Record<string, string | number>): Proc {
  return start(t, 'prlimit', [`--nofile=${nofile}:${nofile}`, process.execPath, FIXTURE], { env: testEnv(env) });
}

const testEnv = (env: Record<string, string | number>) => ({ ...process.env, ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)])) });

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

/** A socket path prefix that no other test or instance shares. */
export function uniqueSocketPath(name: string): string {
  return `@baton-test-${name}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

export const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

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
