// `baton upgrade` (and SIGUSR2) between two builds of the package, the
// supervisor run through a `current` symlink that the test switches from A
// to B, as `npm install` of a new version in place does: under load nothing
// is lost, the pid and every generation stay, the next reload runs B; a new
// build that does not load or cannot read the state leaves A running; a
// generation that exits while the supervisor is between images is reaped
// and reported by the new one; the supervisor's fds are the same after.

import assert from 'node:assert/strict';
import { appendFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { assertCounterSeesLoss } from '../support/control';
import { has, notifyReceiver } from '../support/notify-receiver';
import { load, ROOT, start, uniqueSocketPath, type Proc } from '../support/processes';
import { assertNoneLost, baton, behaviour, from, logged, pidOf, tookOver } from '../support/supervised';
import { freePort, sleep, waitFor } from '../support/wait';
import { packageBuilds } from '../../tools/builds';
import { SUPERVISOR_NODE_FLAGS } from '../../src/supervisor/exec';

const A = '0.1.0';
const B = '0.1.0-upgraded';

/** Builds A and B of this package, and `current` pointing at A; removed when the test ends. */
function builds(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'baton-upgrade-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { roots, current, use } = packageBuilds(ROOT, dir, [A, B]);
  return { a: roots[A], b: roots[B], dir, current, use };
}

/** The supervisor of build `current`, its generations the fixture of build `current`: both run what the symlink names when they start. */
async function superviseCurrent(t: TestContext, current: string, name: string, env: Record<string, string | number> = {}, args: string[] = []) {
  const port = await freePort();
  const next = behaviour(t, name);
  next.set();
  const socketPath = uniqueSocketPath(name);
  const cli = join(current, 'dist/src/supervisor/cli.js');
  const flags = ['--socket-path', socketPath, '--drain-time-s', '1', '--parent-shutdown-time-s', '120'];
  const supervisor = start(t, process.execPath, [cli, 'run', '--log', 'json', ...flags, '--', process.execPath, join(current, 'test/fixtures/generation.mjs'), ...args], {
    env: { ...process.env, TEST_PORT: String(port), TEST_ENV_FILE: next.path, ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)])) },
  });
  await supervisor.waitFor(tookOver(0), { timeoutMs: 15_000, what: 'epoch 0 taking over' });
  const ask = (...args: string[]) => baton(...args, '--socket-path', socketPath);
  const status = async () => {
    const result = await ask('status', '--json');
    assert.equal(result.code, 0, result.stdout + result.stderr);
    return JSON.parse(result.stdout) as { pid: number; batonVersion: string; restarts: number; generations: Array<{ epoch: number; pid: number; state: string }> };
  };
  const reload = async (epoch: number) => {
    const result = await ask('reload');
    assert.equal(result.code, 0, result.stdout + result.stderr);
    await supervisor.waitFor(tookOver(epoch), { what: `epoch ${epoch} taking over` });
  };
  return { port, supervisor, ask, status, reload };
}

/** The baton version a generation's fixture runs (its first line). */
const versionOf = (supervisor: Proc, pid: number) => supervisor.lines.find((l) => l.event === 'started' && l.pid === pid)?.version;

/** Its fds as kinds (the inode of a socket kept, Node's own pipes and eventfds counted by kind), and its sockets' inodes. */
function fdsOf(pid: number) {
  const targets = readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return 'closed meanwhile';
    }
  });
  return {
    sockets: targets.filter((t) => t.startsWith('socket:')).sort(),
    kinds: targets.map((t) => (t.startsWith('socket:') ? t : t.replace(/\[\d+\]$/, ''))).sort(),
  };
}

/** The fds of `pid` without close-on-exec (O_CLOEXEC in /proc/<pid>/fdinfo). */
const keptOnExec = (pid: number) =>
  readdirSync(`/proc/${pid}/fd`).filter((fd) => (parseInt(/flags:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))![1], 8) & 0o2000000) === 0);

