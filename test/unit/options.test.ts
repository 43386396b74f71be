import assert from 'node:assert/strict';
import { PROTOCOL_VERSION } from '../../src/protocol/messages';
import { test } from 'node:test';
import { parseArgs } from 'node:util';
import {
  checkOptions,
  defaultOptions,
  flagHelp,
  flagsConfig,
  fromFlags,
  hotRestartVersion,
  optionsFromEnv,
  optionsToEnv,
  optionTable,
  resolveOptions,
  type HotRestartOptions,
} from '../../src/options';
import { supervisorOptionTable } from '../../src/supervisor/options';
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
  const given: Required<HotRestartOptions> = {
    restartEpoch: 4, parentEpoch: 2, baseId: 7, useDynamicBaseId: false, baseIdPath: '/tmp/x', socketPath: '/run/b', socketMode: 0o660, drainTimeS: 3,
    parentShutdownTimeS: 9, disableHotRestart: true, surplusSockets: 'close', retireGraceMs: 250, compatibility: 'v2.1', handshakeTimeoutMs: 700,
    requestTimeoutMs: 800, childInitTimeoutS: 30, allowedUids: [0, 1000], drainStrategy: 'immediate',
  };
  const env = optionsToEnv(given);
  assert.equal(env.BATON_SURPLUS_SOCKETS, 'close');
  assert.equal(env.BATON_SOCKET_MODE, '660');
  assert.equal(env.BATON_RESTART_EPOCH, '4');
  assert.equal(env.BATON_COMPATIBILITY, 'v2.1', 'baton run --compatibility reaches every generation');
  assert.equal(env.BATON_ALLOWED_UIDS, '0,1000');
  assert.deepEqual(Object.keys(env).length, Object.keys(optionTable).length, 'every row has its variable');
  assert.deepEqual(optionsFromEnv(env), given);
});

test('the table: every option has one row, with a flag and a variable after its name, a help line, and a default in its range', () => {
  const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  assert.deepEqual(Object.keys(optionTable).sort(), Object.keys({ ...defaultOptions, baseIdPath: undefined }).sort());
  for (const [key, row] of [...Object.entries(optionTable), ...Object.entries(supervisorOptionTable)]) {
    assert.equal(row.flag, kebab(key), key);
    if (key in optionTable) assert.equal((row as { env: string }).env, `BATON_${kebab(key).replaceAll('-', '_').toUpperCase()}`, key);
    assert.ok(row.help.length > 0 && !row.help.includes('default'), `${key}: help without its default (--help adds it)`);
    // Units: ...S is seconds, ...Ms milliseconds, and the flag ends alike.
    const unit = /Ms$/.test(key) ? 'ms' : /[a-z]S$/.test(key) ? 's' : undefined;
    assert.equal(row.type === 'integer' ? row.unit : undefined, unit, `${key}: unit`);
    if (unit) assert.ok(row.flag.endsWith(`-${unit}`), row.flag);
  }
  for (const [key, row] of Object.entries(optionTable)) assert.doesNotThrow(() => checkOptions(optionTable, { [key]: row.default }), key);
  for (const [key, row] of Object.entries(supervisorOptionTable)) assert.doesNotThrow(() => checkOptions(supervisorOptionTable, { [key]: row.default }), key);
});

test('--help lists every flag with its default', () => {
  const help = flagHelp(optionTable, supervisorOptionTable).split('\n');
  const rows = [...Object.values(optionTable), ...Object.values(supervisorOptionTable)];
  assert.equal(help.length, rows.length);
  for (const row of rows) assert.equal(help.filter((l) => l.startsWith(`  --${row.flag} `) && /\(default: [^)]+\)$/.test(l)).length, 1, row.flag);
  const line = (flag: string) => help.find((l) => l.startsWith(`  --${flag} `))!;
  assert.match(line('drain-time-s'), /^ {2}--drain-time-s <s> +seconds the old generation drains \(default: 600\)$/);
  assert.match(line('retire-grace-ms'), /<ms> .*\(default: 2000\)$/);
  assert.match(line('socket-mode'), /<mode> .*\(default: 600\)$/);
  assert.match(line('surplus-sockets'), /<drain\|close> .*\(default: drain\)$/);
  assert.match(line('disable-hot-restart'), /\(default: off\)$/);
  assert.match(line('compatibility'), /<tag> .*\(default: none\)$/);
  assert.match(line('kill-timeout-s'), /<s> .*\(default: 30\)$/);
  assert.match(line('log'), /<text\|json\|details> .*\(default: text\)$/);
});

test('CLI flags parse into the same options', () => {
  const { values } = parseArgs({
    args: ['--restart-epoch', '2', '--base-id', '3', '--socket-mode', '640', '--disable-hot-restart', '--drain-time-s', '5', '--surplus-sockets', 'close', '--retire-grace-ms', '100'],
    options: flagsConfig(optionTable),
  });
  assert.deepEqual(fromFlags(optionTable, values), { restartEpoch: 2, baseId: 3, socketMode: 0o640, disableHotRestart: true, drainTimeS: 5, surplusSockets: 'close', retireGraceMs: 100 });
});

