// A new generation that dies at any step of the handoff, or is refused,
// leaves the old one serving: under continuous load nothing is lost, and the
// old one's fd count is what it was before.

import assert from 'node:assert/strict';
import { hotRestartVersion } from '../../src/options';
import { test, type TestContext } from 'node:test';
import { answered, fdCountReaching, load, settledFdCount, startGeneration, startGenerationLimited, uniqueSocketPath, type Line, type Proc } from '../support/processes';
import { freePort, sleep } from '../support/wait';
import { assertCounterSeesLoss } from '../support/control';
import { assertNoneLost, epochsAnswering, from } from '../support/supervised';

const serving = (l: Line) => l.event === 'serving';
const parentIs = (state: string) => (l: Line) => l.event === 'transition' && l.machine === 'parent' && l.to === state;

/** The control case, then epoch 0 serving on a free port; `base` starts more generations of the same instance. */
async function firstGeneration(t: TestContext, name: string, drainTimeS: number, parentShutdownTimeS: number, env: Record<string, string> = {}) {
  await assertCounterSeesLoss(); // control: the same counter does see a loss
  const port = await freePort();
  const base = { TEST_PORT: port, BATON_SOCKET_PATH: uniqueSocketPath(name), BATON_DRAIN_TIME_S: drainTimeS, BATON_PARENT_SHUTDOWN_TIME_S: parentShutdownTimeS };
  const parent = startGeneration(t, { ...base, ...env, BATON_RESTART_EPOCH: 0 });
  await parent.waitFor(serving, { timeoutMs: 15_000, what: 'epoch 0 serving' });
  return { port, base, parent };
}

/** A child of `parent`; `gone()` resolves once it has exited and the parent, rid of it, serves alone again. */
function startChild(t: TestContext, parent: Proc, env: Record<string, string | number>) {
  const parentAlone = from(parent, parentIs('serving'));
  const child = startGeneration(t, env);
  const gone = async () => {
    await child.exited;
    await parent.waitFor(parentAlone, { timeoutMs: 5000, what: `parent serving alone after child ${child.pid}` });
  };
  return Object.assign(child, { gone });
}

