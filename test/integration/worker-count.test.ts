// Hot restarts that change the worker count, under TCP and UDP load counted
// connection by connection and datagram by datagram: nothing lost either
// way, the surplus sockets of a decrease gone from the kernel afterwards, and
// Envoy's way (close the surplus at once) losing what waits in them.

import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test, type TestContext } from 'node:test';
import { readFileSync } from 'node:fs';
import { answered, kernelSockets, load, settledFdCount } from '../support/processes';
import { freePort, sleep, waitFor } from '../support/wait';
import { assertNoneLost, epochsAnswering, logged, pidOf, supervised, tookOver } from '../support/supervised';

const RETIRE = ['--retire-grace-ms', '300', '--drain-time-s', '1', '--parent-shutdown-time-s', '2'];


/** Connections waiting in the accept queues of the port's TCP listeners. */
function kernelQueued(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length > 4 && f[1].endsWith(`:${hexPort}`) && f[3] === '0A')
    .reduce((sum, f) => sum + parseInt(f[4].split(':')[1], 16), 0);
}

const workersOf = (epoch: number, count: number) => Array.from({ length: count }, (_, w) => `epoch=${epoch} worker=${w}`);

const get = (port: number, path: string) =>
  new Promise<void>((done, fail) => request({ host: '127.0.0.1', port, path }, (res) => res.resume().on('end', done)).on('error', fail).end());

/** Restarts the supervised fixture with `workers` workers and waits for the epoch to take over. */
async function restartWith(setup: Awaited<ReturnType<typeof supervised>>, epoch: number, workers: number) {
  setup.next.set({ TEST_WORKERS: workers, TEST_UDP: 1 });
  setup.supervisor.child.kill('SIGHUP');
  return setup.supervisor.waitFor(tookOver(epoch), { timeoutMs: 15_000, what: `epoch ${epoch} (${workers} workers) taking over` });
}

const retiredBy = (setup: Awaited<ReturnType<typeof supervised>>, epoch: number) =>
  setup.supervisor.lines.filter((l) => l.event === 'retired' && l.epoch === epoch);

test('4 → 2 → 4 → 1 → 8 → 1 → 4 workers under TCP and UDP load: every connection and datagram answered', async (t) => {
  const setup = await supervised(t, 'counts', RETIRE, { TEST_WORKERS: 4, TEST_UDP: 1 });
  const tcp = load(t, setup.port, { concurrency: 12 });
  const udp = load(t, setup.port, { protocol: 'udp', concurrency: 6, timeoutMs: 3000 });
  const counts = [4, 2, 4, 1, 8, 1, 4];
  await answered(tcp, { from: workersOf(0, counts[0]) });
  for (let epoch = 1; epoch < counts.length; epoch++) {
    const [before, after] = [counts[epoch - 1], counts[epoch]];
    const took = await restartWith(setup, epoch, after);
    assert.equal(took.surplus, 2 * Math.max(0, before - after), `epoch ${epoch} takes the surplus of TCP and UDP`);
    assert.ok(took.tcpMigrateReq === 0 || took.tcpMigrateReq === 1, 'net.ipv4.tcp_migrate_req is reported');
    if (after < before) {
      // Retired under load, each once its queue stayed empty.
      await waitFor(() => retiredBy(setup, epoch).length === 2 * (before - after), { timeoutMs: 10_000, what: `epoch ${epoch} retiring its surplus` });
    }
    await answered(tcp, { from: workersOf(epoch, after) });
    t.diagnostic(`after epoch ${epoch}: tcp lost ${tcp.snapshot().lost} udp lost ${udp.snapshot().lost}`);
  }
  tcp.stop();
  udp.stop();
  const [tcpResult, udpResult] = await Promise.all([tcp.done, udp.done]);
  assertNoneLost(t, tcpResult, 300, setup.supervisor);
  assertNoneLost(t, udpResult, 100, setup.supervisor);
  // Every worker of every epoch answered: no group kept a program that steers away from new sockets.
  for (let epoch = 0; epoch < counts.length; epoch++) {
    for (let worker = 0; worker < counts[epoch]; worker++) {
      assert.ok(tcpResult.byResponder[`epoch=${epoch} worker=${worker}`] > 0, `epoch ${epoch} worker ${worker} answered: ${JSON.stringify(tcpResult.byResponder)}`);
    }
  }
  assert.ok(epochsAnswering(udpResult).length >= 5, `UDP answered by most epochs: ${JSON.stringify(udpResult.byResponder)}`);
  assert.ok(!setup.supervisor.lines.some(logged(/they are lost/)), 'no socket retired with anything queued');
});

