// What another local user (uid 65534, run as such when the suite runs as
// root) can do to baton's files and names, each attack first shown to work
// on the unsafe way (a chmod by path, a writeFileSync, a directory someone
// else can write in, a scan of names), then shown to fail against baton's.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';
import * as native from '../../src/binding';
import { controlAddress, freeBaseId, listeningUnixSockets, liveEpochs } from '../../src/channel/address';
import { ControlServer } from '../../src/channel/server';
import { defaultSocketDirectory, writeFileReplacing } from '../../src/files';
import { defaultOptions, flagHelp, optionTable } from '../../src/options';
import { Generation } from '../../src/restart/generation';
import { CLI, ROOT, uniqueSocketPath } from '../support/processes';

const NOBODY = 65534;
const BINDING = JSON.stringify(join(ROOT, 'dist/src/binding.js'));
const asRoot = { skip: process.getuid!() !== 0 ? 'needs root to act as another uid' : false };

/** Runs `script` (with fs, path and the addon as native in scope) as uid 65534; its exceptions fail the test. */
function asNobody(script: string): string {
  const run = spawnSync(process.execPath, ['-e', `const fs = require('node:fs'); const native = require(${BINDING}); ${script}`], {
    uid: NOBODY,
    gid: NOBODY,
    encoding: 'utf8',
    timeout: 10_000,
  });
  assert.equal(run.status, 0, `as uid ${NOBODY}: ${run.stderr}`);
  return run.stdout.trim();
}

