// `baton run` under systemd's notify protocol, against a stand-in for
// systemd's notify socket (systemd is not PID 1 here): every message, in
// order, for a start, a reload, failed reloads, a stop and the watchdog, to a
// path and to an abstract name; generations never see NOTIFY_SOCKET.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { test, type TestContext } from 'node:test';
import { superviseFixture, uniqueSocketPath, type Proc } from '../support/processes';
import { freePort, sleep } from '../support/wait';
import { has, notifyReceiver, type Notification, type NotifyReceiver } from '../support/notify-receiver';
import { behaviour, logged, pidOf, tookOver } from '../support/supervised';

/** The response of one request on a new connection. */
const answer = (port: number) =>
  new Promise<string>((resolve, reject) => {
    http.get({ port, host: '127.0.0.1', agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk)).on('end', () => resolve(body));
    }).on('error', reject);
  });

/** The variables of a running process. */
const environ = (pid: number) => Object.fromEntries(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));

/** Epoch 0 starts slowly (TEST_INIT_MS), so that a READY=1 sent too early would be seen. */
async function superviseNotifying(t: TestContext, receiver: NotifyReceiver, name: string, env: Record<string, string | number> = {}) {
  const port = await freePort();
  const next = behaviour(t, name);
  next.set({ TEST_INIT_MS: 800 });
  const flags = ['--socket-path', uniqueSocketPath(name), '--drain-time-s', '1', '--parent-shutdown-time-s', '1'];
  const supervisor = superviseFixture(t, flags, { TEST_PORT: port, TEST_ENV_FILE: next.path, NOTIFY_SOCKET: receiver.address, ...env });
  await supervisor.waitFor((l) => l.event === 'transition' && l.to === 'initializing', { timeoutMs: 10_000, what: 'epoch 0 initializing' });
  await sleep(300);
  assert.deepEqual(receiver.notifications, [], 'nothing is sent while epoch 0 starts');
  const ready = await receiver.waitFor(has('READY'), 'READY=1');
  // Asked the moment READY=1 arrives, epoch 0 answers: it was sent once it served, not before.
  assert.match(await answer(port), /^epoch=0 /);
  return { port, next, supervisor, ready };
}

/** The notifications from index `mark` on, once the one that `last` matches has arrived. */
async function sequence(receiver: NotifyReceiver, mark: number, last: (n: Notification) => boolean, what: string): Promise<Notification[]> {
  await receiver.waitFor(last, what, mark);
  return receiver.notifications.slice(mark);
}

const fieldsOf = (list: Notification[]) => list.map((n) => n.fields);

