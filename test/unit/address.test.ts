// Control socket paths: removeIfStale only ever deletes a socket nobody
// listens on, and a path spelled relative or absolute is one path.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test, type TestContext } from 'node:test';
import * as native from '../../src/binding';
import { controlAddress, freeBaseId, liveEpochs } from '../../src/channel/address';
import { ControlServer } from '../../src/channel/server';
import { resolveOptions } from '../../src/options';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-address-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a file that is not a socket is never deleted: a clear BASE_ID_IN_USE names it', (t) => {
  const address = controlAddress(join(tempDir(t), 'ctl'), 0, 0);
  writeFileSync(address.path, 'not a socket');
  let server: ControlServer | undefined;
  t.after(() => server?.close());
  assert.throws(() => (server = ControlServer.listen(address, 0o600)), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'BATON_BASE_ID_IN_USE');
    assert.ok(error.message.includes(`${address.path} is taken by a file that is not a socket`), error.message);
    return true;
  });
  assert.equal(readFileSync(address.path, 'utf8'), 'not a socket');
});

test('a relative and an absolute spelling of a live socket path see each other', (t) => {
  const absolute = join(tempDir(t), 'ctl');
  const spelled = relative(process.cwd(), absolute);
  assert.notEqual(spelled, absolute);
  const live = ControlServer.listen(controlAddress(absolute, 0, 0), 0o600);
  t.after(() => live.close());

  // Spelled relative even past the options, the live socket is probed, not unlinked.
  let second: ControlServer | undefined;
  t.after(() => second?.close());
  assert.throws(() => (second = ControlServer.listen(controlAddress(spelled, 0, 0), 0o600)), { code: 'BATON_BASE_ID_IN_USE' });
  native.close(native.unixConnect(controlAddress(absolute, 0, 0).path, false)); // still there, still answering

  const socketPath = resolveOptions({ socketPath: spelled }).socketPath;
  assert.equal(socketPath, absolute, 'options make it absolute');
  assert.equal(resolveOptions({ socketPath: '@ctl' }).socketPath, '@ctl', 'abstract names are left alone');
  assert.deepEqual(liveEpochs(socketPath, 0), [0]);
  assert.equal(freeBaseId(socketPath), 1);
});

test('a stale socket (bound, then closed without unlink) is removed and the name reused', (t) => {
  const address = controlAddress(join(tempDir(t), 'ctl'), 0, 0);
  native.close(native.unixListen(address.path, false, 0o600, 4));
  assert.ok(existsSync(address.path), 'left behind');
  const server = ControlServer.listen(address, 0o600);
  t.after(() => server.close());
  native.close(native.unixConnect(address.path, false));
});
