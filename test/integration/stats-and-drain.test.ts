// Stats across hot restarts, read the way Prometheus reads them (GET /metrics
// on the example's admin listener), and the drain as HTTP keep-alive clients
// see it: counters that never go back and add up to every request served,
// the parent's share of gauges while it drains, and connections closed by
// the server with `Connection: close` before the drain time is over.

import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { test } from 'node:test';
import { answered, load } from '../support/processes';
import { assertKeepAliveCounterSeesLoss } from '../support/control';
import { assertNoneLost, get, supervisedExample } from '../support/supervised';
import { sleep, waitFor } from '../support/wait';

/**
 * One scrape on a connection of its own (a kept-alive one that reaches a
 * generation after its drain began gets 503: see AdminListener): every
 * sample of the exposition, by name (labels kept in the name).
 */
async function scrape(adminPort: number): Promise<Map<string, number>> {
  const { status, body: text } = await get(adminPort, '/metrics', false);
  if (status !== 200) throw new Error(`scrape: ${status} ${text}`);
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-z_][a-z0-9_]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (match) samples.set(match[1], Number(match[2]));
  }
  return samples;
}

test('5 restarts under load: counters never go back and add up to every request served; gauges carry the parent while it drains', async (t) => {
  const server = await supervisedExample(t, 'stats', ['--drain-time-s', '1', '--parent-shutdown-time-s', '2']);
  const traffic = load(t, server.port, { concurrency: 8 });
  const seen: Array<Map<string, number>> = [];
  let scraping = true;
  const scraper = (async () => {
    while (scraping) {
      seen.push(await scrape(server.adminPort)); // a failed scrape fails the test: the admin socket is handed over too
      await sleep(50);
    }
  })();
  const until = (check: (s: Map<string, number>) => boolean, what: string) => waitFor(async () => check(await scrape(server.adminPort)), { timeoutMs: 10_000, what, intervalMs: 50 });

  // A request target `new URL()` cannot parse is a 404, not the end of the generation.
  const odd = await new Promise<string>((done, fail) => {
    const socket = connect(server.adminPort, '127.0.0.1', () => socket.end('GET http://[ HTTP/1.1\r\nHost: x\r\n\r\n'));
    let answer = '';
    socket.setEncoding('utf8').on('data', (c) => (answer += c)).on('end', () => done(answer)).on('error', fail);
  });
  assert.match(odd, /^HTTP\/1\.1 404 /);

  // A scraper that keeps its connection, as Prometheus does.
  const keptAlive = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => keptAlive.destroy());
  assert.equal((await get(server.adminPort, '/metrics', keptAlive)).status, 200);

  const counts = [2, 3, 2, 3, 2, 3];
  for (let epoch = 1; epoch < counts.length; epoch++) {
    await server.restart(epoch, counts[epoch]);
    await until((s) => s.get('example_workers') === counts[epoch - 1] + counts[epoch], `epoch ${epoch}: the parent's workers counted while it drains`);
    if (epoch === 1) {
      // Its connection still reaches the draining generation, which no longer has the whole count: it says so rather than answer.
      const stale = await get(server.adminPort, '/metrics', keptAlive);
      assert.equal(stale.status, 503);
      assert.equal(stale.headers.connection, 'close');
      assert.match(stale.body, /generation 0 is draining: the next one serves the metrics, ask again/);
      assert.equal((await get(server.adminPort, '/metrics', keptAlive)).status, 200, 'and the next scrape, on a new connection, is answered');
    }
    await server.parentGone(epoch - 1);
    await until((s) => s.get('example_workers') === counts[epoch], `epoch ${epoch}: the parent's share gone once it terminated`);
    assert.equal((await scrape(server.adminPort)).get('baton_hot_restart_generation'), epoch + 1, 'the generation gauge counts 1, 2, 3...');
  }
  traffic.stop();
  const result = await traffic.done;
  scraping = false;
  await scraper;

  const last = await scrape(server.adminPort);
  t.diagnostic(`answered ${result.answered}, lost ${result.lost}; example_requests_total ${last.get('example_requests_total')}; ${seen.length} scrapes`);
  assert.equal(result.lost, 0);
  assert.equal(last.get('example_requests_total'), result.answered, 'every request served, in all generations, counted once');
  assert.equal(last.get('baton_hot_restarts_total'), 5);
  assert.ok(seen.length > 50);
  for (const name of ['example_requests_total', 'baton_hot_restarts_total', 'baton_connections_accepted_total{worker="0"}']) {
    const values = seen.map((s) => s.get(name) ?? 0);
    values.forEach((v, i) => assert.ok(i === 0 || v >= values[i - 1], `${name} went back from ${values[i - 1]} to ${v} at scrape ${i}`));
  }
  assert.equal(new Set(seen.map((s) => s.get('baton_server_start_time_seconds'))).size, 1, 'the original start time is kept');
});

