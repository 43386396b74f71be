// `baton run`, the supervisor, with real generations of the test fixture:
// restarts queued and coalesced, older generations draining on their own
// deadlines, a failed epoch that harms nothing, the serving one's death,
// signals, pid file and base ids.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hotRestartVersion, optionTable } from '../../src/options';
import { SUPERVISOR_NODE_FLAGS } from '../../src/supervisor/exec';
import { supervisorOptionTable } from '../../src/supervisor/options';
import { test } from 'node:test';
import { answered, CLI, load, ROOT, start, superviseFixture, uniqueSocketPath, type Line } from '../support/processes';
import { freePort, sleep, waitFor } from '../support/wait';
import { alive, assertNoneLost, epochsAnswering, from, indexOf, logged, pidOf, supervised, tookOver } from '../support/supervised';
import { assertCounterSeesLoss } from '../support/control';

test('--version and --hot-restart-version print the versions; no command or a bad command line exits 2 with the usage', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  for (const flag of ['--version', '-v']) assert.equal(run(flag).stdout, `${version}\n`, flag);
  assert.equal(run('--hot-restart-version').stdout, `${hotRestartVersion()}\n`);
  assert.equal(run('--hot-restart-version', '--compatibility', 'v2').stdout, `${hotRestartVersion('v2')}\n`);
  for (const bad of [[], ['run'], ['start', '--', 'true'], ['run', '--drain-time-s', 'soon', '--', 'true'], ['run', '--frobnicate', '--', 'true']]) {
    const result = run(...bad);
    assert.equal(result.status, 2, `${bad.join(' ')} exits 2`);
    assert.match(result.stderr, /^baton: .+\n\nusage: baton run/, bad.join(' '));
  }
});

test('a bad flag value exits 2 with a line naming the flag, before any generation starts; --help shows every flag with its default', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  const refused: [string, string, string][] = [
    ['--surplus-sockets', 'bogus', "--surplus-sockets must be 'drain' or 'close', got 'bogus'"],
    ['--drain-strategy', 'bogus', "--drain-strategy must be 'gradual' or 'immediate', got 'bogus'"],
    ['--retire-grace-ms', '9999999', '--retire-grace-ms must be an integer in 0..600000, got 9999999'],
    ['--log', 'xml', "--log must be 'text', 'json' or 'details', got 'xml'"],
    ['--kill-timeout-s', 'soon', "--kill-timeout-s must be a whole number, got 'soon'"],
    // A negative number is a value, not a forgotten one ("argument is ambiguous").
    ['--base-id', '-1', "--base-id must be a whole number, got '-1'"],
    ['--socket-path', '/nonexistent-baton-dir/baton', `the control socket directory /nonexistent-baton-dir does not exist: create it (owned by uid ${process.getuid!()}, mode 700 or 755)`],
  ];
  for (const [flag, value, message] of refused) {
    const result = run('run', flag, value, '--', process.execPath, '-e', 'console.log("started")');
    assert.equal(result.status, 2, `${flag} ${value} exits 2`);
    assert.equal(result.stderr.split('\n')[0], `baton: ${message}`);
    assert.ok(!/started|epoch 0 starting/.test(result.stdout + result.stderr), 'no generation started');
  }
  const help = run('--help').stdout;
  for (const row of [...Object.values(optionTable), ...Object.values(supervisorOptionTable)]) {
    assert.match(help, new RegExp(`^ {2}--${row.flag}\\b.*\\(default: [^)]+\\)$`, 'm'), row.flag);
  }
});