/** A directory of ours with this mode (777: anyone may rename in it; not sticky). */
function directory(t: TestContext, mode: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-another-user-'));
  chmodSync(dir, mode);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A file only root may read or write, in a directory only root may enter. */
function secretFile(t: TestContext): string {
  const path = join(directory(t, 0o700), 'secret');
  writeFileSync(path, 'secret\n', { mode: 0o600 });
  return path;
}

const modeOf = (path: string) => statSync(path).mode & 0o7777;
const q = JSON.stringify;

/** Runs with these variables set (undefined: unset), restored when the test ends. */
function withEnv(t: TestContext, values: Record<string, string | undefined>): void {
  const saved = Object.fromEntries(Object.keys(values).map((key) => [key, process.env[key]]));
  const set = (entries: Record<string, string | undefined>) => {
    for (const [key, value] of Object.entries(entries)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  };
  set(values);
  t.after(() => set(saved));
}

test('a socket file swapped for a symlink: chmod(path) changes its target; baton sets the mode at bind() and refuses such a directory', asRoot, (t) => {
  const open = directory(t, 0o777);
  const secret = secretFile(t);
  const path = join(open, 'ctl_0_0');

  // The unsafe way: bind, then chmod by path, another user's swap in between.
  const fd = native.unixListen(path, false, 0o600, 4);
  t.after(() => native.close(fd));
  asNobody(`fs.renameSync(${q(path)}, ${q(`${path}.moved`)}); fs.symlinkSync(${q(secret)}, ${q(path)});`);
  chmodSync(path, 0o666);
  assert.equal(modeOf(secret), 0o666, 'the control: chmod(path) followed the symlink to root\'s file');
  chmodSync(secret, 0o600);

  // baton's way: a directory where another user can rename is refused before anything is bound...
  assert.throws(() => ControlServer.listen(controlAddress(join(open, 'ctl'), 0, 1), 0o600), {
    code: 'BATON_UNSAFE_PATH',
    message: `the control socket directory ${open} (owner uid 0, mode 777) could be changed by another user, who could then replace baton's socket: ` +
      'use a directory that only uid 0 (or root) can write in, mode 755 or 700; or one with the sticky bit, owned by root or uid 0 (such as /tmp)',
  });
  // ...bind() never follows a symlink at the name...
  assert.throws(() => native.unixListen(path, false, 0o666, 4), { code: 'EADDRINUSE' });
  assert.equal(modeOf(secret), 0o600);
  // ...and the socket has its mode from bind() on, beyond the umask too (022 here): nothing is chmodded by path.
  const own = directory(t, 0o700);
  for (const mode of [0o600, 0o640, 0o660, 0o666]) {
    const listener = native.unixListen(join(own, `s${mode.toString(8)}`), false, mode, 4);
    native.close(listener);
    assert.equal(modeOf(join(own, `s${mode.toString(8)}`)), mode);
  }
});

test('a symlink planted at the pid file or base-id path: writeFileSync writes through it; baton replaces it', asRoot, async (t) => {
  const open = directory(t, 0o777);
  const secret = secretFile(t);
  const plant = (name: string) => {
    asNobody(`fs.symlinkSync(${q(secret)}, ${q(join(open, name))});`);
    return join(open, name);
  };
  const assertReplaced = (path: string, text: string) => {
    assert.equal(readFileSync(secret, 'utf8'), 'secret\n', `${path}: root's file untouched`);
    const stats = lstatSync(path);
    assert.ok(stats.isFile(), `${path} is a file of its own`);
    assert.deepEqual([stats.uid, stats.mode & 0o777, readFileSync(path, 'utf8')], [0, 0o644, text]);
  };

  writeFileSync(plant('unsafe'), '1\n');
  assert.equal(readFileSync(secret, 'utf8'), '1\n', 'the control: writeFileSync wrote root\'s file through the link');
  writeFileSync(secret, 'secret\n');

  writeFileReplacing(plant('pid'), '123\n');
  assertReplaced(join(open, 'pid'), '123\n');

  const generation = await Generation.start({ env: false, exitOnTerminate: false, socketPath: uniqueSocketPath('base-id'), baseIdPath: plant('base-id') });
  await generation.shutdown('test', 0);
  assertReplaced(join(open, 'base-id'), '0\n');

  // The supervisor's pid file: written at start (its generation exits at once), removed at the end.
  const pidFile = plant('baton.pid');
  const run = spawnSync(process.execPath, [CLI, 'run', '--socket-path', uniqueSocketPath('pid'), '--pid-file', pidFile, '--', process.execPath, '-e', '0'], {
    encoding: 'utf8',
    timeout: 15_000,
  });
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stderr, /epoch 0 exited \(code 0\) before taking over; nothing is serving/);
  assert.equal(readFileSync(secret, 'utf8'), 'secret\n', 'root\'s file untouched by the supervisor');
  assert.deepEqual(readdirSync(open).sort(), ['base-id', 'pid', 'unsafe'], 'the pid file is removed at the end, and no temporary file is left');
});

test('the default control socket: in $RUNTIME_DIRECTORY, else $XDG_RUNTIME_DIR/baton, else <tmpdir>/baton-<uid>; shown in --help', () => {
  const uid = process.getuid!();
  assert.equal(defaultSocketDirectory({ RUNTIME_DIRECTORY: '/run/app:/run/app2', XDG_RUNTIME_DIR: '/run/user/7' }), '/run/app');
  assert.equal(defaultSocketDirectory({ XDG_RUNTIME_DIR: '/run/user/7' }), '/run/user/7/baton');
  assert.equal(defaultSocketDirectory({ XDG_RUNTIME_DIR: 'relative' }), join(tmpdir(), `baton-${uid}`), 'a relative one is ignored');
  assert.equal(defaultSocketDirectory({}), join(tmpdir(), `baton-${uid}`));
  assert.equal(defaultOptions.socketPath, join(defaultSocketDirectory(), 'baton'));
  const help = flagHelp(optionTable).split('\n').find((line) => line.startsWith('  --socket-path '));
  assert.ok(help?.endsWith(`(default: ${defaultOptions.socketPath})`), help);
});

test('the default socket directory is created 700 and ours; one another user made, or linked, is refused', asRoot, (t) => {
  const parent = directory(t, 0o777);
  withEnv(t, { RUNTIME_DIRECTORY: undefined, XDG_RUNTIME_DIR: parent });
  const dir = defaultSocketDirectory();
  assert.equal(dir, join(parent, 'baton'));

  const server = ControlServer.listen(controlAddress(join(dir, 'baton'), 0, 0), 0o600);
  assert.deepEqual([statSync(dir).uid, modeOf(dir), modeOf(join(dir, 'baton_0_0'))], [0, 0o700, 0o600]);
  // Another user cannot bind a name of the next epoch there.
  assert.match(asNobody(`try { native.unixListen(${q(join(dir, 'baton_0_1'))}, false, 0o600, 4); } catch (e) { console.log(e.code); }`), /^EACCES$/);
  server.close();
  rmSync(dir, { recursive: true });

  // Made first by another user. The control: what we bind there is theirs to remove (or swap).
  asNobody(`fs.mkdirSync(${q(dir)}); fs.chmodSync(${q(dir)}, 0o755);`);
  const fd = native.unixListen(join(dir, 'theirs'), false, 0o600, 4);
  native.close(fd);
  asNobody(`fs.unlinkSync(${q(join(dir, 'theirs'))});`);
  assert.throws(() => ControlServer.listen(controlAddress(join(dir, 'baton'), 0, 0), 0o600), {
    code: 'BATON_UNSAFE_PATH',
    message: new RegExp(`^the control socket directory ${dir} \\(owner uid ${NOBODY}, mode 755\\) could be changed by another user, .*: remove it \\(baton creates it, mode 700\\)`),
  });
  rmSync(dir, { recursive: true });

  // A symlink to a directory of theirs.
  asNobody(`fs.mkdirSync(${q(join(parent, 'elsewhere'))}, { mode: 0o700 }); fs.symlinkSync(${q(join(parent, 'elsewhere'))}, ${q(dir)});`);
  assert.throws(() => ControlServer.listen(controlAddress(join(dir, 'baton'), 0, 0), 0o600), {
    code: 'BATON_UNSAFE_PATH',
    message: `the control socket directory ${dir} is not a directory (a symlink): remove it, or give another --socket-path`,
  });

  // Ours, but others may write in it.
  rmSync(dir);
  mkdirSync(dir);
  chmodSync(dir, 0o770);
  assert.throws(() => ControlServer.listen(controlAddress(join(dir, 'baton'), 0, 0), 0o600), { code: 'BATON_UNSAFE_PATH', message: /\(owner uid 0, mode 770\)/ });
});

test('a --socket-path directory: refused if others may write in it, unless sticky and ours or root\'s', asRoot, (t) => {
  withEnv(t, { RUNTIME_DIRECTORY: undefined, XDG_RUNTIME_DIR: undefined });
  const listens = (dir: string) => {
    const server = ControlServer.listen(controlAddress(join(dir, 'ctl'), 0, 0), 0o600);
    server.close();
    return true;
  };
  assert.ok(listens(directory(t, 0o755)));
  assert.ok(listens(directory(t, 0o1777)), 'sticky, as /tmp');
  for (const mode of [0o777, 0o775, 0o757]) {
    assert.throws(() => listens(directory(t, mode)), { code: 'BATON_UNSAFE_PATH' }, mode.toString(8));
  }
  const theirs = directory(t, 0o755);
  spawnSync('chown', [`${NOBODY}`, theirs]);
  assert.throws(() => listens(theirs), { code: 'BATON_UNSAFE_PATH', message: new RegExp(`\\(owner uid ${NOBODY}, mode 755\\)`) });
  const missing = join(directory(t, 0o755), 'missing');
  assert.throws(() => listens(missing), { code: 'BATON_INVALID_ARGUMENT', message: `the control socket directory ${missing} does not exist: create it (owned by uid 0, mode 700 or 755)` });
});

test('abstract names another user squats: epoch 0 starts all the same, and the holder of a taken name is named', asRoot, async (t) => {
  const name = `@baton-squat-${process.pid}`;
  const script = `
    const native = require(${BINDING});
    native.unixListen(${q(`${name.slice(1)}_0_1`)}, true, 0o600, 4);
    native.unixListen(${q(`${name.slice(1)}_0_3`)}, true, 0o600, 4);
    require('node:net').createServer().listen(${q(`\0${name.slice(1)}_0_2`)}, () => console.log('ready'));
    setInterval(() => {}, 1000);`;
  const squatter = spawn(process.execPath, ['-e', script], { uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => squatter.kill('SIGKILL'));
  await new Promise<void>((ready) => createInterface({ input: squatter.stdout! }).once('line', () => ready()));

  // The control: the names are taken and listening (a scan of names alone counts epochs 1 and 3 as live).
  const live = listeningUnixSockets();
  assert.ok(live.has(`${name}_0_1`) && live.has(`${name}_0_3`));
  assert.match(readFileSync('/proc/net/unix', 'utf8'), new RegExp(`${name}_0_2`), 'the stream socket is there too');
  assert.equal(live.has(`${name}_0_2`), false, 'a stream socket does not take a SEQPACKET name');

  assert.deepEqual(liveEpochs(name, 0), [], 'no generation of ours');
  const first = ControlServer.listen(controlAddress(name, 0, 0), 0o600);
  t.after(() => first.close());
  assert.deepEqual(liveEpochs(name, 0), [0]);
  assert.throws(() => ControlServer.listen(controlAddress(name, 0, 1), 0o600), {
    code: 'BATON_BASE_ID_IN_USE',
    message:
      `control socket ${name}_0_1 is held by pid ${squatter.pid}, running as uid ${NOBODY}, not baton's uid 0: the abstract namespace has no ` +
      'permissions, so any local user can take a name there; give a filesystem --socket-path (the default is a directory only this uid can write)',
  });
  const ours = ControlServer.listen(controlAddress(name, 1, 0), 0o600);
  t.after(() => ours.close());
  assert.throws(() => ControlServer.listen(controlAddress(name, 1, 0), 0o600), {
    code: 'BATON_BASE_ID_IN_USE',
    message: `control socket ${name}_1_0 is in use by another baton instance (pid ${process.pid}); give this one another --base-id, or --use-dynamic-base-id`,
  });
  assert.equal(freeBaseId(name), 2, 'a base id with a socket of anyone on it is not free');

  // A name bound and not listening answers nobody: no SO_PEERCRED to name the holder, and it may well be another user's.
  const binder = spawn('python3', ['-c', `import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.bind(${q(`\0${name.slice(1)}_2_0`)}); print('ready', flush=True); sys.stdin.read()`], {
    uid: NOBODY,
    gid: NOBODY,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  t.after(() => binder.kill('SIGKILL'));
  await new Promise<void>((ready) => createInterface({ input: binder.stdout! }).once('line', () => ready()));
  assert.throws(() => ControlServer.listen(controlAddress(name, 2, 0), 0o600), {
    code: 'BATON_BASE_ID_IN_USE',
    message:
      `control socket ${name}_2_0 is bound by a process that does not answer, which may be another user's: the abstract namespace has no ` +
      'permissions, so any local user can take a name there; give a filesystem --socket-path (the default is a directory only this uid can write), ' +
      'another --base-id, or --use-dynamic-base-id',
  });
});
