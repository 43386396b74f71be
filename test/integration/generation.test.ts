// One generation's own duties: a worker thread that dies is started again on
// the same socket; control sockets on the filesystem get their mode and are
// cleaned up, and a stale one left by a killed process does not block the next.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Agent, get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as native from '../../src/binding';
import { answered, fdCountReaching, load, ROOT, settledFdCount, start, startGeneration, uniqueSocketPath, type Line } from '../support/processes';
import { freePort, sleep, waitFor } from '../support/wait';
import { assertCounterSeesLoss } from '../support/control';
import { assertNoneLost } from '../support/supervised';

const serving = (l: Line) => l.event === 'serving';
/** Who answered one request, on a connection of its own. */
const responder = (port: number) =>
  new Promise<string>((done, fail) => {
    get({ host: '127.0.0.1', port, agent: false, signal: AbortSignal.timeout(5000) }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => done(body.trim()));
    }).on('error', fail);
  });

test('a worker that cannot start again is retried less and less often, and every failure is in the status log', async (t) => {
  const port = await freePort();
  const generation = startGeneration(t, { TEST_PORT: port, BATON_SOCKET_PATH: uniqueSocketPath('crashloop'), BATON_RESTART_EPOCH: 0, TEST_WORKERS: 2, TEST_BROKEN_RESTARTS: 1 });
  await generation.waitFor(serving, { timeoutMs: 15_000, what: 'serving' });
  await new Promise((done) => get({ host: '127.0.0.1', port, path: '/crash' }, (res) => res.resume().on('end', done)).on('error', done));
  await generation.waitFor((l) => l.event === 'workerExit', { timeoutMs: 5_000, what: 'a worker exit' });
  await sleep(3000);
  const failed = generation.lines.filter((l) => l.event === 'warning' && /failed to start again: .*this deploy is broken/.test(String(l.message)));
  // 100, 200, 400, 800, 1600 ms apart: at most 5 tries in 3 s (a fixed 100 ms gave about 20).
  assert.ok(failed.length >= 2 && failed.length <= 5, `${failed.length} tries in 3 s`);
  assert.ok(generation.lines.some((l) => l.event === 'warning' && /worker \d: restart \d in a row, in \d+ ms/.test(String(l.message))));
});

test('a worker that is down strands nothing: a sibling accepts on its socket until it is back; zero lost beyond what it had', async (t) => {
  await assertCounterSeesLoss(); // control: the same counter does see a loss
  const port = await freePort();
  const generation = startGeneration(t, { TEST_PORT: port, BATON_SOCKET_PATH: uniqueSocketPath('stranded'), BATON_RESTART_EPOCH: 0, TEST_WORKERS: 2, TEST_BROKEN_RESTARTS: 1 });
  await generation.waitFor(serving, { timeoutMs: 15_000, what: 'serving' });
  await new Promise((done) => get({ host: '127.0.0.1', port, path: '/crash' }, (res) => res.resume().on('end', done)).on('error', done));
  const exit = await generation.waitFor((l) => l.event === 'workerExit', { timeoutMs: 5_000, what: 'a worker exit' });
  await sleep(300); // what it had accepted has failed by now
  // It cannot start again for seconds (100, 200, 400, 800... ms apart): its socket's share of the load goes to its sibling.
  const result = await load(t, port, { concurrency: 8, durationMs: 2500, timeoutMs: 2000 }).done;
  t.diagnostic(`worker ${exit.index} down: attempted ${result.attempted}, lost ${result.lost}, max ${result.latencyMs.max.toFixed(0)} ms ${JSON.stringify(result.errors)}`);
  assertNoneLost(t, result);
  assert.deepEqual(Object.keys(result.byResponder), [`epoch=0 worker=${1 - Number(exit.index)}`], 'the sibling answered everything');
  assert.ok(result.latencyMs.max < 1000, `no connection waited in the dead worker's queue (max ${result.latencyMs.max} ms)`);
  assert.ok(generation.lines.some((l) => l.event === 'warning' && /failed to start again/.test(String(l.message))), 'it was down all along');
});