test('SIGHUPs while an epoch starts are coalesced; older generations drain on their own deadlines; nothing is lost', async (t) => {
  await assertCounterSeesLoss(); // control: the same counter does see a loss
  const { port, next, supervisor } = await supervised(t, 'coalesce', ['--drain-time-s', '2', '--parent-shutdown-time-s', '3']);
  const traffic = load(t, port, { concurrency: 16, durationMs: 60_000 });
  await answered(traffic);

  // Slow starts, so that the SIGHUPs below land while epoch 1 starts: each once the one before it was handled.
  next.set({ TEST_INIT_MS: 600 });
  supervisor.child.kill('SIGHUP');
  await supervisor.waitFor(logged(/^epoch 1 starting/), { timeoutMs: 5000, what: 'epoch 1 starting' });
  supervisor.child.kill('SIGHUP');
  await supervisor.waitFor(logged(/restart queued/), { timeoutMs: 5000, what: 'the second SIGHUP queued' });
  supervisor.child.kill('SIGHUP');
  await supervisor.waitFor(tookOver(2), { timeoutMs: 15_000, what: 'epoch 2 taking over' });
  await sleep(300); // time for an epoch 3 that should not start
  assert.equal(supervisor.lines.filter(logged(/restart queued/)).length, 1, 'three SIGHUPs: one start, one queued restart');
  assert.ok(indexOf(supervisor, logged(/^epoch 2 starting/)) > indexOf(supervisor, tookOver(1)), 'epoch 2 started only after epoch 1 took over');
  assert.equal(indexOf(supervisor, logged(/^epoch 3 starting/)), -1, 'the queued SIGHUPs became one restart');

  // Epoch 0 still drains (its shutdown is 3 s after epoch 1 took over) while epoch 1, its child, is
  // already the draining parent of epoch 2: three generations, each on its own deadlines.
  const [pid0, pid1] = [pidOf(supervisor, 0), pidOf(supervisor, 1)];
  assert.ok(alive(pid0) && alive(pid1), 'epochs 0 and 1 both still draining');
  assert.ok(supervisor.lines.some((l) => l.event === 'transition' && l.machine === 'parent' && l.to === 'draining' && l.pid === pid1), 'epoch 1 drains as a parent');
  await supervisor.waitFor(logged(/^draining epoch 0 exited \(code 0\)/), { timeoutMs: 10_000, what: 'epoch 0 exiting' });
  await supervisor.waitFor(logged(/^draining epoch 1 exited \(code 0\)/), { timeoutMs: 10_000, what: 'epoch 1 exiting' });
  assert.ok(indexOf(supervisor, logged(/^draining epoch 0 exited/)) < indexOf(supervisor, logged(/^draining epoch 1 exited/)), 'the older one first');

  traffic.stop();
  const result = await traffic.done;
  assertNoneLost(t, result);
  for (const epoch of [0, 1, 2]) assert.ok(Object.keys(result.byResponder).some((r) => r.startsWith(`epoch=${epoch} `)), `epoch ${epoch} answered`);

  supervisor.child.kill('SIGINT');
  assert.deepEqual(await supervisor.exited, { code: 0, signal: null });
});