test('a child killed at each step of the handoff, or refused, leaves the parent serving with zero lost', async (t) => {
  const { port, base, parent } = await firstGeneration(t, 'failures', 2, 60);
  const fdsBefore = await settledFdCount(parent.pid);

  const traffic = load(t, port, { concurrency: 16, durationMs: 60_000 });
  await answered(traffic);

  for (const step of ['initializing', 'takingSockets', 'startingWorkers'] as const) {
    for (let round = 0; round < 3; round++) {
      const child = startChild(t, parent, { ...base, BATON_RESTART_EPOCH: 1, TEST_CRASH_AT: step });
      const { signal } = await child.exited;
      assert.equal(signal, 'SIGKILL', `the child should have died at ${step}:\n${child.dump()}`);
      assert.ok(child.lines.some((l) => l.to === step), `the child never reached ${step}:\n${child.dump()}`);
      await child.gone();
    }
  }

  // More workers than the parent has, none of which can start: the socket it created for its
  // third worker must not have taken connections it then resets.
  const broken = startChild(t, parent, { ...base, BATON_RESTART_EPOCH: 1, TEST_WORKERS: 3, TEST_BROKEN_WORKERS: 1 });
  const brokenFailure = await broken.waitFor((l) => l.event === 'failed', { timeoutMs: 15_000, what: 'broken workers failing' });
  assert.match(String(brokenFailure.message), /worker \d exited \(code 1\) before serving: this deploy is broken/);
  await broken.gone();

  const mismatched = startChild(t, parent, { ...base, BATON_RESTART_EPOCH: 1, TEST_COMPAT: 'other-build' });
  const refusal = await mismatched.waitFor((l) => l.event === 'failed', { timeoutMs: 10_000, what: 'version refusal' });
  assert.equal(refusal.code, 'BATON_VERSION_MISMATCH');
  assert.match(String(refusal.message), new RegExp(`hot restart version '${hotRestartVersion('other-build')}', this generation runs '${hotRestartVersion()}'`));
  await mismatched.gone();

  const wrongEpoch = startGeneration(t, { ...base, BATON_RESTART_EPOCH: 2 });
  const noParent = await wrongEpoch.waitFor((l) => l.event === 'failed', { timeoutMs: 10_000, what: 'no parent for epoch 2' });
  assert.equal(noParent.code, 'BATON_NO_PARENT');
  await wrongEpoch.exited; // it looked for a parent of epoch 1: ours never heard of it

  // After the parent has stopped accepting: the child stops, the parent accepts again.
  const servingAgain = from(parent, (l) => parentIs('serving')(l) && /went away/.test(String(l.reason))); // not after the children above
  const quitter = startGeneration(t, { ...base, BATON_RESTART_EPOCH: 1, TEST_STOP_AT: 'drainingParent', TEST_CRASH_DELAY_MS: 300 });
  await parent.waitFor(parentIs('draining'), { timeoutMs: 15_000, what: 'parent draining' });
  await quitter.exited;
  await parent.waitFor(servingAgain, { timeoutMs: 5_000, what: 'parent serving again' });
  await sleep(500);

  traffic.stop();
  const result = await traffic.done;
  t.diagnostic(`attempted ${result.attempted}, answered ${result.answered}, lost ${result.lost} ${JSON.stringify(result.errors)}`);
  assert.ok(result.attempted > 300, `load too small: ${result.attempted}`);
  assert.equal(result.lost, 0, `lost: ${JSON.stringify(result.errors)}`);
  assert.ok(result.byResponder['epoch=1 worker=0'] > 0, 'the quitting child served before it stopped');
  assert.equal(await fdCountReaching(parent.pid, fdsBefore), fdsBefore, 'parent fds after 13 failed handoffs');
});

test('a child whose last worker fails after the first is ready had accepted nothing: slow requests in flight are all answered', async (t) => {
  const { port, base, parent } = await firstGeneration(t, 'late-worker', 2, 60, { TEST_RESPONSE_MS: '150' });
  const traffic = load(t, port, { concurrency: 32, durationMs: 60_000 });
  await answered(traffic);
  for (let round = 0; round < 3; round++) {
    const child = startChild(t, parent, { ...base, BATON_RESTART_EPOCH: 1, TEST_RESPONSE_MS: 150, TEST_LATE_BROKEN_WORKER: '1:1' });
    const failure = await child.waitFor((l) => l.event === 'failed', { timeoutMs: 15_000, what: 'the child failing' });
    assert.match(String(failure.message), /worker 1 exited \(code 1\) before serving: this worker breaks late/);
    await child.gone();
  }
  traffic.stop();
  const result = await traffic.done;
  t.diagnostic(`attempted ${result.attempted}, answered ${result.answered}, lost ${result.lost} ${JSON.stringify(result.errors)}`);
  assert.ok(result.attempted > 300, `load too small: ${result.attempted}`);
  assert.equal(result.lost, 0, JSON.stringify(result.errors));
  assert.deepEqual(Object.keys(result.byResponder).sort(), ['epoch=0 worker=0', 'epoch=0 worker=1'], 'the failed children answered nothing');
  assert.equal(parent.child.exitCode, null);
});