test('a worker thread that dies is started again on the same socket', async (t) => {
  await assertCounterSeesLoss(); // control: the same counter does see a loss
  const port = await freePort();
  const generation = startGeneration(t, { TEST_PORT: port, BATON_SOCKET_PATH: uniqueSocketPath('worker'), BATON_RESTART_EPOCH: 0, TEST_WORKERS: 2 });
  await generation.waitFor(serving, { timeoutMs: 15_000, what: 'serving' });
  const fds = await settledFdCount(generation.pid);
  for (let i = 0; i < 4; i++) {
    await new Promise((done) => get({ host: '127.0.0.1', port, path: '/crash' }, (res) => res.resume().on('end', done)).on('error', done));
  }
  const exit = await generation.waitFor((l) => l.event === 'workerExit', { timeoutMs: 5_000, what: 'a worker exit' });
  assert.match(String(exit.message), /crashes on purpose/);
  // Both serve again (a request queued for a dead one waits for it to start again; one a crashing one took is reset).
  const answering = new Set<string>();
  const bothAnswer = async () => {
    await responder(port).then((r) => answering.add(r), () => undefined);
    return answering.size === 2;
  };
  await waitFor(bothAnswer, { what: () => `both workers answering again (so far ${[...answering].join(', ')})` });
  const result = await load(t, port, { concurrency: 8, durationMs: 800 }).done;
  assert.equal(result.lost, 0, JSON.stringify(result.errors));
  assert.ok(result.byResponder['epoch=0 worker=0'] > 0 && result.byResponder['epoch=0 worker=1'] > 0, JSON.stringify(result.byResponder));
  assert.equal(await fdCountReaching(generation.pid, fds), fds, 'same sockets, same fds: nothing leaked by the dead workers');
});

