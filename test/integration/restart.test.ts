// Hot restarts under continuous load, through the supervisor and the example
// server: every connection attempted is answered, none lost; the serving
// generation's fds stay what they were at epoch 0; a changed config is taken.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { answered, fdCountReaching, load, settledFdCount, startSupervisor, uniqueSocketPath, type Line, type Proc } from '../support/processes';
import { freePort, sleep } from '../support/wait';
import { assertCounterSeesLoss } from '../support/control';

const tookOver = (epoch: number) => (l: Line) => l.epoch === epoch && typeof l.tookOverMs === 'number';
const pidOf = (supervisor: Proc, epoch: number) => Number(supervisor.lines.find((l) => l.epoch === epoch && typeof l.pid === 'number')!.pid);

async function restart(supervisor: Proc, epoch: number): Promise<void> {
  supervisor.child.kill('SIGHUP');
  await supervisor.waitFor(tookOver(epoch), { timeoutMs: 15_000, what: `epoch ${epoch} taking over` });
}

test('repeated hot restarts under load lose no connection, leak no fd, pick up the new config', async (t) => {
  await assertCounterSeesLoss(); // control: the same counter does see a loss
  const port = await freePort();
  const config = join(tmpdir(), `baton-restart-${process.pid}.json`);
  const writeConfig = (concurrency: number) => writeFileSync(config, JSON.stringify({ concurrency, listen: [`127.0.0.1:${port}`] }));
  writeConfig(2);
  const supervisor = startSupervisor(t, config, ['--socket-path', uniqueSocketPath('restart'), '--drain-time-s', '1', '--parent-shutdown-time-s', '1']);
  await supervisor.waitFor(tookOver(0), { timeoutMs: 15_000, what: 'epoch 0 taking over' });
  const fdsAtEpoch0 = await settledFdCount(pidOf(supervisor, 0));

  const traffic = load(t, port, { concurrency: 32, durationMs: 60_000 });
  await answered(traffic, { from: ['epoch=0'] });
  const restarts = 6;
  for (let epoch = 1; epoch <= restarts; epoch++) {
    await restart(supervisor, epoch);
    await answered(traffic, { from: [`epoch=${epoch}`] });
  }
  traffic.stop();
  const result = await traffic.done;
  // The serving generation, alone and idle again once its parent is terminated, holds what epoch 0 held.
  await supervisor.waitFor((l) => /draining epoch 5 exited \(code 0\)/.test(String(l.message)), { timeoutMs: 10_000, what: 'epoch 5 exiting' });
  assert.equal(await fdCountReaching(pidOf(supervisor, restarts), fdsAtEpoch0), fdsAtEpoch0, 'fds of the serving generation after 6 handoffs');

  const second = load(t, port, { concurrency: 32, durationMs: 60_000 });
  writeConfig(4);
  await answered(second, { from: [`epoch=${restarts}`] });
  await restart(supervisor, restarts + 1);
  await sleep(1000); // the load goes on through the new generation's first second
  second.stop();
  const after = await second.done;

  for (const [run, epochs] of [[result, [0, 1, 2, 3, 4, 5, 6]], [after, [6, 7]]] as const) {
    t.diagnostic(`attempted ${run.attempted}, answered ${run.answered}, lost ${run.lost} ${JSON.stringify(run.errors)}`);
    assert.ok(run.attempted > 500, `load too small to mean anything: ${run.attempted}`);
    assert.equal(run.lost, 0, `lost connections: ${JSON.stringify(run.errors)}`);
    assert.equal(run.answered, run.attempted);
    for (const epoch of epochs) {
      assert.ok(Object.keys(run.byResponder).some((r) => r.startsWith(`epoch=${epoch} `)), `epoch ${epoch} answered nothing`);
    }
  }
  assert.ok(after.byResponder[`epoch=${restarts + 1} worker=3`] > 0, 'the restarted generation runs the 4 workers of the new config');

  supervisor.child.kill('SIGTERM');
  assert.deepEqual(await supervisor.exited, { code: 0, signal: null });
});