test('baton upgrade under load: the same pid, every generation kept, 0 lost, the new version in status, and the next reload, rollback and upgrade work', async (t) => {
  await assertCounterSeesLoss(); // control: the same counter does see a loss
  const { a, b, current, use } = builds(t);
  const { port, supervisor, ask, status, reload } = await superviseCurrent(t, current, 'upgrade');
  await reload(1); // epoch 0 drains (for 120 s): two generations cross the exec
  const before = await status();
  assert.equal(before.batonVersion, A);
  assert.deepEqual(before.generations.map((g) => `${g.epoch}:${g.state}`), ['0:draining', '1:serving']);
  const fdsBefore = fdsOf(supervisor.pid);
  const traffic = load(t, port, { concurrency: 16, durationMs: 60_000 });
  await sleep(300);

  use(b);
  const upgraded = await ask('upgrade');
  assert.equal(upgraded.code, 0, upgraded.stdout + upgraded.stderr);
  assert.equal(upgraded.stdout, `upgraded baton ${A} -> ${B} in place (pid ${supervisor.pid}), 2 generations kept\n`);
  assert.ok(supervisor.lines.some(logged(new RegExp(`^upgraded baton ${A} -> ${B} in place`))), 'the new image logs it');

  const after = await status();
  assert.equal(after.pid, supervisor.pid);
  assert.equal(after.batonVersion, B);
  const kept = (s: typeof before) => s.generations.map((g) => `${g.epoch}:${g.pid}:${g.state}`);
  assert.deepEqual(kept(after), kept(before));
  // Node's own pipes, eventfds and epolls are new ones; one pidfd per adopted generation is the only fd more.
  const fdsAfter = fdsOf(supervisor.pid);
  assert.deepEqual(fdsAfter.sockets, fdsBefore.sockets, 'the control socket (and nothing else) is the same socket');
  assert.deepEqual(fdsAfter.kinds.filter((k) => k !== 'anon_inode:[pidfd]'), fdsBefore.kinds);
  assert.equal(fdsAfter.kinds.filter((k) => k === 'anon_inode:[pidfd]').length, 2);

  // The next reload runs build B; rollback and status work on what the new image adopted.
  await reload(2);
  assert.equal(versionOf(supervisor, pidOf(supervisor, 2)), B);
  assert.equal(versionOf(supervisor, pidOf(supervisor, 0)), A);
  const rolledBack = await ask('rollback');
  assert.equal(rolledBack.code, 0, rolledBack.stdout + rolledBack.stderr);
  assert.match(rolledBack.stdout, /^rolled back from epoch 2 to epoch 1/);
  await supervisor.waitFor(logged(/^epoch 2 exited|^draining epoch 2 exited/), { what: 'epoch 2 gone' });

  // And back to A: an upgrade from an upgraded image.
  use(a);
  const back = await ask('upgrade');
  assert.equal(back.code, 0, back.stdout + back.stderr);
  assert.match(back.stdout, new RegExp(`^upgraded baton ${B} -> ${A} in place \\(pid ${supervisor.pid}\\), 2 generations kept\\n$`));
  await sleep(300);
  traffic.stop();
  assertNoneLost(t, await traffic.done);

  const fdsEnd = fdsOf(supervisor.pid);
  assert.deepEqual(fdsEnd.kinds, fdsAfter.kinds, 'no fd more after a reload, a rollback and a second upgrade');
  supervisor.kill('SIGTERM');
  assert.deepEqual(await supervisor.exited, { code: 0, signal: null });
});

