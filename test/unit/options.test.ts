import assert from 'node:assert/strict';
import { PROTOCOL_VERSION } from '../../src/protocol/messages';
import { test } from 'node:test';
import { parseArgs } from 'node:util';
import {
  defaultOptions,
  hotRestartVersion,
  optionsFromEnv,
  optionsFromFlags,
  optionsToEnv,
  parseArgsConfig,
  resolveOptions,
} from '../../src/options';
import { parseListen, resolveListeners } from '../../src/listeners/spec';

test('defaults are Envoy\'s', () => {
  const o = resolveOptions();
  assert.equal(o.restartEpoch, 0);
  assert.equal(o.drainTimeS, 600);
  assert.equal(o.parentShutdownTimeS, 900);
  assert.equal(o.socketMode, 0o600);
  assert.equal(o.disableHotRestart, false);
  assert.equal(o.surplusSockets, 'drain', 'zero loss when workers decrease; Envoy\'s way is opt-in');
  assert.equal(o.retireGraceMs, 2000);
  assert.deepEqual(o.allowedUids, [process.getuid!()]);
  assert.deepEqual(o, { ...defaultOptions });
});

test('environment round trip carries every option the supervisor hands over', () => {
  const given = { restartEpoch: 4, baseId: 7, useDynamicBaseId: false, baseIdPath: '/tmp/x', socketPath: '/run/b', socketMode: 0o660, drainTimeS: 3, parentShutdownTimeS: 9, disableHotRestart: true, surplusSockets: 'close' as const, retireGraceMs: 250 };
  const env = optionsToEnv(given);
  assert.equal(env.BATON_SURPLUS_SOCKETS, 'close');
  assert.equal(env.BATON_SOCKET_MODE, '660');
  assert.equal(env.BATON_RESTART_EPOCH, '4');
  assert.deepEqual(optionsFromEnv(env), given);
});

test('CLI flags parse into the same options', () => {
  const { values } = parseArgs({
    args: ['--restart-epoch', '2', '--base-id', '3', '--socket-mode', '640', '--disable-hot-restart', '--drain-time-s', '5', '--surplus-sockets', 'close', '--retire-grace-ms', '100'],
    options: parseArgsConfig(),
  });
  assert.deepEqual(optionsFromFlags(values), { restartEpoch: 2, baseId: 3, socketMode: 0o640, disableHotRestart: true, drainTimeS: 5, surplusSockets: 'close', retireGraceMs: 100 });
});

test('bad values are refused with the option named', () => {
  assert.throws(() => optionsFromEnv({ BATON_RESTART_EPOCH: 'one' }), { code: 'BATON_INVALID_ARGUMENT', message: /BATON_RESTART_EPOCH must be a whole number/ });
  assert.throws(() => optionsFromEnv({ BATON_SOCKET_MODE: '999' }), /octal mode/);
  assert.throws(() => optionsFromEnv({ BATON_DISABLE_HOT_RESTART: 'yes' }), /1, 0, true or false/);
  assert.throws(() => optionsFromFlags({ 'drain-time-s': '-3' }), /--drain-time-s must be a whole number/);
  assert.throws(() => resolveOptions({ restartEpoch: -1 }), /restartEpoch must be an integer/);
  assert.throws(() => resolveOptions({ socketPath: '' }), /socketPath/);
  assert.throws(() => resolveOptions({ useDynamicBaseId: true, restartEpoch: 1 }), /first generation only/);
  assert.throws(() => resolveOptions({ compatibility: 'has space' }), /compatibility/);
  assert.throws(() => resolveOptions({ allowedUids: [] }), /allowedUids/);
  assert.throws(() => resolveOptions({ surplusSockets: 'keep' as 'drain' }), /surplusSockets must be 'drain' or 'close', got 'keep'/);
  assert.throws(() => resolveOptions({ retireGraceMs: -1 }), /retireGraceMs must be an integer/);
});

test('hot restart version names the protocol and the application tag', () => {
  assert.equal(hotRestartVersion(), `baton.protocol${PROTOCOL_VERSION}`);
  assert.equal(hotRestartVersion('app-2'), `baton.protocol${PROTOCOL_VERSION}.app-2`);
});

test('listen addresses parse and validate', () => {
  assert.deepEqual(parseListen('127.0.0.1:8080'), { protocol: 'tcp', host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseListen('[::1]:443'), { protocol: 'tcp', host: '::1', port: 443 });
  assert.deepEqual(parseListen('udp://0.0.0.0:53'), { protocol: 'udp', host: '0.0.0.0', port: 53 });
  assert.throws(() => parseListen('localhost'), /not host:port/);
  const [l] = resolveListeners([{ host: '::1', port: 80, ipv6Only: true }]);
  assert.equal(l.name, 'tcp://[::1]:80');
  assert.equal(l.family, 6);
  assert.equal(l.backlog, 511);
  assert.throws(() => resolveListeners([{ host: 'localhost', port: 80 }]), /must be an IP address/);
  assert.throws(() => resolveListeners([{ host: '127.0.0.1', port: 0 }]), /fixed port/);
  assert.throws(() => resolveListeners([{ host: '127.0.0.1', port: 80 }, { host: '127.0.0.1', port: 80 }]), /repeat/);
  // Generations match sockets by address: one address has one spelling.
  assert.equal(resolveListeners([{ host: '0:0::1', port: 80 }])[0].name, 'tcp://[::1]:80');
  assert.equal(resolveListeners([{ host: 'FE80::A', port: 80 }])[0].address.host, 'fe80::a');
  assert.throws(() => resolveListeners([{ host: '::1', port: 80 }, { host: '0::1', port: 80 }]), /repeat/);
  assert.throws(() => resolveListeners([{ host: '127.0.0.1', port: 80, backlog: 0 }]), /backlog/);
});