test('keep-alive clients in the drain: every request answered, their connections closed by the server with Connection: close before the drain time is over', async (t) => {
  const server = await supervisedExample(t, 'keepalive', ['--drain-time-s', '2', '--parent-shutdown-time-s', '4']);
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  t.after(() => agent.destroy());
  interface Seen { epochs: Set<string>; closedAt?: number; lastOldCloses?: boolean }
  const sockets = new Map<object, Seen>();
  let running = true;
  let answered = 0;
  const failures: string[] = [];
  const get = () =>
    new Promise<void>((done) => {
      const req = request({ host: '127.0.0.1', port: server.port, path: '/', agent }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c) => (body += c)).on('end', () => {
          let seen = sockets.get(req.socket!);
          if (!seen) {
            const fresh: Seen = (seen = { epochs: new Set<string>() });
            sockets.set(req.socket!, fresh);
            req.socket!.once('close', () => (fresh.closedAt = Date.now()));
          }
          const epoch = body.split(' ')[0];
          seen.epochs.add(epoch);
          if (epoch === 'epoch=0') seen.lastOldCloses = res.headers.connection === 'close';
          answered++;
          done();
        });
      });
      req.on('error', (error) => {
        failures.push(error.message);
        done();
      });
      req.end();
    });
  const clients = Array.from({ length: 8 }, async () => {
    while (running) await get();
  });
  await waitFor(() => sockets.size >= 8, { what: () => `the 8 clients' connections to epoch 0 (${sockets.size} so far)` });
  const restartedAt = Date.now();
  await server.restart(1, 2);
  // Past the drain time: every connection to epoch 0 closed, and the clients on epoch 1.
  const oldOnes = () => [...sockets.values()].filter((s) => s.epochs.has('epoch=0'));
  await waitFor(() => oldOnes().every((s) => s.closedAt !== undefined) && [...sockets.values()].some((s) => s.epochs.has('epoch=1')), {
    timeoutMs: 10_000,
    what: () => `epoch 0's connections closed (${oldOnes().filter((s) => s.closedAt === undefined).length} open) and epoch 1 answering`,
  });
  running = false;
  await Promise.all(clients);

  t.diagnostic(`${answered} requests answered, ${failures.length} failed; ${sockets.size} connections`);
  assert.deepEqual(failures, [], 'every request answered');
  const old = oldOnes();
  assert.ok(old.length >= 8, 'the keep-alive connections of epoch 0');
  for (const s of old) {
    assert.equal(s.lastOldCloses, true, 'the last answer of the old generation said Connection: close');
    assert.ok(s.closedAt !== undefined && s.closedAt - restartedAt < 2000 + 1500, `closed by the server within the drain time (${s.closedAt! - restartedAt} ms)`);
  }
  assert.ok([...sockets.values()].some((s) => s.epochs.has('epoch=1')), 'the clients went on with the new generation');
});

test('keep-alive clients with think time, never retrying, through 4 restarts that change the worker count: every request answered', async (t) => {
  await assertKeepAliveCounterSeesLoss(); // control: the same counter does see requests written and not answered
  const server = await supervisedExample(t, 'keepalive-restarts', ['--drain-time-s', '1', '--parent-shutdown-time-s', '2']);
  // Between requests each client's connection is idle, as a browser's is: a server that closes idle connections abruptly races them.
  const traffic = load(t, server.port, { protocol: 'keepalive', thinkMs: { min: 5, max: 20 }, concurrency: 32, durationMs: 120_000 });
  await answered(traffic, { from: ['epoch=0'] });
  for (const [epoch, workers] of [[1, 4], [2, 1], [3, 3], [4, 2]]) {
    await server.restart(epoch, workers);
    await server.parentGone(epoch - 1);
    await answered(traffic, { from: [`epoch=${epoch}`] });
  }
  traffic.stop();
  const result = await traffic.done;
  t.diagnostic(`${result.connections} connections`);
  assertNoneLost(t, result, 2000);
  // Reused: each drain closes every connection once, and the clients open new ones.
  assert.ok(result.connections <= 32 * 6, `${result.connections} connections for ${result.attempted} requests`);
});
