// sd_notify's settings taken from the environment, and the notifier driven by
// a stand-in supervisor: what a STATUS= line becomes, bad settings, and a
// notify socket that goes away and comes back.

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { SystemdNotifier, takeSystemdEnvironment } from '../../src/supervisor/notify';
import type { LogEntry, Supervisor, SupervisorEvents } from '../../src/supervisor/supervisor';
import { has, notifyReceiver } from '../support/notify-receiver';

test('the variables are taken out of the environment; WATCHDOG_USEC counts only when WATCHDOG_PID is unset or ours', () => {
  const env = { NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42', PATH: '/bin' };
  assert.deepEqual(takeSystemdEnvironment(env, 42), { notifySocket: '/run/systemd/notify', watchdogUsec: '30000000' });
  assert.deepEqual(env, { PATH: '/bin' }, 'generations inherit none of them');
  assert.deepEqual(takeSystemdEnvironment({ NOTIFY_SOCKET: '@n', WATCHDOG_USEC: '1', WATCHDOG_PID: '41' }, 42), { notifySocket: '@n' });
  assert.deepEqual(takeSystemdEnvironment({ NOTIFY_SOCKET: '@n', WATCHDOG_USEC: '1' }, 42), { notifySocket: '@n', watchdogUsec: '1' });
  const watchdogOnly = { WATCHDOG_USEC: '1', WATCHDOG_PID: '42' };
  assert.equal(takeSystemdEnvironment(watchdogOnly, 42), undefined, 'no NOTIFY_SOCKET, nothing to notify');
  assert.deepEqual(watchdogOnly, {});
  assert.equal(takeSystemdEnvironment({ NOTIFY_SOCKET: '' }, 42), undefined);
});

function notifier(notifySocket: string, watchdogUsec?: string) {
  const supervisor = new EventEmitter<SupervisorEvents>();
  const log: LogEntry[] = [];
  new SystemdNotifier(supervisor as Supervisor, { notifySocket, ...(watchdogUsec === undefined ? {} : { watchdogUsec }) }, (e) => log.push(e));
  return { supervisor, log };
}

test('STATUS= is one line of valid UTF-8, cut to what systemd reads; a rollback is told', async (t) => {
  const receiver = await notifyReceiver(t, 'abstract');
  const { supervisor, log } = notifier(receiver.address);
  supervisor.emit('tookOver', 0);
  supervisor.emit('reloading', 1);
  supervisor.emit('reloadFailed', 1, 'it said:\nREADY=1\r\nand more');
  supervisor.emit('reloading', 1);
  supervisor.emit('reloadFailed', 1, 'é'.repeat(5000));
  supervisor.emit('rolledBack', 3, 2);
  await receiver.waitFor(has('STATUS', 'epoch 3 rolled back: epoch 2 serving again'), 'the rollback');
  const [, , injected, , long, rolledBack] = receiver.notifications;
  assert.deepEqual(injected.fields, { READY: '1', STATUS: 'reload to epoch 1 failed: it said: READY=1 and more; epoch 0 serving' });
  assert.ok(Buffer.byteLength(long.text) <= 4096, `${Buffer.byteLength(long.text)} bytes`);
  assert.match(long.fields.STATUS, /^reload to epoch 1 failed: (é)+…$/);
  assert.deepEqual(rolledBack.fields, { STATUS: 'epoch 3 rolled back: epoch 2 serving again' });
  assert.deepEqual(log, []);
});

test('a NOTIFY_SOCKET that is no Unix socket address, or a bad WATCHDOG_USEC, is a warning', () => {
  const vsock = notifier('vsock:2:1234');
  assert.deepEqual(vsock.log.map((e) => [e.level, e.message]), [
    ['warn', 'NOTIFY_SOCKET=vsock:2:1234 is neither a path nor an @abstract name: systemd is not notified (run baton as a Type=notify-reload service)'],
  ]);
  assert.equal(vsock.supervisor.listenerCount('tookOver'), 0);
  const watchdog = notifier('@baton-test-nobody', 'soon');
  assert.match(watchdog.log[0].message, /^WATCHDOG_USEC=soon is not a positive number of microseconds: no watchdog pings/);
});

test('a notify socket that is not there: one warning, whatever is sent meanwhile; one line when it is back', async (t) => {
  const name = `baton-notify-later-${process.pid}`;
  const { supervisor, log } = notifier(`@${name}`);
  supervisor.emit('tookOver', 0);
  supervisor.emit('reloading', 1);
  supervisor.emit('tookOver', 1);
  assert.deepEqual(log.map((e) => [e.level, e.message]), [
    ['warn', `sd_notify to NOTIFY_SOCKET=@${name} failed (READY=1): sendto ECONNREFUSED: connection refused; the same failure again is not logged`],
  ]);
  const receiver = await notifyReceiver(t, 'abstract', { name });
  supervisor.emit('reloading', 2);
  await receiver.waitFor(has('RELOADING'), 'RELOADING=1');
  assert.deepEqual(log.slice(1).map((e) => [e.level, e.message]), [['info', `sd_notify reaches NOTIFY_SOCKET=@${name} again`]]);
});