test('a new epoch that fails before taking over leaves the old one serving; the next good one takes over', async (t) => {
  await assertCounterSeesLoss(); // control: the same counter does see a loss
  const { port, next, supervisor } = await supervised(t, 'failing', ['--drain-time-s', '1', '--parent-shutdown-time-s', '1']);
  const traffic = load(t, port, { concurrency: 16, durationMs: 60_000 });
  await answered(traffic);

  // A failed epoch's number is not used again: each attempt is the next epoch, its parent the serving epoch 0.
  const pid0 = pidOf(supervisor, 0);
  const epoch0Alone = () => from(supervisor, (l) => l.event === 'transition' && l.machine === 'parent' && l.to === 'serving' && l.pid === pid0);
  let alone = epoch0Alone();
  next.set({ TEST_CRASH_AT: 'takingSockets' });
  supervisor.child.kill('SIGHUP');
  await supervisor.waitFor(from(supervisor, logged(/^epoch 1 exited \(signal SIGKILL\) before taking over; epoch 0 keeps serving/)), { timeoutMs: 15_000, what: 'epoch 1 crashing' });
  await supervisor.waitFor(alone, { timeoutMs: 5000, what: 'epoch 0 serving alone again' });
  alone = epoch0Alone();
  next.set({ TEST_COMPAT: 'incompatible-build' });
  supervisor.child.kill('SIGHUP');
  // Both lines are looked for from now: the second can follow the first within a millisecond.
  const exiting = from(supervisor, logged(/^epoch 2 exited \(code 3\) before taking over; epoch 0 keeps serving/));
  const refused = await supervisor.waitFor(from(supervisor, logged(/^epoch 2 failed: /)), { timeoutMs: 15_000, what: 'epoch 2 refused' });
  assert.match(String(refused.message), /hot restart version .*\(BATON_VERSION_MISMATCH\)$/);
  await supervisor.waitFor(exiting, { timeoutMs: 15_000, what: 'epoch 2 exiting' });
  await supervisor.waitFor(alone, { timeoutMs: 5000, what: 'epoch 0 serving alone again' });
  await sleep(300); // the load on epoch 0 alone again

  next.set();
  supervisor.child.kill('SIGHUP');
  await supervisor.waitFor(tookOver(3), { timeoutMs: 15_000, what: 'epoch 3 taking over at the third attempt' });
  await answered(traffic, { from: ['epoch=3 worker=0'] });
  traffic.stop();
  const result = await traffic.done;
  assertNoneLost(t, result);
  assert.ok(result.byResponder['epoch=3 worker=0'] > 0, 'the good epoch 3 served');
  assert.ok(alive(pidOf(supervisor, 3)), 'the good epoch 3 serves on');
});

test('the worker threads start before the handshake and load their script while the application initializes; the log gives every step of the start-up', async (t) => {
  const { next, supervisor } = await supervised(t, 'timeline', ['--drain-time-s', '1', '--parent-shutdown-time-s', '1']);
  const initMs = 1500;
  next.set({ TEST_INIT_MS: initMs, TEST_WORKERS: 4 });
  supervisor.child.kill('SIGHUP');
  const line = await supervisor.waitFor(tookOver(1), { timeoutMs: 15_000, what: 'epoch 1 taking over' });
  const timeline = line.timeline as Record<string, number>;
  const at = (step: string) => {
    assert.equal(typeof timeline[step], 'number', `no ${step} in ${JSON.stringify(timeline)}`);
    return timeline[step];
  };
  // In the order the steps are taken; the threads start as the generation does, before it connects.
  const inOrder = ['process', 'baton', 'imported', 'generation', 'workersStarted', 'handshaking', 'initializing', 'takingSockets', 'startingWorkers', 'workersReady', 'takenOver'];
  for (let i = 1; i < inOrder.length; i++) assert.ok(at(inOrder[i - 1]) <= at(inOrder[i]), `${inOrder[i - 1]} after ${inOrder[i]}: ${JSON.stringify(timeline)}`);
  // Every thread was running while the application initialized, and not one was ready before it had its sockets.
  assert.ok(at('workersOnline') < at('takingSockets'), `threads online only after the initialize: ${JSON.stringify(timeline)}`);
  assert.ok(at('takingSockets') - at('initializing') >= initMs - 1, JSON.stringify(timeline));
  assert.match(String(line.message), /ms after the restart was asked: process \d+, baton \d+, /);
});