test('an upgrade that cannot happen (the new build is missing, does not load, or cannot read the state) exits 1 with why, and the old image serves on', async (t) => {
  const { b, dir, current, use } = builds(t);
  const { port, supervisor, ask, status } = await superviseCurrent(t, current, 'upgrade-refused');
  const before = await status();
  const traffic = load(t, port, { concurrency: 16, durationMs: 60_000 });
  await sleep(300);
  const refused = async (pattern: RegExp) => {
    const result = await ask('upgrade');
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stdout, pattern);
    const now = await status();
    assert.deepEqual([now.pid, now.batonVersion, now.generations.map((g) => `${g.epoch}:${g.pid}:${g.state}`)], [before.pid, A, before.generations.map((g) => `${g.epoch}:${g.pid}:${g.state}`)]);
  };

  use(join(dir, 'nothing-here'));
  await refused(/^upgrade refused: the new code at .*\/current\/dist\/src\/supervisor\/cli\.js does not load: Error: Cannot find module .*; baton 0\.1\.0 runs on\n$/);

  use(b);
  appendFileSync(join(b, 'dist/src/supervisor/control.js'), '\nthis is not javascript(\n');
  await refused(/^upgrade refused: the new code at .* does not load: SyntaxError: .*control\.js:\d+\); baton 0\.1\.0 runs on\n$/);

  cpSync(join(ROOT, 'dist/src/supervisor/control.js'), join(b, 'dist/src/supervisor/control.js'));
  const codec = join(b, 'dist/src/supervisor/upgrade-state.js');
  writeFileSync(codec, readFileSync(codec, 'utf8').replace('const readers = { 1: version1 };', 'const readers = { 2: version1 };').replace('READABLE_STATE_VERSIONS = [1]', 'READABLE_STATE_VERSIONS = [2]'));
  await refused(/^upgrade refused: the new code at .* cannot take over this supervisor: upgrade state version 1 cannot be read by this baton, which reads version 2: .*; baton 0\.1\.0 runs on\n$/);

  // SIGUSR2 the same: the refusal is in the log.
  const mark = from(supervisor, logged(/^upgrade refused: .*state version 1 cannot be read/));
  supervisor.child.kill('SIGUSR2');
  await supervisor.waitFor(mark, { what: 'the refusal of SIGUSR2' });
  await sleep(300);
  traffic.stop();
  assertNoneLost(t, await traffic.done);
  assert.equal((await status()).batonVersion, A);
});

test('an execve that fails (the state over the kernel\'s 128 KiB for one variable) leaves the old image running with every fd it had, and says why', async (t) => {
  const { b, current, use } = builds(t);
  // Arguments the generation ignores, too many for the state in one environment variable (MAX_ARG_STRLEN).
  const { port, supervisor, ask, status, reload } = await superviseCurrent(t, current, 'upgrade-e2big', {}, Array.from({ length: 70 }, () => 'x'.repeat(2000)));
  const before = await status();
  const fds = fdsOf(supervisor.pid);
  const kept = keptOnExec(supervisor.pid);
  const traffic = load(t, port, { concurrency: 16, durationMs: 60_000 });
  await sleep(300);
  use(b);
  const failed = await ask('upgrade');
  assert.equal(failed.code, 1, failed.stdout + failed.stderr);
  assert.equal(failed.stdout, `upgrade failed: execve E2BIG: argument list too long; baton ${A} runs on\n`);
  const after = await status();
  assert.deepEqual([after.pid, after.batonVersion, after.generations.map((g) => g.pid)], [before.pid, A, before.generations.map((g) => g.pid)]);
  assert.deepEqual(fdsOf(supervisor.pid), fds, 'the same fds, none left without close-on-exec');
  assert.deepEqual(keptOnExec(supervisor.pid), kept, 'each fd has its close-on-exec flag back');
  await reload(1);
  await sleep(300);
  traffic.stop();
  assertNoneLost(t, await traffic.done);
});

