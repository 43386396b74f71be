// The fixture under `baton run`, and how tests read what the supervisor logs.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { superviseFixture, uniqueSocketPath, type Line, type Proc } from './processes';
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
  const supervisor = superviseFixture(t, ['--socket-path', uniqueSocketPath(name), ...flags], { TEST_PORT: port, TEST_ENV_FILE: next.path, ...env });
  await supervisor.waitFor(tookOver(0), { timeoutMs: 15_000, what: 'epoch 0 taking over' });
  return { port, next, supervisor };
}

/** The epochs that answered a load ('epoch=N'), each once, in the order first seen. */
export function epochsAnswering(run: { byResponder: Record<string, number> }): string[] {
  return [...new Set(Object.keys(run.byResponder).map((r) => r.split(' ')[0]))];
}

export function assertNoneLost(t: TestContext, run: { attempted: number; answered: number; lost: number; errors: object }, min = 300): void {
  t.diagnostic(`attempted ${run.attempted}, answered ${run.answered}, lost ${run.lost} ${JSON.stringify(run.errors)}`);
  assert.ok(run.attempted > min, `load too small to mean anything: ${run.attempted}`);
  assert.equal(run.lost, 0, `lost: ${JSON.stringify(run.errors)}`);
  assert.equal(run.answered, run.attempted);
}
