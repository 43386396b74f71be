// The control case behind every "zero lost": the same counter, run the same
// way, against a listener closed with connections still in its accept queue.
// Those connections are reset (the loss a hot restart must avoid), and the
// counter has to report every one of them, or "0 lost" would prove nothing.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
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

/**
 * The control for keep-alive clients: a server that answers keep-alive
 * requests but resets the connection of every 5th request instead of
 * answering it, and closes every 3rd answered connection gracefully
 * (Connection: close). The counter must lose exactly the reset requests,
 * and count none of the graceful closes.
 */
export async function assertKeepAliveCounterSeesLoss(requests = 100): Promise<void> {
  let seen = 0;
  const server = createServer((request, response) => {
    if (++seen % 5 === 0) return request.socket.resetAndDestroy();
    if (seen % 3 === 0) response.setHeader('connection', 'close');
    response.end('epoch=0 worker=0\n');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const { port } = server.address() as AddressInfo;
    const result = await spawnLoad({
      protocol: 'keepalive', thinkMs: { min: 1, max: 5 }, targets: [{ host: '127.0.0.1', port }], concurrency: 4, maxConnections: requests, durationMs: 10_000,
    }).done;
    assert.equal(result.attempted, requests);
    assert.deepEqual(result.errors, { ECONNRESET: requests / 5 }, 'the control lost every reset request, and the counter saw it');
    assert.equal(result.answered, requests - requests / 5);
  } finally {
    server.closeAllConnections();
    server.close();
  }
}