test('after a decrease: only the new worker count of sockets in the kernel, in worker order, and the load spread over them', async (t) => {
  const setup = await supervised(t, 'after', RETIRE, { TEST_WORKERS: 4, TEST_UDP: 1 });
  assert.equal(kernelSockets('tcp', setup.port), 4);
  assert.equal(kernelSockets('udp', setup.port), 4);
  await restartWith(setup, 1, 2);
  await waitFor(() => retiredBy(setup, 1).length === 4, { timeoutMs: 10_000, what: 'the surplus retired' });
  assert.deepEqual(
    retiredBy(setup, 1).map((l) => `${l.listener} ${l.index}`).sort(),
    ['tcp://127.0.0.1 3', 'tcp://127.0.0.1 2', 'udp://127.0.0.1 3', 'udp://127.0.0.1 2'].map((s) => s.replace(' ', `:${setup.port} `)).sort(),
  );
  // The TCP surplus left its group at its shutdown; a UDP socket leaves with its last copy, which the parent closes once told (checked once it has exited).
  assert.equal(kernelSockets('tcp', setup.port), 2);
  await setup.supervisor.waitFor(logged(/^draining epoch 0 exited \(code 0\)/), { timeoutMs: 10_000, what: 'epoch 0 gone' });
  assert.equal(kernelSockets('udp', setup.port), 2);

  const after = load(t, setup.port, { concurrency: 8, durationMs: 1500 });
  const result = await after.done;
  assertNoneLost(t, result, 100);
  const shares = [0, 1].map((w) => (result.byResponder[`epoch=1 worker=${w}`] ?? 0) / result.answered);
  assert.ok(shares.every((s) => s > 0.2), `both workers take a share: ${JSON.stringify(result.byResponder)}`);

  // No fd of the four retired sockets is left: a generation that never had them holds as many.
  const retiredSome = await settledFdCount(pidOf(setup.supervisor, 1));
  await restartWith(setup, 2, 2);
  await setup.supervisor.waitFor(logged(/^draining epoch 1 exited \(code 0\)/), { timeoutMs: 10_000, what: 'epoch 1 gone' });
  assert.equal(await settledFdCount(pidOf(setup.supervisor, 2)), retiredSome);
});

for (const policy of ['close', 'drain'] as const) {
  test(`--surplus-sockets ${policy}: 4 → 2 workers with the surplus queues held full ${policy === 'close' ? 'loses them (Envoy)' : 'loses nothing'}`, async (t: TestContext) => {
    const setup = await supervised(t, `policy-${policy}`, [...RETIRE, '--surplus-sockets', policy], { TEST_WORKERS: 4 });
    // Every worker of epoch 0 stops accepting for a while: the connections wait in all four queues.
    await get(setup.port, '/stall?ms=2500');
    const stalled = load(t, setup.port, { concurrency: 24, maxConnections: 24, timeoutMs: 8000 });
    await waitFor(() => kernelQueued(setup.port) === 24, { what: () => `the 24 connections queued (${kernelQueued(setup.port)} so far; load ${JSON.stringify(stalled.snapshot())})` });
    await restartWith(setup, 1, 2);
    const result = await stalled.done;
    t.diagnostic(`${policy}: attempted ${result.attempted}, answered ${result.answered}, lost ${result.lost} ${JSON.stringify(result.errors)}`);
    assert.equal(result.attempted, 24);
    if (policy === 'close') {
      assert.ok(result.lost > 0, 'closing the surplus resets what waits in it, and the counter sees it');
      assert.deepEqual(Object.keys(result.errors), ['ECONNRESET']);
    } else {
      assert.equal(result.lost, 0, `lost: ${JSON.stringify(result.errors)}`);
    }
  });
}