test('a filesystem control socket gets its mode, survives a stale socket, and is removed at exit', async (t) => {
  await assertCounterSeesLoss(); // control: the same counter does see a loss
  const dir = mkdtempSync(join(tmpdir(), 'baton-sock-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const prefix = join(dir, 'ctl');
  native.close(native.unixListen(`${prefix}_0_0`, false, 0o600, 4)); // a killed process leaves its socket file
  const port = await freePort();
  const base = { TEST_PORT: port, BATON_SOCKET_PATH: prefix, BATON_SOCKET_MODE: '640', BATON_DRAIN_TIME_S: 1, BATON_PARENT_SHUTDOWN_TIME_S: 1 };
  const parent = startGeneration(t, { ...base, BATON_RESTART_EPOCH: 0 });
  await parent.waitFor(serving, { timeoutMs: 15_000, what: 'epoch 0 serving' });
  assert.equal(statSync(`${prefix}_0_0`).mode & 0o777, 0o640);
  assert.ok(statSync(`${prefix}_0_0`).isSocket());

  const traffic = load(t, port, { concurrency: 16 });
  const child = startGeneration(t, { ...base, BATON_RESTART_EPOCH: 1 });
  await child.waitFor(serving, { timeoutMs: 15_000, what: 'epoch 1 serving' });
  assert.deepEqual(await parent.exited, { code: 0, signal: null });
  assert.equal(existsSync(`${prefix}_0_0`), false, "the parent's socket is gone with it");
  assert.ok(existsSync(`${prefix}_0_1`));
  traffic.stop();
  const result = await traffic.done;
  assert.equal(result.lost, 0, JSON.stringify(result.errors));
  assert.ok(result.byResponder['epoch=1 worker=0'] > 0);
});

test('an application serving without the worker pool hands over with zero lost', async (t) => {
  await assertCounterSeesLoss(); // control: the same counter does see a loss
  const port = await freePort();
  const env = { ...process.env, BATON_SOCKET_PATH: uniqueSocketPath('own'), BATON_DRAIN_TIME_S: '1', BATON_PARENT_SHUTDOWN_TIME_S: '1' };
  const example = (epoch: number) =>
    start(t, process.execPath, [join(ROOT, 'examples/main-thread-server.mjs'), '--port', String(port)], { env: { ...env, BATON_RESTART_EPOCH: String(epoch) } });
  const isServing = (l: Line) => /serving 127.0.0.1/.test(String(l.text));
  const parent = example(0);
  await parent.waitFor(isServing, { timeoutMs: 15_000, what: 'epoch 0 serving' });
  const traffic = load(t, port, { concurrency: 16 });
  // Keep-alive clients too: the old generation must close their connections the HTTP way, not reset them.
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  t.after(() => agent.destroy());
  let running = true;
  const keepAliveFailures: string[] = [];
  const keepAlive = Array.from({ length: 4 }, async () => {
    while (running) {
      await new Promise<void>((done) =>
        get({ host: '127.0.0.1', port, path: '/', agent }, (res) => res.resume().on('end', done)).on('error', (e) => (keepAliveFailures.push(e.message), done())),
      );
    }
  });
  await answered(traffic, { from: ['epoch=0'] });
  const child = example(1);
  await child.waitFor(isServing, { timeoutMs: 15_000, what: 'epoch 1 serving' });
  assert.deepEqual(await parent.exited, { code: 0, signal: null });
  await answered(traffic, { from: ['epoch=1'] });
  traffic.stop();
  running = false;
  await Promise.all(keepAlive);
  const result = await traffic.done;
  assert.equal(result.lost, 0, JSON.stringify(result.errors));
  assert.deepEqual(keepAliveFailures, [], 'every keep-alive request answered');
  assert.ok(result.byResponder['epoch=0 worker=0'] > 0 && result.byResponder['epoch=1 worker=0'] > 0, JSON.stringify(result.byResponder));
  child.child.kill('SIGUSR1');
  await child.waitFor((l) => /nothing to reopen/.test(String(l.text)), { timeoutMs: 5000, what: 'SIGUSR1 handled' });
  child.child.kill('SIGTERM');
  assert.deepEqual(await child.exited, { code: 0, signal: null }, 'SIGTERM stops it gracefully');
});

test('a generation with no listeners (workers that consume a queue) takes over at once and hands over like any other, also when its workers never call workerContext()', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-nolisten-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, 'consumer.mjs');
  writeFileSync(
    script,
    `import { isMainThread } from 'node:worker_threads';
     import { serve, workerContext } from ${JSON.stringify(join(ROOT, 'dist/src/index.js'))};
     if (isMainThread) {
       const { generation } = await serve({ listen: [], workers: 2, script: new URL(import.meta.url), startTimeoutMs: 3000, shutdownGraceMs: 100 });
       console.log(JSON.stringify({ event: 'serving', epoch: generation.epoch }));
     } else if (process.env.TEST_NO_CONTEXT) setInterval(() => {}, 60_000); // a consumer that never touches baton
     else workerContext();`,
  );
  const env = { ...process.env, BATON_SOCKET_PATH: uniqueSocketPath('nolisten'), BATON_DRAIN_TIME_S: '1', BATON_PARENT_SHUTDOWN_TIME_S: '1' };
  const generation = (epoch: number, extra: Record<string, string> = {}) => start(t, process.execPath, [script], { env: { ...env, ...extra, BATON_RESTART_EPOCH: String(epoch) } });
  const parent = generation(0);
  await parent.waitFor(serving, { timeoutMs: 5000, what: 'epoch 0 serving, without waiting for the 3 s start timeout' });
  const child = generation(1, { TEST_NO_CONTEXT: '1' });
  await child.waitFor(serving, { timeoutMs: 5000, what: 'epoch 1 serving, its workers never calling workerContext() (they failed at the 3 s start timeout)' });
  assert.deepEqual(await parent.exited, { code: 0, signal: null }, 'the parent drained and ended');
  const stoppedAt = performance.now();
  child.child.kill('SIGTERM');
  assert.deepEqual(await child.exited, { code: 0, signal: null }, 'workers without workerContext() stop with their generation');
  // They cannot hear a terminate: stopped at once, not after the 5 s a worker that can is given.
  assert.ok(performance.now() - stoppedAt < 4000, `stopped ${Math.round(performance.now() - stoppedAt)} ms after SIGTERM`);
});
