// Hot restarts under continuous load, through the supervisor and the example
// server: every connection attempted is answered, none lost; the serving
// generation's fds stay what they were at epoch 0; a changed config is taken.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fdCount, load, freePort, sleep, startSupervisor, uniqueSocketPath, type Line, type Proc } from '../support/processes';

const tookOver = (epoch: number) => (l: Line) => l.epoch === epoch && typeof l.tookOverMs === 'number';
const pidOf = (supervisor: Proc, epoch: number) => Number(supervisor.lines.find((l) => l.epoch === epoch && typeof l.pid === 'number')!.pid);

async function restart(supervisor: Proc, epoch: number): Promise<void> {
  supervisor.child.kill('SIGHUP');
  await supervisor.waitFor(tookOver(epoch), 15_000, `epoch ${epoch} taking over`);
}

test('repeated hot restarts under load lose no connection, leak no fd, pick up the new config', async (t) => {
  const port = await freePort();
  const config = join(tmpdir(), `baton-restart-${process.pid}.json`);
  const writeConfig = (concurrency: number) => writeFileSync(config, JSON.stringify({ concurrency, listen: [`127.0.0.1:${port}`] }));
  writeConfig(2);
  const supervisor = startSupervisor(t, config, ['--socket-path', uniqueSocketPath('restart'), '--drain-time-s', '1', '--parent-shutdown-time-s', '1']);
  await supervisor.waitFor(tookOver(0), 15_000, 'epoch 0 taking over');
  await sleep(200);
  const fdsAtEpoch0 = fdCount(pidOf(supervisor, 0));

  const traffic = load(t, port, { concurrency: 32, durationMs: 60_000 });
  await sleep(300);
  const restarts = 6;
  for (let epoch = 1; epoch <= restarts; epoch++) {
    await restart(supervisor, epoch);
    await sleep(300);
  }
  // The serving generation, alone again once its parent is terminated, holds what epoch 0 held.
  await supervisor.waitFor((l) => /draining epoch 5 exited \(code 0\)/.test(String(l.message)), 10_000, 'epoch 5 exiting');
  await sleep(100);
  assert.equal(fdCount(pidOf(supervisor, restarts)), fdsAtEpoch0, 'fds of the serving generation after 6 handoffs');

  writeConfig(4);
  await restart(supervisor, restarts + 1);
  await sleep(1000);
  traffic.stop();
  const result = await traffic.done;

  t.diagnostic(`attempted ${result.attempted}, answered ${result.answered}, lost ${result.lost} ${JSON.stringify(result.errors)}`);
  assert.ok(result.attempted > 500, `load too small to mean anything: ${result.attempted}`);
  assert.equal(result.lost, 0, `lost connections: ${JSON.stringify(result.errors)}`);
  assert.equal(result.answered, result.attempted);
  for (let epoch = 0; epoch <= restarts + 1; epoch++) {
    assert.ok(Object.keys(result.byResponder).some((r) => r.startsWith(`epoch=${epoch} `)), `epoch ${epoch} answered nothing`);
  }
  assert.ok(result.byResponder[`epoch=${restarts + 1} worker=3`] > 0, 'the restarted generation runs the 4 workers of the new config');

  supervisor.child.kill('SIGTERM');
  assert.deepEqual(await supervisor.exited, { code: 0, signal: null });
});
