// Readiness and liveness as an orchestrator probes them (kubelet opens a
// connection per probe and gives up after timeoutSeconds, 1 s by default):
// through hot restarts under load, GET /ready and /live on the example's
// admin listener read 200 from the generation that serves, every time.
// Control: a probe that keeps its connection to a generation that drains
// sees 503 on /ready (and 200 on /live), told to reconnect.

import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { test } from 'node:test';
import { load } from '../support/processes';
import { sleep } from '../support/wait';
import { assertNoneLost, get, supervisedExample } from '../support/supervised';

/** One probe as kubelet sends it: a connection of its own, failed after 1 s. */
function probe(port: number, path: string): Promise<string> {
  return new Promise((done) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: 1000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c) => (body += c)).on('end', () => done(`${res.statusCode} ${body.trim()}`));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 1 s')));
    req.on('error', (error) => done(`failed: ${error.message}`));
    req.end();
  });
}

test('3 hot restarts under load: every /ready and /live probe reads 200 from the serving generation; a kept-alive one to the draining generation reads 503', async (t) => {
  const server = await supervisedExample(t, 'ready', ['--drain-time-s', '2', '--parent-shutdown-time-s', '3']);
  const traffic = load(t, server.port, { concurrency: 4 });
  const answers: Record<'/ready' | '/live', string[]> = { '/ready': [], '/live': [] };
  let [probing, slowestMs] = [true, 0];
  const probers = (['/ready', '/live'] as const).map(async (path) => {
    while (probing) {
      const sent = performance.now();
      answers[path].push(await probe(server.adminPort, path));
      slowestMs = Math.max(slowestMs, performance.now() - sent);
      await sleep(10);
    }
  });

  // The control: probes that keep their connection, as a prober with keep-alive would.
  const keptAlive = { ready: new Agent({ keepAlive: true, maxSockets: 1 }), live: new Agent({ keepAlive: true, maxSockets: 1 }) };
  t.after(() => Object.values(keptAlive).forEach((a) => a.destroy()));
  assert.equal((await get(server.adminPort, '/ready', keptAlive.ready)).body, 'generation 0 ready\n');
  assert.equal((await get(server.adminPort, '/live', keptAlive.live)).body, 'generation 0 live\n');

  for (let epoch = 1; epoch <= 3; epoch++) {
    await server.restart(epoch, 2);
    if (epoch === 1) {
      const stale = await get(server.adminPort, '/ready', keptAlive.ready);
      assert.equal(stale.status, 503, 'its connection still reaches generation 0, which drains: not ready');
      assert.equal(stale.headers.connection, 'close');
      assert.match(stale.body, /^generation 0 is draining: not ready/);
      const live = await get(server.adminPort, '/live', keptAlive.live);
      assert.deepEqual([live.status, live.headers.connection, live.body], [200, 'close', 'generation 0 live\n'], 'generation 0 still runs: alive, and told to reconnect');
      assert.equal((await get(server.adminPort, '/ready', keptAlive.ready)).body, 'generation 1 ready\n', 'reconnected, it reaches the generation that serves');
    }
    await sleep(1000); // probes through the drain
  }
  await server.parentGone(2);
  probing = false;
  await Promise.all(probers);
  traffic.stop();
  assertNoneLost(t, await traffic.done);

  t.diagnostic(`${answers['/ready'].length} + ${answers['/live'].length} probes, the slowest answered in ${slowestMs.toFixed(1)} ms`);
  for (const [path, seen] of Object.entries(answers)) {
    assert.ok(seen.length > 100, `${path}: enough probes to mean anything`);
    const failed = seen.filter((a) => !a.startsWith('200 '));
    assert.deepEqual(failed, [], `${path}: every probe answered 200`);
    // From the generation that serves: the epochs answering only ever go up, and each one answered.
    const epochs = seen.map((a) => Number(/^200 generation (\d+)/.exec(a)![1]));
    epochs.forEach((e, i) => assert.ok(i === 0 || e >= epochs[i - 1], `${path}: generation ${e} answered after ${epochs[i - 1]}`));
    assert.deepEqual([...new Set(epochs)], [0, 1, 2, 3]);
  }
});