test('bad values are refused with the option named', () => {
  assert.throws(() => optionsFromEnv({ BATON_RESTART_EPOCH: 'one' }), { code: 'BATON_INVALID_ARGUMENT', message: /BATON_RESTART_EPOCH must be a whole number/ });
  assert.throws(() => optionsFromEnv({ BATON_SOCKET_MODE: '999' }), /octal mode/);
  assert.throws(() => optionsFromEnv({ BATON_DISABLE_HOT_RESTART: 'yes' }), /1, 0, true or false/);
  assert.throws(() => fromFlags(optionTable, { 'drain-time-s': '-3' }), /--drain-time-s must be a whole number/);
  assert.throws(() => resolveOptions({ restartEpoch: -1 }), /restartEpoch must be an integer/);
  assert.throws(() => resolveOptions({ socketPath: '' }), /socketPath/);
  assert.throws(() => resolveOptions({ useDynamicBaseId: true, restartEpoch: 1 }), /first generation only/);
  assert.throws(() => resolveOptions({ compatibility: 'has space' }), /compatibility/);
  assert.throws(() => resolveOptions({ allowedUids: [] }), /allowedUids/);
  assert.throws(() => resolveOptions({ surplusSockets: 'keep' as 'drain' }), /surplusSockets must be 'drain' or 'close', got 'keep'/);
  assert.throws(() => resolveOptions({ retireGraceMs: -1 }), /retireGraceMs must be an integer/);
  assert.throws(() => resolveOptions({ drainStrategy: 'later' as 'gradual' }), /drainStrategy must be 'gradual' or 'immediate', got 'later'/);
  assert.throws(() => resolveOptions({ socketMode: 0o1000 }), /socketMode must be an octal mode in 0\.\.777, got 1000/);
  assert.throws(() => resolveOptions({ handshakeTimeoutMs: 0 }), /handshakeTimeoutMs must be an integer in 1\.\.600000, got 0/);
});

test('flag and variable values are checked as they are read, named as the operator wrote them', () => {
  const refused: [Record<string, string>, RegExp][] = [
    [{ 'surplus-sockets': 'bogus' }, /^--surplus-sockets must be 'drain' or 'close', got 'bogus'$/],
    [{ 'drain-strategy': 'bogus' }, /^--drain-strategy must be 'gradual' or 'immediate', got 'bogus'$/],
    [{ 'retire-grace-ms': '600001' }, /^--retire-grace-ms must be an integer in 0\.\.600000, got 600001$/],
    [{ 'child-init-timeout-s': '0' }, /^--child-init-timeout-s must be an integer in 1\.\.86400, got 0$/],
    [{ 'socket-mode': '1000' }, /^--socket-mode must be an octal mode in 0\.\.777, got 1000$/],
    [{ compatibility: 'has space' }, /^--compatibility must be at most 64 letters/],
    [{ 'allowed-uids': '1000,' }, /^--allowed-uids must be uids separated by commas, got '1000,'$/],
  ];
  for (const [flags, message] of refused) assert.throws(() => fromFlags(optionTable, flags), { code: 'BATON_INVALID_ARGUMENT', message }, JSON.stringify(flags));
  assert.throws(() => optionsFromEnv({ BATON_DRAIN_STRATEGY: 'bogus' }), /^BatonError: BATON_DRAIN_STRATEGY must be 'gradual' or 'immediate'/);
  assert.throws(() => fromFlags(supervisorOptionTable, { log: 'xml' }), /^BatonError: --log must be 'text', 'json' or 'details', got 'xml'$/);
  assert.throws(() => fromFlags(supervisorOptionTable, { 'kill-timeout-s': 'soon' }), /--kill-timeout-s must be a whole number, got 'soon'/);
  assert.deepEqual(fromFlags(supervisorOptionTable, { 'kill-timeout-s': '5', 'pid-file': '/run/b.pid', log: 'json' }), { killTimeoutS: 5, pidFile: '/run/b.pid', log: 'json' });
  assert.deepEqual(fromFlags(optionTable, { compatibility: 'v2', 'allowed-uids': '0,1000' }), { compatibility: 'v2', allowedUids: [0, 1000] });
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

test('a socket path leaves room in sun_path (107 bytes) for its longest name, _<base id>_<epoch> appended', () => {
  const suffix = '_0_2147483647'.length;
  assert.equal(resolveOptions({ socketPath: `/${'x'.repeat(107 - suffix - 1)}` }).socketPath.length, 107 - suffix);
  assert.throws(() => resolveOptions({ socketPath: `/${'x'.repeat(107 - suffix)}` }), {
    code: 'BATON_INVALID_ARGUMENT',
    message: new RegExp(`^socketPath is too long: /x+_0_2147483647 would be 108 bytes, over the 107 of a Unix socket name; give a shorter --socket-path$`),
  });
  assert.throws(() => resolveOptions({ socketPath: `/${'é'.repeat(48)}` }), /would be 110 bytes/, 'bytes, not characters');
  assert.throws(() => resolveOptions({ socketPath: `@${'x'.repeat(94)}`, baseId: 12 }), /would be 108 bytes/, 'with this base id');
  assert.throws(() => resolveOptions({ socketPath: `@${'x'.repeat(86)}`, useDynamicBaseId: true }), /_2147483647_2147483647 would be 108 bytes/, 'any base id');
});