test('baton run --compatibility reaches every generation: a deploy with another tag is refused and the old epoch serves on; the same tag hands over', async (t) => {
  const socketPath = uniqueSocketPath('compat');
  const port = await freePort();
  const first = superviseFixture(t, ['--socket-path', socketPath, '--compatibility', 'build-a', '--drain-time-s', '1', '--parent-shutdown-time-s', '1'], { TEST_PORT: port });
  await first.waitFor(tookOver(0), { timeoutMs: 15_000, what: 'epoch 0 taking over' });
  const traffic = load(t, port, { concurrency: 16, durationMs: 60_000 });
  await sleep(200);

  // The next deploy, started as Envoy's hot restarter starts one: the next epoch on the same socket path, with another tag.
  const other = superviseFixture(t, ['--socket-path', socketPath, '--restart-epoch', '1', '--compatibility', 'build-b'], { TEST_PORT: port });
  const refused = String((await other.waitFor(logged(/^epoch 1 failed: /), { timeoutMs: 15_000, what: 'the other deploy refused' })).message);
  assert.ok(refused.includes(`hot restart version '${hotRestartVersion('build-b')}', this generation runs '${hotRestartVersion('build-a')}'`), refused);
  assert.match(refused, /\(BATON_VERSION_MISMATCH\)$/);
  await other.waitFor(logged(/^epoch 1 exited \(code \d+\) before taking over; nothing is serving/), { timeoutMs: 15_000, what: 'the other deploy exiting' });
  assert.deepEqual(await other.exited, { code: 1, signal: null });
  assert.ok(alive(pidOf(first, 0)), 'epoch 0 serves on');

  // The supervisor's own reload hands every generation the same tag.
  first.child.kill('SIGHUP');
  await first.waitFor(tookOver(1), { timeoutMs: 15_000, what: 'epoch 1 of build-a taking over' });
  await sleep(300);
  traffic.stop();
  const result = await traffic.done;
  assertNoneLost(t, result);
  assert.deepEqual(epochsAnswering(result), ['epoch=0', 'epoch=1']);
});

test('an epoch that hangs while starting is killed 5 s after --child-init-timeout-s; the restart queued meanwhile then runs', async (t) => {
  const { next, supervisor } = await supervised(t, 'hang', ['--child-init-timeout-s', '1']);
  next.set({ TEST_INIT_MS: 60_000 });
  supervisor.child.kill('SIGHUP');
  await supervisor.waitFor(logged(/^epoch 1 starting/), { timeoutMs: 5000, what: 'epoch 1 starting' });
  const pid1 = pidOf(supervisor, 1);
  await supervisor.waitFor((l) => l.event === 'transition' && l.to === 'initializing' && l.pid === pid1, { timeoutMs: 5000, what: 'epoch 1 initializing (its behaviour read)' });
  next.set();
  supervisor.child.kill('SIGHUP');
  await supervisor.waitFor(logged(/^epoch 1 did not take over within 6 s: SIGKILL/), { timeoutMs: 10_000, what: 'the start deadline' });
  await supervisor.waitFor(logged(/^epoch 1 exited \(signal SIGKILL\) before taking over; epoch 0 keeps serving/), { timeoutMs: 5000, what: 'epoch 1 killed' });
  await supervisor.waitFor(tookOver(2), { timeoutMs: 15_000, what: 'the queued restart taking over (the next epoch)' });
});

test('a command that cannot be started: the supervisor says so and exits 1', async (t) => {
  const proc = start(t, process.execPath, [CLI, 'run', '--log', 'json', '--', '/nonexistent/server']);
  assert.deepEqual(await proc.exited, { code: 1, signal: null });
  assert.ok(proc.lines.some(logged(/^epoch 0 could not start: spawn \/nonexistent\/server ENOENT/)), proc.dump());
  assert.ok(proc.lines.some(logged(/^epoch 0 exited \(never started\) before taking over; nothing is serving/)), proc.dump());
});