for (const kind of ['path', 'abstract'] as const) {
  test(`NOTIFY_SOCKET as ${kind === 'path' ? 'a path' : 'an @abstract name'}: READY=1 once epoch 0 serves; RELOADING=1 then READY=1 for a reload, a crash and a refusal; STOPPING=1`, async (t) => {
    const receiver = await notifyReceiver(t, kind);
    const { next, supervisor, ready } = await superviseNotifying(t, receiver, `notify-${kind}`);
    assert.deepEqual(ready.fields, { READY: '1', MAINPID: String(supervisor.pid), STATUS: 'epoch 0 serving' });
    await supervisor.waitFor(tookOver(0), { timeoutMs: 5000, what: 'epoch 0 taking over' });
    const pid0 = pidOf(supervisor, 0);
    for (const name of ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID']) assert.equal(environ(pid0)[name], undefined, `a generation gets no ${name}`);

    // A reload that succeeds.
    next.set();
    let mark = receiver.notifications.length;
    const hupAt = process.hrtime.bigint() / 1000n;
    supervisor.child.kill('SIGHUP');
    let got = await sequence(receiver, mark, has('READY'), 'READY=1 after the reload');
    assert.deepEqual(fieldsOf(got).map(Object.keys), [['RELOADING', 'MONOTONIC_USEC', 'STATUS'], ['READY', 'STATUS']]);
    const [reloading, reloaded] = got;
    assert.equal(reloading.fields.RELOADING, '1');
    assert.equal(reloading.fields.STATUS, 'reloading: epoch 1 starting; epoch 0 serving');
    // systemd takes a RELOADING=1 for this reload only if MONOTONIC_USEC is CLOCK_MONOTONIC, not earlier than its SIGHUP.
    const sentAt = BigInt(reloading.fields.MONOTONIC_USEC);
    const receivedAt = BigInt(reloading.monotonicUsec);
    assert.ok(sentAt >= hupAt, `MONOTONIC_USEC ${sentAt} is after the SIGHUP (${hupAt})`);
    assert.ok(sentAt <= receivedAt && receivedAt - sentAt < 1_000_000n, `MONOTONIC_USEC ${sentAt} is the receiver's CLOCK_MONOTONIC (${receivedAt}) within a second`);
    assert.equal(reloaded.fields.READY, '1');
    const took = Number(/^epoch 1 serving \(took over in (\d+) ms\)$/.exec(reloaded.fields.STATUS)?.[1]);
    assert.ok(took >= 0 && took < 10_000, reloaded.fields.STATUS);
    await supervisor.waitFor(tookOver(1), { timeoutMs: 5000, what: 'epoch 1 taking over' });

    // A reload whose epoch crashes while it starts: READY=1 all the same (the reload is over), STATUS says so.
    next.set({ TEST_CRASH_AT: 'takingSockets' });
    mark = receiver.notifications.length;
    supervisor.child.kill('SIGHUP');
    got = await sequence(receiver, mark, has('READY'), 'READY=1 after the crash');
    assert.deepEqual(fieldsOf(got).map(Object.keys), [['RELOADING', 'MONOTONIC_USEC', 'STATUS'], ['READY', 'STATUS']]);
    assert.equal(got[0].fields.STATUS, 'reloading: epoch 2 starting; epoch 1 serving');
    assert.equal(got[1].fields.STATUS, 'reload to epoch 2 failed: exited (signal SIGKILL) before taking over; epoch 1 serving');

    // A reload that is refused gives the generation's own reason.
    next.set({ TEST_COMPAT: 'incompatible-build' });
    mark = receiver.notifications.length;
    supervisor.child.kill('SIGHUP');
    got = await sequence(receiver, mark, has('READY'), 'READY=1 after the refusal');
    assert.deepEqual(fieldsOf(got).map(Object.keys), [['RELOADING', 'MONOTONIC_USEC', 'STATUS'], ['READY', 'STATUS']]);
    assert.equal(got[0].fields.STATUS, 'reloading: epoch 3 starting; epoch 1 serving');
    assert.match(got[1].fields.STATUS, /^reload to epoch 3 failed: .*hot restart version .*\(BATON_VERSION_MISMATCH\); epoch 1 serving$/);
    await supervisor.waitFor(logged(/^epoch 3 exited \(code 3\) before taking over/), { timeoutMs: 5000, what: 'epoch 3 exiting' });

    // Stop.
    mark = receiver.notifications.length;
    supervisor.child.kill('SIGTERM');
    assert.deepEqual(await supervisor.exited, { code: 0, signal: null });
    got = await sequence(receiver, mark, has('STOPPING'), 'STOPPING=1');
    assert.deepEqual(fieldsOf(got), [{ STOPPING: '1', STATUS: 'stopping: every generation drains, then baton exits' }]);
    await sleep(200);
    assert.equal(receiver.notifications.length, mark + 1, 'nothing after STOPPING=1');
    assert.deepEqual([...new Set(receiver.notifications.map((n) => n.pid))], [supervisor.pid], 'every message came from the supervisor, none from a generation');
    assert.ok(!supervisor.lines.some(logged(/sd_notify/)), 'no warning');
  });
}

test('a SIGHUP while an epoch starts: its RELOADING=1 comes when its own epoch starts, stamped after that SIGHUP, so systemd waits for it', async (t) => {
  const receiver = await notifyReceiver(t, 'abstract');
  const { next, supervisor } = await superviseNotifying(t, receiver, 'notify-queued');
  next.set({ TEST_INIT_MS: 600 });
  const mark = receiver.notifications.length;
  supervisor.child.kill('SIGHUP');
  await receiver.waitFor(has('RELOADING'), 'RELOADING=1 for epoch 1', mark);
  const secondHupAt = process.hrtime.bigint() / 1000n;
  supervisor.child.kill('SIGHUP');
  const got = await sequence(receiver, mark, (n) => /^epoch 2 serving/.test(n.fields.STATUS), 'epoch 2 serving');
  const statuses = got.map((n) => n.fields.STATUS.replace(/ \(took over in \d+ ms\)$/, ''));
  assert.deepEqual(statuses, ['reloading: epoch 1 starting; epoch 0 serving', 'epoch 1 serving', 'reloading: epoch 2 starting; epoch 1 serving', 'epoch 2 serving']);
  assert.deepEqual(got.map((n) => Object.keys(n.fields)[0]), ['RELOADING', 'READY', 'RELOADING', 'READY']);
  // systemd, in reload-signal since the second SIGHUP, ignores the READY=1 for epoch 1 and takes this RELOADING=1.
  assert.ok(BigInt(got[2].fields.MONOTONIC_USEC) >= secondHupAt, 'the second RELOADING=1 is stamped after the second SIGHUP');
  await stop(supervisor);
});

/** The arrival times (ms, by the receiver's clock) of the WATCHDOG=1 pings among `list`. */
const pings = (list: Notification[]) => list.filter(has('WATCHDOG', '1')).map((n) => n.monotonicUsec / 1000);

test('WATCHDOG_USEC=200000: WATCHDOG=1 about every 100 ms from READY=1 to STOPPING=1, through a slow reload', async (t) => {
  const receiver = await notifyReceiver(t, 'abstract');
  const { next, supervisor, ready } = await superviseNotifying(t, receiver, 'watchdog', { WATCHDOG_USEC: 200_000 });
  assert.deepEqual(receiver.notifications[0], ready, 'no ping before READY=1');
  await sleep(1000);
  const during = pings(receiver.notifications);
  assert.ok(during.length >= 6 && during.length <= 12, `${during.length} pings in about 1 s`);
  const gaps = during.slice(1).map((at, i) => at - during[i]).sort((a, b) => a - b);
  const median = gaps[gaps.length >> 1];
  assert.ok(median >= 80 && median <= 130, `the median gap between pings is ${median} ms`);
  assert.ok(gaps[gaps.length - 1] < 200, `no gap reaches WATCHDOG_USEC: ${gaps}`);
  assert.equal(environ(pidOf(supervisor, 0)).WATCHDOG_USEC, undefined);

  // A slow reload: the pings go on while epoch 1 starts.
  // Its drain lasts a second when it stops (below).
  next.set({ TEST_INIT_MS: 600, TEST_SHUTDOWN_GRACE_MS: 1000 });
  let mark = receiver.notifications.length;
  supervisor.child.kill('SIGHUP');
  const got = await sequence(receiver, mark, has('READY'), 'READY=1 after the reload');
  const reload = got.slice(got.findIndex(has('RELOADING')));
  assert.deepEqual(reload.filter((n) => !has('WATCHDOG')(n)).map((n) => Object.keys(n.fields)[0]), ['RELOADING', 'READY']);
  assert.ok(pings(reload).length >= 4, `${pings(reload).length} pings between RELOADING=1 and READY=1, over 600 ms apart`);

  // Stopping, while epoch 1 drains for a second: no ping after STOPPING=1.
  mark = receiver.notifications.length;
  supervisor.child.kill('SIGTERM');
  assert.deepEqual(await supervisor.exited, { code: 0, signal: null });
  const stop = await sequence(receiver, mark, has('STOPPING'), 'STOPPING=1');
  const stoppedAt = stop.findIndex(has('STOPPING'));
  await sleep(300);
  assert.deepEqual(receiver.notifications.slice(mark + stoppedAt + 1), [], 'no ping after STOPPING=1');
});

test('WATCHDOG_PID naming another process: no pings; no NOTIFY_SOCKET reachable: a warning, and the server serves on', async (t) => {
  const receiver = await notifyReceiver(t, 'path');
  const { supervisor } = await superviseNotifying(t, receiver, 'watchdog-pid', { WATCHDOG_USEC: 200_000, WATCHDOG_PID: 1 });
  await sleep(500);
  assert.deepEqual(pings(receiver.notifications), [], 'the watchdog is for pid 1');
  await stop(supervisor);

  // Nobody listens at NOTIFY_SOCKET: each failure is logged once, never fatal.
  const port = await freePort();
  const lone = superviseFixture(t, ['--socket-path', uniqueSocketPath('notify-gone')], { TEST_PORT: port, NOTIFY_SOCKET: '@baton-test-nobody-listens', WATCHDOG_USEC: 100_000 });
  await lone.waitFor(tookOver(0), { timeoutMs: 15_000, what: 'epoch 0 taking over' });
  await sleep(500);
  const warnings = lone.lines.filter(logged(/^sd_notify to NOTIFY_SOCKET=@baton-test-nobody-listens failed/));
  assert.equal(warnings.length, 1, lone.dump());
  assert.match(String(warnings[0].message), /failed \(READY=1\): sendto ECONNREFUSED: connection refused; the same failure again is not logged$/);
  assert.equal(warnings[0].level, 'warn');
  assert.match(await answer(port), /^epoch=0 /);
  await stop(lone);
});

async function stop(supervisor: Proc): Promise<void> {
  supervisor.child.kill('SIGTERM');
  assert.deepEqual(await supervisor.exited, { code: 0, signal: null });
}