test('an upgrade from a build whose supervisor ran without its node flags: the new image execs once more to get them, same pid, every generation and the control socket kept', async (t) => {
  const { a, b, current, use } = builds(t);
  const exec = join(a, 'dist/src/supervisor/exec.js');
  const older = readFileSync(exec, 'utf8').replace(/SUPERVISOR_NODE_FLAGS = \[[^\]]*\]/, 'SUPERVISOR_NODE_FLAGS = []');
  assert.match(older, /SUPERVISOR_NODE_FLAGS = \[\]/);
  writeFileSync(exec, older);
  const { supervisor, status, reload, ask } = await superviseCurrent(t, current, 'upgrade-flags');
  await reload(1);
  const cli = join(current, 'dist/src/supervisor/cli.js');
  const nodeFlags = () => {
    const argv = readFileSync(`/proc/${supervisor.pid}/cmdline`, 'utf8').split('\0');
    return argv.slice(1, argv.indexOf(cli));
  };
  assert.deepEqual(nodeFlags(), [], 'build A runs node as it was started');
  const before = await status();

  use(b);
  const upgraded = await ask('upgrade');
  assert.equal(upgraded.code, 0, upgraded.stdout + upgraded.stderr);
  const after = await status();
  assert.deepEqual([after.pid, after.batonVersion, after.generations.map((g) => `${g.epoch}:${g.pid}:${g.state}`)], [before.pid, B, before.generations.map((g) => `${g.epoch}:${g.pid}:${g.state}`)]);
  assert.deepEqual(nodeFlags(), SUPERVISOR_NODE_FLAGS);
  assert.deepEqual(supervisor.lines.filter((l) => typeof l.text === 'string' || /node flags/.test(String(l.message))), [], 'no warning, nothing but the JSON log on stderr');
  await reload(2);
});

test('a generation that exits while the supervisor is between images is reaped and reported by the new image; SIGUSR2 upgrades; systemd hears RELOADING=1 then READY=1', async (t) => {
  const receiver = await notifyReceiver(t, 'abstract');
  const { b, current, use } = builds(t);
  const { supervisor, status, reload } = await superviseCurrent(t, current, 'upgrade-between', { NOTIFY_SOCKET: receiver.address });
  await reload(1);
  const draining = pidOf(supervisor, 0);
  await receiver.waitFor((n) => /^epoch 1 serving/.test(n.fields.STATUS ?? ''), 'epoch 1 serving');
  const mark = receiver.notifications.length;

  use(b);
  supervisor.child.kill('SIGUSR2');
  // The old image logs this just before execve: stopped there (or in the new image's start-up), the supervisor cannot reap epoch 0 as it dies.
  await supervisor.waitFor(logged(/^upgrading baton/), { what: 'the exec' });
  supervisor.child.kill('SIGSTOP');
  process.kill(draining, 'SIGKILL');
  await waitFor(() => /^State:\s+Z/m.test(readFileSync(`/proc/${draining}/status`, 'utf8')), { what: `epoch 0 (pid ${draining}) a zombie` });
  supervisor.child.kill('SIGCONT');

  await supervisor.waitFor(logged(new RegExp(`^upgraded baton ${A} -> ${B} in place \\(pid ${supervisor.pid}\\), 2 generations kept$`)), { what: 'the new image' });
  await supervisor.waitFor(logged(/^draining epoch 0 exited \(signal SIGKILL\)$/), { what: 'epoch 0 reported' });
  await waitFor(() => !existsSync(`/proc/${draining}`), { what: `epoch 0 (pid ${draining}) reaped` });
  const after = await status();
  assert.deepEqual([after.pid, after.batonVersion, after.generations.map((g) => `${g.epoch}:${g.state}`)], [supervisor.pid, B, ['1:serving']]);

  await receiver.waitFor(has('READY'), 'READY=1 from the new image', mark);
  const since = receiver.notifications.slice(mark);
  const sent = since.slice(0, since.findIndex(has('READY')) + 1);
  assert.deepEqual(sent.map((n) => Object.keys(n.fields)), [['RELOADING', 'MONOTONIC_USEC', 'STATUS'], ['READY', 'STATUS']]);
  assert.equal(sent[0].fields.STATUS, `upgrading baton ${A} -> ${B}; epoch 1 serving`);
  assert.equal(sent[1].fields.STATUS, `upgraded baton ${A} -> ${B} in place (pid ${supervisor.pid}), 2 generations kept; epoch 1 serving`);
  assert.deepEqual([...new Set(receiver.notifications.map((n) => n.pid))], [supervisor.pid]);

  // systemd's reload still works from the new image: a reload is RELOADING=1 then READY=1.
  await reload(2);
  await receiver.waitFor((n) => /^epoch 2 serving/.test(n.fields.STATUS ?? ''), 'epoch 2 serving');
  assert.equal(versionOf(supervisor, pidOf(supervisor, 2)), B);
});