test('an error in the application\'s start-up is one line in the log, its stack only with --log details or in JSON; an application\'s own handler keeps it', async (t) => {
  const fixture = join(ROOT, 'test/fixtures/start-up-error.mjs');
  const stackLine = (l: Line) => typeof l.text === 'string' && /^\s+at /.test(l.text);
  // Control: without the supervisor, Node prints the stack itself (what the supervisor's log is spared).
  const alone = start(t, process.execPath, [fixture, 'throw']);
  assert.equal((await alone.exited).code, 1);
  assert.ok(alone.lines.some(stackLine), alone.dump());

  for (const how of ['throw', 'reject']) {
    const text = start(t, process.execPath, [CLI, 'run', '--', process.execPath, fixture, how]);
    assert.deepEqual(await text.exited, { code: 1, signal: null });
    const message = how === 'throw' ? /^baton error: epoch 0 failed: config\.json: unexpected token \(throw\) \(BATON_APPLICATION\)$/ : /^baton error: epoch 0 failed: the database is not there \(BATON_APPLICATION\)$/;
    assert.equal(text.lines.filter((l) => message.test(String(l.text))).length, 1, text.dump());
    assert.ok(!text.lines.some(stackLine), `no stack without --log details:\n${text.dump()}`);
    assert.ok(text.lines.some((l) => /^baton error: epoch 0 exited \(code 1\) before taking over/.test(String(l.text))), text.dump());
  }

  const details = start(t, process.execPath, [CLI, 'run', '--log', 'details', '--', process.execPath, fixture, 'throw']);
  assert.equal((await details.exited).code, 1);
  const failed = details.lines.findIndex((l) => /^baton error: epoch 0 failed: /.test(String(l.text)));
  assert.ok(failed >= 0 && details.lines[failed + 1]?.text === 'Error: config.json: unexpected token (throw)' && stackLine(details.lines[failed + 2]), details.dump());

  const json = start(t, process.execPath, [CLI, 'run', '--log', 'json', '--', process.execPath, fixture, 'reject']);
  assert.equal((await json.exited).code, 1);
  const entry = json.lines.find(logged(/^epoch 0 failed: the database is not there/));
  assert.match(String(entry?.stack), /^Error: the database is not there\n\s+at /, json.dump());
  assert.ok(!json.lines.some(stackLine), json.dump());

  const handled = start(t, process.execPath, [CLI, 'run', '--log', 'json', '--', process.execPath, fixture, 'handled']);
  assert.equal((await handled.exited).code, 1);
  assert.ok(handled.lines.some((l) => l.handled === 'config.json: unexpected token (handled)'), handled.dump());
  assert.ok(handled.lines.some(logged(/^epoch 0 exited \(code 3\) before taking over/)), handled.dump());
  assert.ok(!handled.lines.some(logged(/^epoch 0 failed/)), handled.dump());
});

test('with --rollback off, when the serving generation dies, the supervisor stops the draining ones and exits 1', async (t) => {
  const { supervisor } = await supervised(t, 'death', ['--rollback', 'off', '--drain-time-s', '30', '--parent-shutdown-time-s', '60']);
  supervisor.child.kill('SIGHUP');
  await supervisor.waitFor(tookOver(1), { timeoutMs: 15_000, what: 'epoch 1 taking over' });
  const [pid0, pid1] = [pidOf(supervisor, 0), pidOf(supervisor, 1)];
  process.kill(pid1, 'SIGKILL');
  assert.deepEqual(await supervisor.exited, { code: 1, signal: null });
  assert.ok(supervisor.lines.some(logged(/^epoch 1, the serving generation, exited \(signal SIGKILL\): stopping the rest/)), supervisor.dump());
  assert.ok(supervisor.lines.some(logged(/^epoch 0 exited \(code 0\)/)), 'the draining epoch 0 stopped gracefully');
  assert.ok(!alive(pid0));
});

test('SIGTERM stops every generation gracefully; one that ignores it is SIGKILLed after --kill-timeout-s', async (t) => {
  const { supervisor } = await supervised(t, 'kill', ['--kill-timeout-s', '1'], { TEST_IGNORE_SIGTERM: 1 });
  const pid0 = pidOf(supervisor, 0);
  supervisor.child.kill('SIGTERM');
  assert.deepEqual(await supervisor.exited, { code: 0, signal: null });
  assert.ok(supervisor.lines.some((l) => l.event === 'ignored'), 'the generation got SIGTERM');
  assert.ok(supervisor.lines.some(logged(/^epoch 0 still running 1000 ms after SIGTERM: SIGKILL/)), supervisor.dump());
  assert.ok(supervisor.lines.some(logged(/^epoch 0 exited \(signal SIGKILL\)/)));
  assert.ok(!alive(pid0));
});