for (const policy of ['close', 'drain'] as const) {
  test(`a listener dropped from the config, its queue held full: --surplus-sockets ${policy} ${policy === 'close' ? 'resets it (Envoy)' : 'serves it, then closes'}`, async (t) => {
    const dropped = await freePort();
    const setup = await supervised(t, `dropped-${policy}`, ['--retire-grace-ms', '300', '--drain-time-s', '3', '--parent-shutdown-time-s', '4', '--surplus-sockets', policy], {
      TEST_WORKERS: 2,
      TEST_EXTRA_PORT: dropped,
    });
    await get(setup.port, '/stall?ms=3000'); // longer than a take-over on a loaded machine: the queue is still full at the close
    const queued = load(t, dropped, { concurrency: 16, maxConnections: 16, timeoutMs: 8000 });
    await waitFor(() => kernelQueued(dropped) === 16, { what: () => `the 16 connections queued (${kernelQueued(dropped)} so far; load ${JSON.stringify(queued.snapshot())})` });
    setup.next.set({ TEST_EXTRA_PORT: '' });
    setup.supervisor.child.kill('SIGHUP');
    await setup.supervisor.waitFor(tookOver(1), { timeoutMs: 15_000, what: 'epoch 1 taking over' });
    const result = await queued.done;
    t.diagnostic(`${policy}: attempted ${result.attempted}, answered ${result.answered}, lost ${result.lost} ${JSON.stringify(result.errors)}`);
    assert.equal(result.attempted, 16);
    if (policy === 'close') {
      assert.ok(result.lost > 0, 'closing it at once resets what waits in it, and the counter sees it');
      assert.deepEqual(Object.keys(result.errors), ['ECONNRESET']);
      return;
    }
    assert.equal(result.lost, 0, `lost: ${JSON.stringify(result.errors)}`);
    assert.ok(Object.keys(result.byResponder).every((r) => r.startsWith('epoch=0 ')), 'the old generation served its own queue');
    assert.ok(setup.supervisor.lines.some(logged(new RegExp(`^epoch 0 releases tcp://127.0.0.1:${dropped}: no longer configured`))));
    // Once its queue stayed empty the parent closed it, ahead of its own exit: the port refuses now.
    await waitFor(() => kernelSockets('tcp', dropped) === 0, { timeoutMs: 5000, what: 'the dropped listener closed' });
    // Its report of the retirement reaches the supervisor's log a moment after the kernel saw the sockets go.
    await waitFor(() => retiredBy(setup, 0).length >= 2, { timeoutMs: 2000, what: "the parent's two retirements in the log" });
    assert.ok(retiredBy(setup, 0).length === 2, 'both of its sockets retired by the parent');
    const after = await load(t, dropped, { concurrency: 1, maxConnections: 1, durationMs: 1000 }).done;
    assert.deepEqual(after.errors, { ECONNREFUSED: 1 });
  });
}

test('an increase that fails while its workers start loses no datagram: new UDP sockets take no traffic before take-over', async (t) => {
  const setup = await supervised(t, 'udp-fail', RETIRE, { TEST_WORKERS: 2, TEST_UDP: 1 });
  const udp = load(t, setup.port, { protocol: 'udp', concurrency: 8, timeoutMs: 3000 });
  await answered(udp);
  // Epoch 1 binds two more UDP sockets in the group, then dies while its workers start.
  setup.next.set({ TEST_WORKERS: 4, TEST_UDP: 1, TEST_CRASH_AT: 'startingWorkers', TEST_CRASH_DELAY_MS: 60 });
  setup.supervisor.child.kill('SIGHUP');
  await setup.supervisor.waitFor(logged(/^epoch 1 exited .* before taking over; epoch 0 keeps serving/), { timeoutMs: 15_000, what: 'epoch 1 failing' });
  await sleep(300); // datagrams after the failure too
  udp.stop();
  const result = await udp.done;
  assertNoneLost(t, result, 100, setup.supervisor);
  assert.deepEqual(epochsAnswering(result), ['epoch=0']);
});

test('a UDP listener dropped, then added back by the next generation: the old one closes at its first empty queue, the new one loses nothing', async (t) => {
  // A grace far longer than the test: UDP has no handshakes in flight and does not wait for it.
  const setup = await supervised(t, 'udp-readd', ['--retire-grace-ms', '5000', '--drain-time-s', '5', '--parent-shutdown-time-s', '8'], { TEST_WORKERS: 2, TEST_UDP: 1 });
  setup.next.set({ TEST_WORKERS: 2, TEST_UDP: '' });
  setup.supervisor.child.kill('SIGHUP');
  await setup.supervisor.waitFor(tookOver(1), { timeoutMs: 15_000, what: 'epoch 1, without the UDP listener, taking over' });
  await waitFor(() => kernelSockets('udp', setup.port) === 0, { timeoutMs: 3000, what: 'epoch 0 closing the dropped UDP listener' });

  // Control: with nobody on the port, the counter sees every datagram lost.
  const gap = await load(t, setup.port, { protocol: 'udp', concurrency: 2, maxConnections: 4, timeoutMs: 500 }).done;
  assert.equal(gap.lost, 4, JSON.stringify(gap.errors));

  setup.next.set({ TEST_WORKERS: 2, TEST_UDP: 1 });
  setup.supervisor.child.kill('SIGHUP');
  await setup.supervisor.waitFor(tookOver(2), { timeoutMs: 15_000, what: 'epoch 2, with the UDP listener again, taking over' });
  const result = await load(t, setup.port, { protocol: 'udp', concurrency: 4, timeoutMs: 1000, durationMs: 1500 }).done;
  assertNoneLost(t, result, 100);
  assert.deepEqual(epochsAnswering(result), ['epoch=2']);
});
