// Only the serving generation hands back. The middle one of three (0 and 1
// drain, 2 serves) that stops has nothing to hand back: the sockets it
// created are its child's now, and retiring them (shutdown(2) acts on every
// fd of a listener) would take them out of the group under epoch 2, whose
// next child would be handed sockets that no longer listen.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kernelSockets, startGeneration, uniqueSocketPath } from '../support/processes';
import { freePort, sleep } from '../support/wait';

test('SIGTERM to the middle of three generations leaves the newest one\'s sockets listening, and the next restart works', async (t) => {
  const port = await freePort();
  const base = { TEST_PORT: port, BATON_SOCKET_PATH: uniqueSocketPath('middle'), BATON_DRAIN_TIME_S: 30, BATON_PARENT_SHUTDOWN_TIME_S: 60, BATON_RETIRE_GRACE_MS: 300 };
  const serving = (l: Record<string, unknown>) => l.event === 'serving';
  const g0 = startGeneration(t, { ...base, BATON_RESTART_EPOCH: 0, TEST_WORKERS: 2 });
  await g0.waitFor(serving, { timeoutMs: 15_000, what: 'epoch 0 serving' });
  const g1 = startGeneration(t, { ...base, BATON_RESTART_EPOCH: 1, TEST_WORKERS: 4, TEST_SHUTDOWN_GRACE_MS: 3000 });
  await g1.waitFor(serving, { timeoutMs: 15_000, what: 'epoch 1 serving' });
  const g2 = startGeneration(t, { ...base, BATON_RESTART_EPOCH: 2, TEST_WORKERS: 4 });
  await g2.waitFor(serving, { timeoutMs: 15_000, what: 'epoch 2 serving' });
  await sleep(300);
  assert.equal(kernelSockets('tcp', port), 4, 'epoch 2 serves 4 sockets (2 made by epoch 0, 2 by epoch 1)');

  g1.kill('SIGTERM'); // epoch 1 drains already (epoch 2 serves): nothing to hand back
  await sleep(1500);
  const after = kernelSockets('tcp', port);
  t.diagnostic(`listening after epoch 1's SIGTERM: ${after}; epoch 1 retired: ${JSON.stringify(g1.lines.filter((l) => l.event === 'retired'))}`);
  const g3 = startGeneration(t, { ...base, BATON_RESTART_EPOCH: 3, TEST_WORKERS: 4 });
  const outcome = await g3.waitFor((l) => l.event === 'serving' || l.event === 'failed', { timeoutMs: 15_000, what: 'epoch 3 serving or failed' });
  t.diagnostic(`epoch 3: ${JSON.stringify(outcome)}`);
  assert.equal(after, 4, 'epoch 2 still has its 4 sockets in the group');
  assert.equal(outcome.event, 'serving', `the next restart: ${JSON.stringify(outcome)}`);
});