test('a child SIGKILLed while the parent drains: the parent accepts again at once, with a worker that died meanwhile started again', async (t) => {
  const { port, base, parent } = await firstGeneration(t, 'resume', 2, 60, { TEST_CRASH_ON_DRAIN: '0:1' });
  const child = startGeneration(t, { ...base, BATON_RESTART_EPOCH: 1, TEST_CRASH_AT: 'drainingParent', TEST_CRASH_DELAY_MS: 300 });
  await parent.waitFor(parentIs('draining'), { timeoutMs: 15_000, what: 'parent draining' });
  await child.exited;
  await parent.waitFor((l) => parentIs('serving')(l) && /went away/.test(String(l.reason)), { timeoutMs: 5_000, what: 'parent serving again' });
  assert.ok(parent.lines.some((l) => l.event === 'workerExit' && l.index === 1), 'worker 1 of the parent died while it drained');

  const traffic = load(t, port, { concurrency: 16, durationMs: 1000 });
  const result = await traffic.done;
  assert.ok(result.attempted > 100);
  assert.equal(result.lost, 0, JSON.stringify(result.errors));
  assert.deepEqual(Object.keys(result.byResponder).sort(), ['epoch=0 worker=0', 'epoch=0 worker=1']);
});

test('three generations: the middle one SIGKILLed while it drains; the oldest does not serve again, and exits at its shutdown time', async (t) => {
  // Epoch 1 ends epoch 0 at its shutdown time: 5 s leaves epoch 2 time to start and take over first on a busy machine.
  const { port, base, parent: oldest } = await firstGeneration(t, 'grandparent', 30, 5);
  const traffic = load(t, port, { concurrency: 16, durationMs: 60_000 });
  const middle = startGeneration(t, { ...base, BATON_RESTART_EPOCH: 1 });
  await middle.waitFor(serving, { timeoutMs: 15_000, what: 'epoch 1 serving' });
  const newest = startGeneration(t, { ...base, BATON_RESTART_EPOCH: 2 });
  await newest.waitFor(serving, { timeoutMs: 15_000, what: 'epoch 2 serving' });
  await middle.waitFor(parentIs('draining'), { timeoutMs: 5000, what: 'epoch 1 draining' });
  await sleep(200); // epoch 1 has told epoch 0 that it no longer accepts
  middle.kill('SIGKILL');
  await oldest.waitFor((l) => l.event === 'warning' && /went away after its own child took over/.test(String(l.message)), { timeoutMs: 5000, what: 'epoch 0 noticing' });
  await sleep(500);
  traffic.stop();
  const result = await traffic.done;
  // Epoch 1's own accepted connections die with it; what counts is that epoch 0 answers nothing new.
  const late = await load(t, port, { concurrency: 16, durationMs: 800 }).done;
  t.diagnostic(`during: attempted ${result.attempted}, lost ${result.lost}; after: attempted ${late.attempted}, lost ${late.lost}`);
  assert.equal(late.lost, 0, JSON.stringify(late.errors));
  assert.deepEqual(Object.keys(late.byResponder).sort(), ['epoch=2 worker=0', 'epoch=2 worker=1'], 'only the newest generation serves');
  assert.ok(!oldest.lines.some((l) => parentIs('serving')(l) && /went away/.test(String(l.reason))), 'epoch 0 never went back to serving');
  assert.deepEqual(await oldest.exited, { code: 0, signal: null }, 'epoch 0 ends at its own shutdown time (5 s)');
});

test('a parent killed while its child initializes: the child serves alone', async (t) => {
  const { port, base, parent } = await firstGeneration(t, 'orphan', 1, 1);
  const child = startGeneration(t, { ...base, BATON_RESTART_EPOCH: 1, TEST_INIT_MS: 500 });
  await child.waitFor((l) => l.to === 'initializing', { timeoutMs: 15_000, what: 'the child initializing' });
  parent.kill('SIGKILL');
  await child.waitFor(serving, { timeoutMs: 15_000, what: 'the child serving without its parent' });
  const result = await load(t, port, { concurrency: 16, durationMs: 800 }).done;
  assert.ok(result.attempted > 100);
  assert.equal(result.lost, 0, JSON.stringify(result.errors));
  assert.deepEqual(Object.keys(result.byResponder).sort(), ['epoch=1 worker=0', 'epoch=1 worker=1']);
});