test('SIGUSR1 reaches every generation as reopenLogs (not Node inspector), one still starting too; --pid-file holds the pid until exit', async (t) => {
  const pidFile = join(tmpdir(), `baton-pid-${process.pid}`);
  t.after(() => rmSync(pidFile, { force: true }));
  const { supervisor, next } = await supervised(t, 'usr1', ['--pid-file', pidFile, '--drain-time-s', '30', '--parent-shutdown-time-s', '60']);
  assert.equal(readFileSync(pidFile, 'utf8'), `${supervisor.pid}\n`);
  supervisor.child.kill('SIGHUP');
  await supervisor.waitFor(tookOver(1), { timeoutMs: 15_000, what: 'epoch 1 taking over' });
  // Epoch 2 starts slowly: the SIGUSR1 below reaches it while it initializes.
  next.set({ TEST_INIT_MS: 1500 });
  supervisor.child.kill('SIGHUP');
  await supervisor.waitFor(logged(/^epoch 2 starting/), { timeoutMs: 5000, what: 'epoch 2 starting' });
  const pid2 = pidOf(supervisor, 2);
  await supervisor.waitFor((l) => l.event === 'transition' && l.to === 'initializing' && l.pid === pid2, { timeoutMs: 5000, what: 'epoch 2 initializing' });
  supervisor.child.kill('SIGUSR1');
  for (const epoch of [0, 1]) await supervisor.waitFor((l) => l.event === 'reopenLogs' && l.epoch === epoch, { timeoutMs: 5000, what: `epoch ${epoch} reopening logs` });
  await supervisor.waitFor(tookOver(2), { timeoutMs: 15_000, what: 'epoch 2 taking over' });
  assert.ok(!supervisor.lines.some((l) => /Debugger listening/.test(String(l.text))));
  const inspector = await new Promise<string>((resolve) => connect(9229, '127.0.0.1', () => resolve('open')).on('error', (e: NodeJS.ErrnoException) => resolve(e.code!)));
  assert.equal(inspector, 'ECONNREFUSED', 'no inspector was opened');
  // As systemd does (KillMode=control-group): SIGTERM to every process, and the supervisor forwards its own.
  supervisor.child.kill('SIGTERM');
  for (const epoch of [0, 1, 2]) process.kill(pidOf(supervisor, epoch), 'SIGTERM');
  assert.deepEqual(await supervisor.exited, { code: 0, signal: null });
  for (const epoch of [0, 1, 2]) assert.ok(supervisor.lines.some(logged(new RegExp(`^epoch ${epoch} exited \\(code 0\\)`))), `a second SIGTERM does not kill epoch ${epoch}`);
  assert.equal(existsSync(pidFile), false, 'pid file removed at exit');
});

test('the supervisor is node with its own flags (no JIT, a 1 MB semi-space), exec\'d once under the same pid, the operator\'s node flags after them and none twice; its generations run without them', async (t) => {
  const port = await freePort();
  const operators = ['--stack-trace-limit=20', '--max-semi-space-size=1'];
  const supervisor = superviseFixture(t, ['--socket-path', uniqueSocketPath('flags')], { TEST_PORT: port }, operators);
  await supervisor.waitFor(tookOver(0), { timeoutMs: 15_000, what: 'epoch 0 taking over' });
  const argv = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  const added = SUPERVISOR_NODE_FLAGS.filter((flag) => !operators.includes(flag));
  assert.deepEqual(added, ['--jitless', '--no-expose-wasm']);
  assert.deepEqual(argv(supervisor.pid).slice(0, 7), [process.execPath, ...added, ...operators, CLI, 'run']);
  assert.ok(!argv(pidOf(supervisor, 0)).includes('--jitless'), 'a generation is node as its command says');
  // V8 warns on stderr about a flag --jitless turns off unless it is turned off too.
  assert.deepEqual(supervisor.lines.filter((l) => typeof l.text === 'string'), [], 'nothing but the JSON log on stderr');
});

