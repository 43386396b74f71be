// The fixture and the example server under `baton run`, and how tests read
// what the supervisor logs.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request, type Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { CLI, startSupervisor, superviseFixture, uniqueSocketPath, type Line, type Proc } from './processes';
import { freePort } from './wait';

export const tookOver = (epoch: number) => (l: Line) => l.epoch === epoch && typeof l.tookOverMs === 'number';
export const logged = (pattern: RegExp) => (l: Line) => typeof l.level === 'string' && pattern.test(String(l.message));
/** The pid of the newest process started as `epoch`. */
export const pidOf = (supervisor: Proc, epoch: number) => Number(supervisor.lines.findLast((l) => l.level && l.epoch === epoch && typeof l.pid === 'number')!.pid);
export const indexOf = (supervisor: Proc, match: (l: Line) => boolean) => supervisor.lines.findIndex(match);
/** `match`, for lines printed from now on. */
export const from = (proc: Proc, match: (l: Line) => boolean) => {
  const start = proc.lines.length;
  return (l: Line) => proc.lines.indexOf(l) >= start && match(l);
};
export const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));

/** A file of TEST_* values every epoch reads as it starts: what the next deploy does. */
export function behaviour(t: TestContext, name: string) {
  const path = join(tmpdir(), `baton-${name}-${process.pid}.json`);
  t.after(() => rmSync(path, { force: true }));
  return { path, set: (values: Record<string, string | number> = {}) => writeFileSync(path, JSON.stringify(values)) };
}

export async function supervised(t: TestContext, name: string, flags: string[] = [], env: Record<string, string | number> = {}) {
  const port = await freePort();
  const next = behaviour(t, name);
  next.set();
  const socketPath = uniqueSocketPath(name);
  const supervisor = superviseFixture(t, ['--socket-path', socketPath, ...flags], { TEST_PORT: port, TEST_ENV_FILE: next.path, ...env });
  await supervisor.waitFor(tookOver(0), { timeoutMs: 15_000, what: 'epoch 0 taking over' });
  return { port, next, supervisor, socketPath };
}

/** The example server under `baton run`, with an admin listener, its config rewritten before each restart. */
export async function supervisedExample(t: TestContext, name: string, flags: string[]) {
  const [port, adminPort] = [await freePort(), await freePort()];
  const config = join(tmpdir(), `baton-${name}-${process.pid}.json`);
  t.after(() => rmSync(config, { force: true }));
  const configure = (concurrency: number) =>
    writeFileSync(config, JSON.stringify({ concurrency, listen: [`127.0.0.1:${port}`], admin: `127.0.0.1:${adminPort}` }));
  configure(2);
  const supervisor = startSupervisor(t, config, ['--socket-path', `@baton-test-${name}-${process.pid}`, ...flags]);
  await supervisor.waitFor(tookOver(0), { timeoutMs: 15_000, what: 'epoch 0 taking over' });
  const restart = async (epoch: number, concurrency: number) => {
    configure(concurrency);
    supervisor.child.kill('SIGHUP');
    await supervisor.waitFor(tookOver(epoch), { timeoutMs: 15_000, what: `epoch ${epoch} taking over` });
  };
  const parentGone = (epoch: number) => supervisor.waitFor(logged(new RegExp(`^draining epoch ${epoch} exited`)), { timeoutMs: 15_000, what: `epoch ${epoch} gone` });
  return { port, adminPort, restart, parentGone };
}

/** One GET on loopback, on a connection of its own (`agent` false) or the agent's. */
export function get(port: number, path: string, agent: Agent | false) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((done, fail) =>
    request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c) => (body += c)).on('end', () => done({ status: res.statusCode!, headers: res.headers, body }));
    }).on('error', fail).end(),
  );
}

/** The epochs that answered a load ('epoch=N'), each once, in the order first seen. */
export function epochsAnswering(run: { byResponder: Record<string, number> }): string[] {
  return [...new Set(Object.keys(run.byResponder).map((r) => r.split(' ')[0]))];
}

type Run = { attempted: number; answered: number; lost: number; errors: object; lostStartedAt?: number[] };

/** With a supervisor: a loss is reported with what it logged around the time each lost exchange began. */
export function assertNoneLost(t: TestContext, run: Run, min = 300, supervisor?: Proc): void {
  t.diagnostic(`attempted ${run.attempted}, answered ${run.answered}, lost ${run.lost} ${JSON.stringify(run.errors)}`);
  assert.ok(run.attempted > min, `load too small to mean anything: ${run.attempted}`);
  assert.equal(run.lost, 0, `lost: ${JSON.stringify(run.errors)}${supervisor ? `\n${aroundLosses(run, supervisor)}` : ''}`);
  assert.equal(run.answered, run.attempted);
}

/** The supervisor's log lines within a second and a half of each lost exchange's start. */
function aroundLosses(run: Run, supervisor: Proc): string {
  const starts = run.lostStartedAt ?? [];
  const near = (l: Line) => typeof l.time === 'string' && starts.some((at) => Math.abs(Date.parse(l.time as string) - at) < 1500);
  return [`lost exchanges began at ${starts.map((at) => new Date(at).toISOString()).join(', ')}`, ...supervisor.lines.filter(near).map((l) => JSON.stringify(l))].join('\n');
}

/** `baton <args>` (reload, status, rollback) run to its end: its exit code and what it printed. */
export function baton(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      const code = (error as { code?: unknown } | null)?.code;
      done({ code: error ? (typeof code === 'number' ? code : -1) : 0, stdout, stderr });
    });
  });
}
