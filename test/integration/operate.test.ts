// Operating a running supervisor: `baton reload` waits for the outcome of the
// epoch it starts, `baton status` shows every generation, `baton rollback`
// and a new epoch that dies after taking over hand back to the one before it
// while that one drains; the control socket lets in only --allowed-uids.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertCounterSeesLoss } from '../support/control';
import { CLI, load, uniqueSocketPath } from '../support/processes';
import { sleep } from '../support/wait';
import { assertNoneLost, baton, epochsAnswering, from, logged, pidOf, supervised, tookOver } from '../support/supervised';

interface Status {
  pid: number;
  baseId: number;
  socket: string;
  restarts: number;
  rollbacks: number;
  generations: Array<{ epoch: number; pid: number; state: string; workers: number | null; listeners: Array<{ name: string; sockets: number }>; sinceTakeOverMs: number | null; connections: number | null }>;
}

const statusOf = async (socketPath: string) => {
  const result = await baton('status', '--socket-path', socketPath, '--json');
  assert.equal(result.code, 0, result.stdout + result.stderr);
  return JSON.parse(result.stdout) as Status;
};
const states = (status: Status) => status.generations.map((g) => `${g.epoch}:${g.state}`);

test('baton reload waits for its epoch: took over (exit 0), or failed with the reason while the serving one serves on (exit 1)', async (t) => {
  await assertCounterSeesLoss(); // control: the same counter does see a loss
  const { port, next, supervisor, socketPath } = await supervised(t, 'reload', ['--drain-time-s', '1', '--parent-shutdown-time-s', '2']);
  const traffic = load(t, port, { concurrency: 16, durationMs: 60_000 });
  await sleep(200);
  const reload = () => baton('reload', '--socket-path', socketPath);

  next.set({ TEST_WORKERS: 4 });
  const up = await reload();
  assert.equal(up.code, 0, up.stdout + up.stderr);
  assert.match(up.stdout, /^epoch 1 took over in \d+ ms: 2 -> 4 workers, 2 sockets inherited, 2 created\n$/);

  next.set({ TEST_BAD_CONFIG: 'config.json: no such file' });
  const broken = await reload();
  assert.equal(broken.code, 1);
  assert.equal(broken.stdout, 'epoch 2 failed: config.json: no such file (BATON_APPLICATION); epoch 1 still serving\n');

  next.set({ TEST_COMPAT: 'incompatible-build' });
  const refused = await baton('reload', '--socket-path', socketPath, '--json');
  assert.equal(refused.code, 1);
  const outcome = JSON.parse(refused.stdout) as { ok: boolean; epoch: number; serving: number; reason: string; message: string };
  assert.deepEqual([outcome.ok, outcome.epoch, outcome.serving], [false, 3, 1]);
  assert.match(outcome.reason, /hot restart version .*\(BATON_VERSION_MISMATCH\)$/);
  assert.equal(outcome.message, `epoch 3 failed: ${outcome.reason}; epoch 1 still serving`);

  next.set({ TEST_WORKERS: 2 });
  const down = await reload();
  assert.equal(down.code, 0, down.stdout + down.stderr);
  assert.match(down.stdout, /^epoch 4 took over in \d+ ms: 4 -> 2 workers, 4 sockets inherited, 0 created\n$/); // 2 surplus, served until retired

  next.set({ TEST_WORKERS: 2, TEST_BAD_LISTEN: 'udp://' });
  const badListen = await reload();
  assert.equal(badListen.code, 1);
  assert.match(badListen.stdout, /^epoch 5 failed: listen address 'udp:\/\/' is not host:port, \[v6\]:port or udp:\/\/host:port \(BATON_INVALID_ARGUMENT\); epoch 4 still serving\n$/);
  next.set({ TEST_WORKERS: 2 });
  await sleep(300);
  traffic.stop();
  const result = await traffic.done;
  assertNoneLost(t, result);
  assert.deepEqual(epochsAnswering(result), ['epoch=0', 'epoch=1', 'epoch=4']);
  assert.ok(supervisor.lines.some(logged(/^epoch 2 failed: /)), 'the supervisor logs the same failure');
});