test('--use-dynamic-base-id gives a second instance the next free base id; the same --base-id twice is refused', async (t) => {
  const socketPath = uniqueSocketPath('baseid');
  const files = [0, 1].map((i) => join(tmpdir(), `baton-base-id-${process.pid}-${i}`));
  t.after(() => files.forEach((f) => rmSync(f, { force: true })));
  const instance = async (i: number) => {
    const proc = superviseFixture(t, ['--socket-path', socketPath, '--use-dynamic-base-id', '--base-id-path', files[i]], { TEST_PORT: await freePort() });
    await proc.waitFor(tookOver(0), { timeoutMs: 15_000, what: `instance ${i} taking over` });
    return proc;
  };
  const first = await instance(0);
  const second = await instance(1);
  assert.deepEqual(files.map((f) => readFileSync(f, 'utf8')), ['0\n', '1\n']);
  assert.ok(second.lines.some(logged(/^using base id 1$/)));

  // The second instance restarts within its own base id.
  second.child.kill('SIGHUP');
  await second.waitFor(tookOver(1), { timeoutMs: 15_000, what: 'instance 1 epoch 1 taking over' });

  const clash = superviseFixture(t, ['--socket-path', socketPath, '--base-id', '0'], { TEST_PORT: await freePort() });
  assert.deepEqual(await clash.exited, { code: 1, signal: null });
  const failed = clash.lines.find(logged(/^epoch 0 failed/));
  assert.match(String(failed?.message), /base id 0 at .* is in use by a running instance; give this one another --base-id, or --use-dynamic-base-id \(BATON_BASE_ID_IN_USE\)/);
  assert.ok(clash.lines.some(logged(/nothing is serving/)));
  assert.ok(alive(pidOf(first, 0)), 'the instance that had base id 0 is untouched');
});

test('--disable-hot-restart: each epoch starts cold on new sockets, and the supervisor stops the old one', async (t) => {
  const { supervisor, port } = await supervised(t, 'cold', ['--disable-hot-restart'], { TEST_SHUTDOWN_GRACE_MS: 3000 });
  const pid0 = pidOf(supervisor, 0);
  supervisor.child.kill('SIGHUP');
  const took = await supervisor.waitFor(tookOver(1), { timeoutMs: 15_000, what: 'epoch 1 taking over' });
  assert.equal(took.inherited, 0);
  assert.equal(took.created, 2);
  // Stopped at epoch 1's take-over, epoch 0 lets go of its listeners at once, not after its drain: epoch 1's two are left.
  const listening = () => readFileSync('/proc/net/tcp', 'utf8').split('\n').filter((l) => l.includes(`:${port.toString(16).toUpperCase().padStart(4, '0')} 00000000:0000 0A`)).length;
  await waitFor(() => listening() === 2, { timeoutMs: 1000, what: () => `epoch 1's 2 listeners alone (${listening()} listening)` });
  assert.equal(listening(), 2);
  assert.ok(alive(pid0), 'epoch 0 still drains meanwhile');
  await supervisor.waitFor(logged(/^draining epoch 0 exited \(code 0\)/), { timeoutMs: 10_000, what: 'epoch 0 stopped' });
  assert.ok(!alive(pid0));
  assert.ok(!supervisor.lines.some((l) => l.event === 'transition' && l.machine === 'child' && l.to === 'handshaking'), 'no handshake at all');
});
