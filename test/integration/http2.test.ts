// HTTP/2 clients through hot restarts that change the worker count: every
// stream of a client that honours GOAWAY is answered, because the drain shuts
// sessions down as RFC 9113 §6.8 says (a first GOAWAY that refuses nothing,
// a round trip, then the final one). The control, a plain session.close()
// (one GOAWAY naming the last stream taken), refuses the streams the client
// sent while it was on its way, and the same counter sees them.

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { answered, load } from '../support/processes';
import { logged, supervised, tookOver } from '../support/supervised';

const FLAGS = ['--retire-grace-ms', '300', '--drain-time-s', '1', '--parent-shutdown-time-s', '2'];
const COUNTS = [4, 2, 4, 1, 3];
/** Refused by the server (RST_STREAM REFUSED_STREAM), as Node's client reports it. */
const REFUSED = 'ERR_HTTP2_STREAM_ERROR/7';

/** 16 sessions of 4 streams each through restarts to each of `counts` after the first; the load's result. */
async function restartsUnderLoad(t: TestContext, name: string, http2: string, counts: number[]) {
  const setup = await supervised(t, name, FLAGS, { TEST_WORKERS: counts[0], TEST_HTTP2: http2 });
  const run = load(t, setup.port, { protocol: 'h2', concurrency: 16, streams: 4 });
  await answered(run, { from: ['epoch=0'] });
  for (let epoch = 1; epoch < counts.length; epoch++) {
    setup.next.set({ TEST_WORKERS: counts[epoch] });
    setup.supervisor.child.kill('SIGHUP');
    await setup.supervisor.waitFor(tookOver(epoch), { timeoutMs: 15_000, what: `epoch ${epoch} taking over` });
    await answered(run, { from: [`epoch=${epoch}`] });
    // Its parent drained: every one of its sessions went away and was replaced.
    await setup.supervisor.waitFor(logged(new RegExp(`^draining epoch ${epoch - 1} exited`)), { timeoutMs: 15_000, what: `epoch ${epoch - 1} exiting` });
    t.diagnostic(`${name} after epoch ${epoch}: ${run.snapshot().attempted} streams, lost ${run.snapshot().lost}`);
  }
  run.stop();
  const result = await run.done;
  t.diagnostic(`${name}: not sent (refused by the client itself, sent again) ${result.notSent}, attempted ${result.attempted}, answered ${result.answered}, lost ${result.lost} ${JSON.stringify(result.errors)}`);
  assert.ok(result.attempted > 1000, `load too small to mean anything: ${result.attempted}`);
  assert.equal(result.answered + result.lost, result.attempted);
  return result;
}

test('HTTP/2 streams through 4 → 2 → 4 → 1 → 3 workers: none fails with the graceful GOAWAY, a plain session.close() refuses some', async (t) => {
  const graceful = await restartsUnderLoad(t, 'h2-graceful', '1', COUNTS);
  assert.equal(graceful.lost, 0, `lost: ${JSON.stringify(graceful.errors)}`);
  // Two restarts are enough for the control to refuse some (about 50 a restart).
  const plain = await restartsUnderLoad(t, 'h2-plain', 'close', COUNTS.slice(0, 3));
  assert.ok(plain.lost > 0, 'the control loses streams: the counter can see a loss');
  assert.ok((plain.errors[REFUSED] ?? 0) > 0, `the control's streams are refused: ${JSON.stringify(plain.errors)}`);
});