test('baton reload: a hung start is killed at its deadline and says so; two reloads at once each get their own epoch; rollback is refused while one starts', async (t) => {
  const { next, supervisor, socketPath } = await supervised(t, 'reload-hang', ['--child-init-timeout-s', '2', '--handshake-timeout-ms', '1000', '--drain-time-s', '1', '--parent-shutdown-time-s', '2']);
  next.set({ TEST_INIT_MS: 60_000 });
  const hung = await baton('reload', '--socket-path', socketPath);
  assert.equal(hung.code, 1);
  assert.equal(hung.stdout, 'epoch 1 failed: did not take over within 3 s: killed; epoch 0 still serving\n');
  assert.deepEqual(states(await statusOf(socketPath)), ['0:serving'], 'an epoch that exited leaves the list');

  // The first starts epoch 2, slowly; the second, asked meanwhile, is queued and reports epoch 3.
  next.set({ TEST_INIT_MS: 300 });
  const first = baton('reload', '--socket-path', socketPath);
  await sleep(150);
  const second = baton('reload', '--socket-path', socketPath);
  const rollback = await baton('rollback', '--socket-path', socketPath);
  assert.equal(rollback.code, 1);
  assert.match(rollback.stdout, /^rollback refused: epoch 2 is starting: roll back once it has taken over or failed\n$/);
  const outcomes = await Promise.all([first, second]);
  assert.deepEqual(outcomes.map((o) => o.code), [0, 0], JSON.stringify(outcomes));
  assert.match(outcomes[0].stdout, /^epoch 2 took over in \d+ ms/);
  assert.match(outcomes[1].stdout, /^epoch 3 took over in \d+ ms/);

  // A reload under way when the supervisor stops is answered too.
  next.set({ TEST_INIT_MS: 60_000 });
  const cut = baton('reload', '--socket-path', socketPath);
  await supervisor.waitFor(logged(/^epoch 4 starting/), { timeoutMs: 5000, what: 'epoch 4 starting' });
  supervisor.child.kill('SIGTERM');
  const stopped = await cut;
  assert.equal(stopped.code, 1);
  assert.match(stopped.stdout, /^epoch 4 failed: (stopped: the supervisor is stopping|.*\(BATON_STOPPED\)); /);
  assert.deepEqual(await supervisor.exited, { code: 0, signal: null });
});

test('baton status in each state, as text and --json; exit 3 when nothing runs; found by --pid-file too', async (t) => {
  const pidFile = join(tmpdir(), `baton-status-pid-${process.pid}`);
  t.after(() => rmSync(pidFile, { force: true }));
  const { next, supervisor, socketPath } = await supervised(t, 'status', ['--pid-file', pidFile, '--drain-time-s', '30', '--parent-shutdown-time-s', '60']);

  const one = await statusOf(socketPath);
  assert.equal(one.pid, supervisor.pid);
  assert.equal(one.baseId, 0);
  assert.equal(one.socket, `${socketPath}_0_supervisor`);
  assert.deepEqual(states(one), ['0:serving']);
  assert.deepEqual(one.generations[0].listeners.map((l) => l.sockets), [2]);
  assert.equal(one.generations[0].workers, 2);
  assert.equal(one.generations[0].pid, pidOf(supervisor, 0));
  const text = await baton('status', '--pid-file', pidFile);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`^supervisor pid ${supervisor.pid} \\(baton \\d+\\.\\d+\\.\\d+\\), base id 0, control socket ${socketPath}_0_supervisor\n0 restarts, 0 rollbacks\nepoch 0, pid \\d+, serving, 2 workers, tcp://127.0.0.1:\\d+ \\(2 sockets\\), took over [\\d.]+ s ago, \\d+ connections open\n$`));

  next.set({ TEST_INIT_MS: 1500 });
  supervisor.child.kill('SIGHUP');
  await supervisor.waitFor(logged(/^epoch 1 starting/), { timeoutMs: 5000, what: 'epoch 1 starting' });
  const starting = await statusOf(socketPath);
  assert.deepEqual(states(starting), ['0:serving', '1:starting']);
  assert.equal(starting.generations[1].sinceTakeOverMs, null);

  await supervisor.waitFor(tookOver(1), { timeoutMs: 15_000, what: 'epoch 1 taking over' });
  const draining = await statusOf(socketPath);
  assert.deepEqual(states(draining), ['0:draining', '1:serving']);
  assert.equal(draining.restarts, 1);
  assert.ok(draining.generations.every((g) => typeof g.connections === 'number' && typeof g.sinceTakeOverMs === 'number'), JSON.stringify(draining));

  supervisor.child.kill('SIGTERM');
  assert.deepEqual(await supervisor.exited, { code: 0, signal: null });
  for (const where of [['--socket-path', socketPath], ['--pid-file', pidFile]]) {
    const gone = await baton('status', ...where);
    assert.equal(gone.code, 3, `${where.join(' ')}: ${gone.stdout}${gone.stderr}`);
    assert.match(gone.stderr, /^baton: no (baton supervisor answers|pid file)/);
  }
  const json = await baton('status', '--socket-path', uniqueSocketPath('nobody'), '--json');
  assert.equal(json.code, 3);
  assert.equal(JSON.parse(json.stdout).code, 'BATON_NOT_RUNNING');
});