test('a child the parent gives up on while its workers start, with more UDP sockets than the parent: none of them takes a datagram', async (t) => {
  const { port, base, parent } = await firstGeneration(t, 'given-up', 2, 60, { TEST_UDP: '1', BATON_CHILD_INIT_TIMEOUT_S: '1' });
  const udp = load(t, port, { protocol: 'udp', concurrency: 8, timeoutMs: 1000, durationMs: 60_000 });
  await answered(udp);
  // Its two new UDP sockets join the group as they are bound; the parent gives up on it after 1 s, and
  // it holds them until its workers are up, 2 s later, and it fails.
  const child = startChild(t, parent, { ...base, BATON_RESTART_EPOCH: 1, TEST_UDP: 1, TEST_WORKERS: 4, TEST_SLOW_WORKERS_MS: 3000 });
  const failure = await child.waitFor((l) => l.event === 'failed', { timeoutMs: 15_000, what: 'the child failing' });
  assert.match(String(failure.message), /the parent gave up on this generation/);
  await child.gone();
  udp.stop();
  const result = await udp.done;
  assertNoneLost(t, result, 100);
  assert.deepEqual(epochsAnswering(result), ['epoch=0']);
});

test('a SIGTERM while a child initializes abandons it at its next step (BATON_STOPPED); the parent serves on', async (t) => {
  const { port, base } = await firstGeneration(t, 'stopped', 2, 60);
  const child = startGeneration(t, { ...base, BATON_RESTART_EPOCH: 1, TEST_INIT_MS: 800 });
  await child.waitFor((l) => l.event === 'transition' && l.to === 'initializing', { timeoutMs: 5000, what: 'the child initializing' });
  child.child.kill('SIGTERM');
  const failure = await child.waitFor((l) => l.event === 'failed', { timeoutMs: 5000, what: 'the child stopping' });
  assert.equal(failure.code, 'BATON_STOPPED');
  assert.equal((await child.exited).code, 3);
  const after = await load(t, port, { concurrency: 4, durationMs: 500 }).done;
  assertNoneLost(t, after, 50);
  assert.deepEqual(epochsAnswering(after), ['epoch=0']);
});

for (const nofile of [100, 120]) {
  test(`8 -> 16 workers under RLIMIT_NOFILE ${nofile}: the child takes over with every worker holding its sockets, or fails before, naming the limit; zero lost`, async (t) => {
    await assertCounterSeesLoss(); // control: the same counter does see a loss
    const port = await freePort();
    const base = { TEST_PORT: port, BATON_SOCKET_PATH: uniqueSocketPath('nofile'), BATON_DRAIN_TIME_S: 5, BATON_PARENT_SHUTDOWN_TIME_S: 10 };
    const parent = startGenerationLimited(t, nofile, { ...base, BATON_RESTART_EPOCH: 0, TEST_WORKERS: 8 });
    await parent.waitFor(serving, { timeoutMs: 15_000, what: 'epoch 0 serving' });
    const traffic = load(t, port, { concurrency: 16, durationMs: 60_000 });
    await sleep(300);
    const child = startGenerationLimited(t, nofile, { ...base, BATON_RESTART_EPOCH: 1, TEST_WORKERS: 16 });
    const outcome = await Promise.race([child.exited.then(() => 'failed'), child.waitFor(serving, { timeoutMs: 15_000, what: 'epoch 1 serving' }).then(() => 'took over')]);
    t.diagnostic(`epoch 1 ${outcome}`);
    if (outcome === 'failed') {
      assert.ok(!child.lines.some(serving), 'epoch 1 never took over');
      const failure = child.lines.find((l) => l.event === 'failed');
      assert.match(String(failure?.message), /(EMFILE|too few fds left).*fds open, limit \d+ \(RLIMIT_NOFILE\): raise it \(ulimit -n/, 'the error names the limit and what to do');
    } else {
      await sleep(1500);
    }
    traffic.stop();
    const result = await traffic.done;
    assert.deepEqual(child.lines.filter((l) => l.event === 'workerExit'), [], 'no worker of epoch 1 died once it had taken over');
    assertNoneLost(t, result);
  });
}
