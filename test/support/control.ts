// The control case behind every "zero lost": the same counter, run the same
// way, against a listener closed with connections still in its accept queue.
// Those connections are reset (the loss a hot restart must avoid), and the
// counter has to report every one of them, or "0 lost" would prove nothing.

import assert from 'node:assert/strict';
import { waitFor } from './wait';
import { close, socketInfo, tcpListen } from '../../src/binding';
import { spawnLoad, startLoad, type LoadResult } from '../../tools/load';

export async function closeWithFullQueue(run: typeof startLoad | typeof spawnLoad = spawnLoad, queued = 20): Promise<LoadResult> {
  const fd = tcpListen(4, '127.0.0.1', 0, false, 64);
  let open = true;
  const load = run({ targets: [{ host: '127.0.0.1', port: socketInfo(fd).port }], concurrency: queued, maxConnections: queued, durationMs: 10_000 });
  try {
    await waitFor(() => socketInfo(fd).acceptQueue >= queued, { what: () => `${queued} connections in the accept queue (${socketInfo(fd).acceptQueue} there)` });
    close(fd);
    open = false;
    return await load.done;
  } finally {
    if (open) close(fd);
    load.stop();
  }
}

/** Asserts the counter sees the loss of exactly the queued connections. */
export async function assertCounterSeesLoss(run: typeof startLoad | typeof spawnLoad = spawnLoad, queued = 20): Promise<void> {
  const result = await closeWithFullQueue(run, queued);
  assert.equal(result.attempted, queued);
  assert.equal(result.answered, 0);
  assert.deepEqual(result.errors, { ECONNRESET: queued }, 'the control lost every queued connection, and the counter saw it');
}