test('a foreign uid is refused at the supervisor control socket; the supervisor says so and serves on', async (t) => {
  const { supervisor, socketPath } = await supervised(t, 'foreign');
  const foreign = spawn('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, CLI, 'reload', '--socket-path', socketPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  foreign.stderr.on('data', (chunk) => (stderr += chunk));
  const code = await new Promise((done) => foreign.on('exit', done));
  assert.equal(code, 1, stderr);
  assert.match(stderr, /^baton: the supervisor refused reload: pid \d+ runs as uid 65534; this supervisor takes commands only from uid 0 \(--allowed-uids\)\n$/);
  await supervisor.waitFor(logged(/^refused a command: pid \d+ runs as uid 65534/), { timeoutMs: 5000, what: 'the refusal logged' });
  assert.ok(!supervisor.lines.some(logged(/^epoch 1 starting/)), 'no reload');
  assert.deepEqual(states(await statusOf(socketPath)), ['0:serving']);
});

test('the new epoch exits 1 s after taking over: the one before serves again, nothing queued is lost, and the next reload succeeds', async (t) => {
  await assertCounterSeesLoss(); // control: the same counter does see a loss
  const { port, next, supervisor, socketPath } = await supervised(t, 'rollback-exit', ['--drain-time-s', '30', '--parent-shutdown-time-s', '60']);
  const traffic = load(t, port, { concurrency: 16, durationMs: 60_000 });
  await sleep(200);

  next.set({ TEST_STOP_AT: 'drainingParent', TEST_CRASH_DELAY_MS: 1000 });
  const deploy = await baton('reload', '--socket-path', socketPath);
  assert.equal(deploy.code, 0, deploy.stdout);
  const rolledBack = await supervisor.waitFor(logged(/^epoch 1 exited \(code 1\) [\d.]+ s after take-over: rolled back to epoch 0$/), { timeoutMs: 10_000, what: 'the rollback' });
  const after = Number(/ ([\d.]+) s after/.exec(String(rolledBack.message))![1]);
  assert.ok(after >= 1 && after < 3, `${after} s after take-over`);
  const lost = /^about \d+ connections it had open were lost with it, unless it served them as it shut down$/;
  await supervisor.waitFor(logged(lost), { timeoutMs: 5000, what: 'what was lost with it' });
  await supervisor.waitFor(logged(/^epoch 0 accepts again: /), { timeoutMs: 5000, what: 'epoch 0 reported accepting again' });
  const rolled = await statusOf(socketPath);
  assert.deepEqual(states(rolled), ['0:serving']);
  assert.equal(rolled.rollbacks, 1);
  const late = await load(t, port, { concurrency: 16, durationMs: 800 }).done;
  assertNoneLost(t, late, 100);
  assert.deepEqual(epochsAnswering(late), ['epoch=0'], 'the older code answers again, alone');

  next.set();
  const fixed = await baton('reload', '--socket-path', socketPath);
  assert.equal(fixed.code, 0, fixed.stdout);
  assert.match(fixed.stdout, /^epoch 2 took over in \d+ ms: 2 -> 2 workers, 2 sockets inherited, 0 created\n$/);
  await sleep(300);
  traffic.stop();
  const result = await traffic.done;
  assertNoneLost(t, result);
  assert.deepEqual(epochsAnswering(result), ['epoch=0', 'epoch=1', 'epoch=2']);
});

test('three generations, the newest (after an increase) SIGKILLed: the newest still draining serves again on its own sockets, the oldest drains on; with nothing left to roll back to, exit 1', async (t) => {
  const { port, next, supervisor, socketPath } = await supervised(t, 'rollback-three', ['--drain-time-s', '30', '--parent-shutdown-time-s', '60']);
  for (const workers of [2, 4]) {
    next.set({ TEST_WORKERS: workers });
    const reload = await baton('reload', '--socket-path', socketPath);
    assert.equal(reload.code, 0, `${workers} workers: ${reload.stdout}`);
  }
  process.kill(pidOf(supervisor, 2), 'SIGKILL');
  await supervisor.waitFor(logged(/^epoch 2 exited \(signal SIGKILL\) [\d.]+ s after take-over: rolled back to epoch 1$/), { timeoutMs: 10_000, what: 'the rollback' });
  await supervisor.waitFor(logged(/^about \d+ connections it had open and 2 sockets only it held \(created at the increase\) were lost with it$/), { timeoutMs: 5000, what: 'what was lost with it' });
  await supervisor.waitFor(logged(/^epoch 1 accepts again: /), { timeoutMs: 5000, what: 'epoch 1 accepting again' });
  assert.deepEqual(states(await statusOf(socketPath)), ['0:draining', '1:serving']);
  const late = await load(t, port, { concurrency: 16, durationMs: 800 }).done;
  assertNoneLost(t, late, 100);
  assert.deepEqual(epochsAnswering(late), ['epoch=1']);

  const pid0 = pidOf(supervisor, 0);
  process.kill(pid0, 'SIGKILL');
  await supervisor.waitFor(logged(/^draining epoch 0 exited \(signal SIGKILL\)/), { timeoutMs: 5000, what: 'epoch 0 gone' });
  process.kill(pidOf(supervisor, 1), 'SIGKILL');
  assert.deepEqual(await supervisor.exited, { code: 1, signal: null });
  assert.ok(supervisor.lines.some(logged(/^epoch 1, the serving generation, exited \(signal SIGKILL\): stopping the rest/)), supervisor.dump());
});

test('baton rollback under load: the older epoch serves again and the newer drains; nothing is lost; then nothing is left to roll back to', async (t) => {
  await assertCounterSeesLoss(); // control: the same counter does see a loss
  const { port, supervisor, socketPath } = await supervised(t, 'rollback-asked', ['--drain-time-s', '30', '--parent-shutdown-time-s', '60'], { TEST_SHUTDOWN_GRACE_MS: 1000 });
  const traffic = load(t, port, { concurrency: 16, durationMs: 60_000 });
  await sleep(200);
  assert.equal((await baton('reload', '--socket-path', socketPath)).code, 0);
  await sleep(300);

  const rollback = await baton('rollback', '--socket-path', socketPath);
  assert.equal(rollback.code, 0, rollback.stdout + rollback.stderr);
  assert.match(rollback.stdout, /^rolled back from epoch 1 to epoch 0: epoch 0 accepts again \(.+\), epoch 1 drains\n$/);
  assert.ok(supervisor.lines.some(logged(/^rolled back from epoch 1 to epoch 0 \(asked\)$/)));
  assert.deepEqual(states(await statusOf(socketPath)), ['0:serving', '1:stopping']);
  await supervisor.waitFor(from(supervisor, logged(/^draining epoch 1 exited \(code 0\)/)), { timeoutMs: 10_000, what: 'epoch 1 drained and gone' });
  const late = await load(t, port, { concurrency: 16, durationMs: 800 }).done;
  assertNoneLost(t, late, 100);
  assert.deepEqual(epochsAnswering(late), ['epoch=0'], 'the older code answers again, alone');
  traffic.stop();
  assertNoneLost(t, await traffic.done);

  const again = await baton('rollback', '--socket-path', socketPath);
  assert.equal(again.code, 1);
  assert.match(again.stdout, /^rollback refused: epoch 0 serves and no generation it took over from still drains/);
});
