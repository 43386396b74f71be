// generation.follow(): every follower is told of the five moments in order,
// one that joins an accepting generation resumes at once, one that throws is
// a warning and the others are still told; serveOnMainThread() is a follower
// that serves real connections from take-over until termination.

import assert from 'node:assert/strict';
import { get } from 'node:http';
import * as http from 'node:http';
import { test } from 'node:test';
import { Generation } from '../../src/restart/generation';
import type { Follower } from '../../src/restart/follower';
import { serveOnMainThread } from '../../src/restart/serve-on-main-thread';
import { uniqueSocketPath } from '../support/processes';
import { freePort } from '../support/wait';

function recorder(calls: string[], name: string): Follower {
  return {
    stopAccepting: (keep) => void calls.push(`${name} stop ${keep.length}`),
    resumeAccepting: () => void calls.push(`${name} resume`),
    drain: (ms) => void calls.push(`${name} drain ${ms}`),
    retire: (entry) => void calls.push(`${name} retire ${entry.index}`),
    terminate: () => void calls.push(`${name} terminate`),
  };
}

const fetch = (port: number) =>
  new Promise<string>((resolve, reject) => {
    get({ host: '127.0.0.1', port, agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk)).on('end', () => resolve(body));
    }).on('error', reject);
  });

test('followers are told of every moment in order; a late one resumes at once; a throwing one is a warning', async (t) => {
  const port = await freePort();
  const generation = await Generation.start({ env: false, exitOnTerminate: false, socketPath: uniqueSocketPath('follower') });
  const calls: string[] = [];
  const warnings: string[] = [];
  generation.on('warning', (message) => warnings.push(message));
  await generation.listen([{ host: '127.0.0.1', port }], 1);
  generation.follow(recorder(calls, 'a'));
  generation.follow({ resumeAccepting: () => { throw new Error('boom'); } });
  const unfollow = generation.follow(recorder(calls, 'gone'));
  unfollow();
  const served = http.createServer((_req, res) => res.end(`epoch=${generation.epoch}\n`));
  serveOnMainThread(generation, served);
  t.after(() => served.closeAllConnections());
  assert.equal(served.listening, false, 'nothing accepted before take-over');

  generation.takeOver();
  assert.deepEqual(calls, ['a resume']);
  assert.match(warnings.join('\n'), /a follower failed: boom/);
  assert.equal(await fetch(port), 'epoch=0\n', 'the main-thread server answers once the generation accepts');

  generation.follow(recorder(calls, 'late'));
  assert.deepEqual(calls, ['a resume', 'late resume']);

  await generation.shutdown('test', 10);
  assert.deepEqual(calls, ['a resume', 'late resume', 'a stop 0', 'late stop 0', 'a drain 10', 'late drain 10', 'a terminate', 'late terminate']);
  assert.equal(served.listening, false, 'the main-thread server let go at termination');
});

test('serveOnMainThread refuses a listener the generation does not have', async () => {
  const port = await freePort();
  const generation = await Generation.start({ env: false, exitOnTerminate: false, socketPath: uniqueSocketPath('follower') });
  await generation.listen([{ host: '127.0.0.1', port }], 1);
  try {
    assert.throws(() => serveOnMainThread(generation, http.createServer(), { listener: 'tcp://127.0.0.1:1' }), {
      code: 'BATON_INVALID_ARGUMENT',
      message: new RegExp(`no listener named 'tcp://127.0.0.1:1'; this generation has tcp://127.0.0.1:${port}`),
    });
    assert.throws(() => serveOnMainThread(generation, http.createServer(), { worker: 1 }), { code: 'BATON_INVALID_ARGUMENT', message: /worker must be 0\.\.0/ });
  } finally {
    await generation.shutdown('test', 0);
  }
});

test('an option given as undefined leaves the one in the environment', async () => {
  process.env.BATON_COMPATIBILITY = 'build-7';
  try {
    const generation = await Generation.start({ exitOnTerminate: false, socketPath: uniqueSocketPath('start'), compatibility: undefined });
    assert.match(generation.hotRestartVersion, /\.build-7$/);
    await generation.shutdown('test', 0);
  } finally {
    delete process.env.BATON_COMPATIBILITY;
  }
});
