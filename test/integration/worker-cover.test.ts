// A worker that dies while fds are short costs one worker, not all of them:
// its sibling covers its sockets by dup'ing them in its own thread, and a dup
// that fails (EMFILE) is a warning there, never an exception that would end
// the sibling too and pass the cover on to the next, which would fail alike.

import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { ROOT, start, uniqueSocketPath, type Line } from '../support/processes';
import { freePort } from '../support/wait';

test('a worker dying with no fd to spare: its sibling warns and serves on; only that worker exits', async (t) => {
  const port = await freePort();
  const proc = start(t, 'prlimit', ['--nofile=256:256', process.execPath, resolve(ROOT, 'test/fixtures/adopt-emfile.mjs')], {
    env: { ...process.env, TEST_PORT: String(port), BATON_SOCKET_PATH: uniqueSocketPath('adopt-emfile') },
  });
  await proc.waitFor((l) => l.event === 'serving', { timeoutMs: 15_000, what: 'serving' });
  await proc.waitFor((l) => l.event === 'done', { timeoutMs: 10_000, what: 'done' });
  const exits = proc.lines.filter((l: Line) => l.event === 'workerExit');
  t.diagnostic(proc.dump());
  assert.deepEqual(exits.map((l) => l.index), [1], 'only the worker that died on purpose exited');
});
