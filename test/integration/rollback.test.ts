// Rollback in the engine: a generation that goes away while its parent still
// drains (it dies, or shuts down: hands back) makes the parent accept again on
// every socket it still holds, steered away from sockets only the child held.
// Under continuous load, a hand-back loses nothing, after an increase (the
// child's own sockets are served until empty, then closed) and after a
// decrease (the parent serves what it still holds); a child that dies loses
// only what it had itself.

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { assertCounterSeesLoss } from '../support/control';
import { load, startGeneration, uniqueSocketPath, type Line } from '../support/processes';
import { freePort, sleep } from '../support/wait';
import { assertNoneLost, epochsAnswering } from '../support/supervised';

const serving = (l: Line) => l.event === 'serving';
const resumed = (l: Line) => l.event === 'transition' && l.machine === 'parent' && l.to === 'serving' && /went away/.test(String(l.reason));
const draining = (l: Line) => l.event === 'transition' && l.machine === 'parent' && l.to === 'draining';

async function twoGenerations(t: TestContext, name: string, workers: [number, number], retireGraceMs = 300) {
  await assertCounterSeesLoss(); // control: the same counter does see a loss
  const port = await freePort();
  const base = { TEST_PORT: port, BATON_SOCKET_PATH: uniqueSocketPath(name), BATON_DRAIN_TIME_S: 30, BATON_PARENT_SHUTDOWN_TIME_S: 60, BATON_RETIRE_GRACE_MS: retireGraceMs };
  const parent = startGeneration(t, { ...base, BATON_RESTART_EPOCH: 0, TEST_WORKERS: workers[0] });
  await parent.waitFor(serving, { timeoutMs: 15_000, what: 'epoch 0 serving' });
  const traffic = load(t, port, { concurrency: 16, durationMs: 60_000 });
  await sleep(300);
  const child = startGeneration(t, { ...base, BATON_RESTART_EPOCH: 1, TEST_WORKERS: workers[1], TEST_SHUTDOWN_GRACE_MS: 3000 });
  await child.waitFor(serving, { timeoutMs: 15_000, what: 'epoch 1 serving' });
  await parent.waitFor(draining, { timeoutMs: 5000, what: 'epoch 0 draining' });
  await sleep(500);
  return { port, parent, child, traffic };
}

test('hand back after an increase (2 -> 4): the parent serves again, the child serves its own sockets until empty; zero lost', async (t) => {
  const { port, parent, child, traffic } = await twoGenerations(t, 'handback-up', [2, 4]);
  child.kill('SIGTERM');
  await parent.waitFor(resumed, { timeoutMs: 5000, what: 'epoch 0 accepting again' });
  await child.waitFor((l) => l.event === 'transition' && l.machine === 'parent' && l.to === 'terminated', { timeoutMs: 10_000, what: 'epoch 1 done' });
  await sleep(300);
  const late = await load(t, port, { concurrency: 16, durationMs: 800 }).done;
  traffic.stop();
  const result = await traffic.done;
  if (result.lost) t.diagnostic(`epoch 1: ${child.lines.filter((l) => l.event !== 'transition' || l.machine === 'parent').map((l) => JSON.stringify(l)).join('\n')}\nepoch 0: ${parent.lines.slice(-12).map((l) => JSON.stringify(l)).join('\n')}`);
  assertNoneLost(t, result);
  assertNoneLost(t, late, 100);
  assert.deepEqual(epochsAnswering(late), ['epoch=0'], 'the older code answers again, alone');
});

test('hand back after a decrease (4 -> 2, surplus retired): the parent serves on what it still holds; zero lost', async (t) => {
  const { port, parent, child, traffic } = await twoGenerations(t, 'handback-down', [4, 2]);
  await sleep(1200); // the surplus sockets 3 and 2 are retired (grace 300 ms), in the parent too
  child.kill('SIGTERM');
  await parent.waitFor(resumed, { timeoutMs: 5000, what: 'epoch 0 accepting again' });
  await child.exited;
  await sleep(300);
  const late = await load(t, port, { concurrency: 16, durationMs: 800 }).done;
  traffic.stop();
  assertNoneLost(t, await traffic.done);
  assertNoneLost(t, late, 100);
  assert.deepEqual(epochsAnswering(late), ['epoch=0']);
});

test('a child SIGKILLed after an increase: the parent serves again at once, steered to its own sockets; then nothing is lost', async (t) => {
  const { port, parent, child, traffic } = await twoGenerations(t, 'rollback-kill', [2, 4]);
  child.kill('SIGKILL');
  await parent.waitFor(resumed, { timeoutMs: 5000, what: 'epoch 0 accepting again' });
  traffic.stop();
  const during = await traffic.done;
  t.diagnostic(`during the kill: attempted ${during.attempted}, lost ${during.lost} (what the dead one had accepted) ${JSON.stringify(during.errors)}`);
  const late = await load(t, port, { concurrency: 16, durationMs: 1000 }).done;
  assertNoneLost(t, late, 100);
  assert.deepEqual(epochsAnswering(late), ['epoch=0']);
});
