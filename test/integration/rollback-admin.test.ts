// A generation that added an admin listener (its parent had none) and hands
// back keeps its admin socket, as one only it created, until its queue is
// empty. Its stopped admin listener must answer a scrape itself then: passing
// it on to the listener's address would reach that same kept socket, and
// again, a loop of connections to itself.

import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import { fdCount, startGeneration, uniqueSocketPath, type Line } from '../support/processes';
import { freePort, sleep } from '../support/wait';

function fetch(port: number, path: string, timeoutMs: number): Promise<string> {
  return new Promise((done) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c) => (body += c)).on('end', () => done(`${res.statusCode} ${body.trim().split('\n')[0]}`));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (error) => done(`failed: ${error.message}`));
    req.end();
  });
}

test('hand back by a child that added an admin listener: a scrape is answered at once, without a loop of connections', async (t) => {
  const [port, adminPort] = [await freePort(), await freePort()];
  const base = { TEST_PORT: port, BATON_SOCKET_PATH: uniqueSocketPath('admin-handback'), BATON_DRAIN_TIME_S: 30, BATON_PARENT_SHUTDOWN_TIME_S: 60, BATON_RETIRE_GRACE_MS: 3000 };
  const parent = startGeneration(t, { ...base, BATON_RESTART_EPOCH: 0 });
  await parent.waitFor((l) => l.event === 'serving', { timeoutMs: 15_000, what: 'epoch 0 serving' });
  const child = startGeneration(t, { ...base, BATON_RESTART_EPOCH: 1, TEST_ADMIN_PORT: adminPort, TEST_SHUTDOWN_GRACE_MS: 5000 });
  await child.waitFor((l) => l.event === 'serving', { timeoutMs: 15_000, what: 'epoch 1 serving' });
  await sleep(1500); // its parent's numbers are in: the admin listener answers
  assert.match(await fetch(adminPort, '/ready', 2000), /^200 generation 1 ready/);

  child.kill('SIGTERM'); // hands back: epoch 0 accepts again; the admin socket is only epoch 1's
  await parent.waitFor((l: Line) => l.event === 'transition' && l.machine === 'parent' && l.to === 'serving' && /went away/.test(String(l.reason)), { timeoutMs: 5000, what: 'epoch 0 resumed' });
  const before = fdCount(child.pid);
  const started = performance.now();
  const scrape = fetch(adminPort, '/metrics', 8000);
  await sleep(300);
  const during = fdCount(child.pid);
  const answer = await scrape;
  const ms = Math.round(performance.now() - started);
  t.diagnostic(`answer after ${ms} ms: ${answer}; epoch 1's fds ${before} before, ${during} 300 ms into the scrape`);
  assert.ok(during - before < 20, `epoch 1 opened ${during - before} fds for one scrape: connections to itself`);
  assert.ok(ms < 1000, `answered in ${ms} ms`);
});
