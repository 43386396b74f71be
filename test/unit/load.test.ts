// The load generator is the counter behind every "zero lost" claim, so these
// tests show both that it counts what a server answers and that it sees each
// way a connection can be lost, including the one a hot restart risks: a
// listener closed with connections still in its accept queue.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createServer as createHttpServer, type RequestListener } from 'node:http';
import { constants as http2Constants, createServer as createHttp2Server } from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { ErrorCodes } from '../../src/errors';
import { waitFor } from '../support/wait';
import { assertCounterSeesLoss } from '../support/control';
import { assertLoopback, LatencyHistogram, spawnLoad, startLoad, type LoadOptions, type LoadResult } from '../../tools/load';

const CLI = join(__dirname, '../../tools/load/cli.js');
const LIMIT = { timeout: 5000 };
const RESPONDER = 'epoch=0 worker=0';

interface Listening {
  port: number;
  close(): Promise<void>;
}

/** Starts a server on 127.0.0.1:0; close() also ends the connections it still holds. */
async function listen(server: Server, host = '127.0.0.1'): Promise<Listening> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, host);
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

const httpServer = (handler: RequestListener): Promise<Listening> => listen(createHttpServer(handler));
const epochServer = (): Promise<Listening> => httpServer((_request, response) => response.end(`${RESPONDER}\n`));

function options(port: number, more: Partial<LoadOptions> = {}): LoadOptions {
  return { targets: [{ host: '127.0.0.1', port }], concurrency: 4, durationMs: 200, ...more };
}

/** Every connection finished, and each is counted once: answered, or lost under some reason. */
function assertBalanced(result: LoadResult): void {
  assert.equal(result.attempted, result.answered + result.lost);
  const byReason = Object.values(result.errors).reduce((sum, n) => sum + n, 0);
  assert.equal(byReason, result.lost);
  assert.equal(result.latencyMs.count, result.answered);
}

function assertAllAnswered(result: LoadResult): void {
  assertBalanced(result);
  assert.ok(result.attempted >= 50, `only ${result.attempted} connections attempted`); // a busy 2-core machine makes ~100 in 500 ms
  assert.equal(result.lost, 0, `lost: ${JSON.stringify(result.errors)}`);
  assert.deepEqual(result.byResponder, { [RESPONDER]: result.answered });
  assert.deepEqual(Object.keys(result.lastAnswerAt), [RESPONDER]);
  const { p50, p99, max } = result.latencyMs;
  assert.ok(0 < p50 && p50 <= p99 && p99 <= max && max < 5000, `latencies ${JSON.stringify(result.latencyMs)}`);
  assert.ok(result.connectionsPerSecond > 0);
}

test('startLoad: every connection to a healthy server is answered', LIMIT, async () => {
  const server = await epochServer();
  try {
    const startedAt = Date.now();
    const result = await startLoad(options(server.port, { concurrency: 16, durationMs: 500 })).done;
    const endedAt = Date.now();
    assertAllAnswered(result);
    assert.ok(result.durationMs >= 500 && result.durationMs < 1500, `ran ${result.durationMs} ms`);
    // Answers keep coming until the run stops starting connections, 500 ms in.
    const last = result.lastAnswerAt[RESPONDER];
    assert.ok(last >= startedAt + 500 && last <= endedAt, `last answer at ${last}, run ${startedAt}..${endedAt}`);
  } finally {
    await server.close();
  }
});

test('spawnLoad: the same from a separate process, stopped early', LIMIT, async () => {
  const server = await epochServer();
  try {
    const run = spawnLoad(options(server.port, { concurrency: 16, durationMs: 60_000 }));
    assert.notEqual(run.pid, process.pid);
    await waitFor(() => run.snapshot().answered > 100, { timeoutMs: 3000, what: 'the child reporting answers' });
    run.stop();
    const result = await run.done;
    assertAllAnswered(result);
    assert.ok(result.durationMs < 4000, `stop() was ignored: ran ${result.durationMs} ms`);
    assert.throws(() => process.kill(run.pid, 0), { code: 'ESRCH' }, 'the load process is gone');
  } finally {
    await server.close();
  }
});

test('spawnLoad: done rejects when the load process dies without a result', LIMIT, async () => {
  const run = spawnLoad(options(9, { durationMs: 60_000 }));
  process.kill(run.pid, 'SIGKILL');
  await assert.rejects(run.done, /exited \(SIGKILL\) without a result/);
});

test('maxConnections caps attempts exactly', LIMIT, async () => {
  const server = await epochServer();
  try {
    const result = await startLoad(options(server.port, { concurrency: 16, durationMs: 4000, maxConnections: 37 })).done;
    assert.equal(result.attempted, 37);
    assert.equal(result.answered, 37);
    assert.ok(result.durationMs < 2000, 'the run stopped by itself at the cap');
  } finally {
    await server.close();
  }
});

test('an abort signal stops the run', LIMIT, async () => {
  const server = await epochServer();
  try {
    const controller = new AbortController();
    const run = startLoad(options(server.port, { durationMs: 60_000, signal: controller.signal }));
    setTimeout(() => controller.abort(), 100);
    const result = await run.done;
    assertBalanced(result);
    assert.ok(result.answered > 0 && result.durationMs < 1000, `ran ${result.durationMs} ms`);
  } finally {
    await server.close();
  }
});

// Each wrong answer is lost, and under its own reason.
const wrongAnswers: Array<[string, RequestListener]> = [
  ['bad-body', (_request, response) => response.end('nope\n')],
  ['bad-status', (_request, response) => response.writeHead(503).end(`${RESPONDER}\n`)],
  ['closed-early', (_request, response) => response.writeHead(200, { 'content-length': 100 }).end('epoch=0')],
];
for (const [reason, handler] of wrongAnswers) {
  test(`a wrong answer is lost as '${reason}'`, LIMIT, async () => {
    const server = await httpServer(handler);
    try {
      const result = await startLoad(options(server.port)).done;
      assertBalanced(result);
      assert.ok(result.attempted > 0);
      assert.deepEqual(result.errors, { [reason]: result.attempted });
      assert.deepEqual(result.byResponder, {});
    } finally {
      await server.close();
    }
  });
}

test('a server destroying every connection loses them all', LIMIT, async () => {
  const server = await listen(createNetServer((socket) => socket.destroy()));
  try {
    const result = await startLoad(options(server.port)).done;
    assertBalanced(result);
    assert.ok(result.lost > 0);
    assert.equal(result.answered, 0);
    const { ECONNRESET = 0, 'closed-early': closedEarly = 0 } = result.errors;
    assert.equal(ECONNRESET + closedEarly, result.lost, JSON.stringify(result.errors));
  } finally {
    await server.close();
  }
});

test('a closed port loses every connection as ECONNREFUSED', LIMIT, async () => {
  const server = await epochServer();
  await server.close();
  const result = await startLoad(options(server.port)).done;
  assertBalanced(result);
  assert.ok(result.attempted > 0);
  assert.deepEqual(result.errors, { ECONNREFUSED: result.attempted });
});

test('a server that never answers loses connections as timeout', LIMIT, async () => {
  const server = await listen(createNetServer(() => {}));
  try {
    const result = await startLoad(options(server.port, { durationMs: 100, timeoutMs: 300 })).done;
    assertBalanced(result);
    assert.equal(result.attempted, 4, 'each loop waits out its connection');
    assert.deepEqual(result.errors, { timeout: 4 });
    assert.ok(result.durationMs >= 300 && result.durationMs < 1000, `ran ${result.durationMs} ms`);
  } finally {
    await server.close();
  }
});

const keepAlive = (port: number, more: Partial<LoadOptions> = {}): LoadOptions => options(port, { protocol: 'keepalive', durationMs: 10_000, ...more });

test('keepalive: requests reuse one connection per loop, with the think time between them', LIMIT, async () => {
  const server = await epochServer();
  try {
    const result = await startLoad(keepAlive(server.port, { concurrency: 2, maxConnections: 20, thinkMs: { min: 20, max: 20 } })).done;
    assertBalanced(result);
    assert.deepEqual([result.attempted, result.answered, result.connections], [20, 20, 2]);
    assert.deepEqual(result.byResponder, { [RESPONDER]: 20 });
    assert.ok(result.durationMs >= 9 * 20, `10 requests a loop, 20 ms apart, in ${result.durationMs} ms`);
  } finally {
    await server.close();
  }
});

test('keepalive: a connection the server closes gracefully is reopened, not counted as lost', LIMIT, async () => {
  let seen = 0;
  // Every 2nd answer says Connection: close; every 3rd connection is ended by the server while idle, long before the next request.
  const server = await httpServer((request, response) => {
    if (++seen % 2 === 0) response.setHeader('connection', 'close');
    else if (seen % 3 === 0) response.on('finish', () => request.socket.end());
    response.end(`${RESPONDER}\n`);
  });
  try {
    const result = await startLoad(keepAlive(server.port, { concurrency: 2, maxConnections: 30, thinkMs: { min: 50, max: 50 } })).done;
    assertBalanced(result);
    assert.deepEqual([result.answered, result.lost], [30, 0], JSON.stringify(result.errors));
    assert.ok(result.connections >= 15 && result.connections < 30, `${result.connections} connections`);
  } finally {
    await server.close();
  }
});

// A request written and never answered is lost, whatever the server does instead.
const unanswered: Array<[string, RequestListener]> = [
  ['closed-early', (request) => request.socket.end()],
  ['ECONNRESET', (request) => request.socket.resetAndDestroy()],
  ['unframed', (_request, response) => response.write(RESPONDER)], // chunked, never ended
];
for (const [reason, handler] of unanswered) {
  test(`keepalive: a request the server does not answer is lost as '${reason}'`, LIMIT, async () => {
    const server = await httpServer(handler);
    try {
      const result = await startLoad(keepAlive(server.port, { maxConnections: 8 })).done;
      assertBalanced(result);
      assert.deepEqual(result.errors, { [reason]: 8 });
      assert.equal(result.connections, 8, 'a failed connection is not reused');
    } finally {
      await server.close();
    }
  });
}

test('targets go round-robin, IPv6 loopback included', LIMIT, async () => {
  const v4 = await epochServer();
  const v6 = await listen(createHttpServer((_request, response) => response.end('epoch=1 worker=3\n')), '::1');
  try {
    const targets = [
      { host: '127.0.0.1', port: v4.port },
      { host: '::1', port: v6.port },
    ];
    const result = await startLoad({ targets, concurrency: 2, durationMs: 1000, maxConnections: 10 }).done;
    assert.deepEqual(result.byResponder, { [RESPONDER]: 5, 'epoch=1 worker=3': 5 });
  } finally {
    await Promise.all([v4.close(), v6.close()]);
  }
});

test('only loopback targets are accepted, before any connection', () => {
  for (const host of ['127.0.0.1', '127.200.3.4', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', 'localhost']) {
    assertLoopback(host);
  }
  for (const host of ['10.0.0.1', '8.8.8.8', 'example.com', '0.0.0.0', '::', '::ffff:10.0.0.1', '']) {
    const refused = { code: ErrorCodes.INVALID_ARGUMENT, message: /not loopback/ };
    assert.throws(() => assertLoopback(host), refused);
    // Thrown synchronously: neither a run nor a child process exists.
    assert.throws(() => startLoad({ targets: [{ host, port: 80 }], concurrency: 1, durationMs: 100 }), refused);
    assert.throws(() => spawnLoad({ targets: [{ host, port: 80 }], concurrency: 1, durationMs: 100 }), refused);
  }
});

test('bad options are refused with a message naming them', () => {
  const bad: Array<[Partial<LoadOptions>, RegExp]> = [
    [{ targets: [] }, /targets must be a non-empty array/],
    [{ targets: [{ host: '127.0.0.1', port: 70000 }] }, /targets\[0\]\.port must be an integer in 1\.\.65535/],
    [{ concurrency: 0 }, /concurrency must be an integer in 1\.\.1024, got 0/],
    [{ concurrency: 1025 }, /concurrency/],
    [{ concurrency: 2.5 }, /concurrency/],
    [{ durationMs: 600_001 }, /durationMs must be an integer in 1\.\.600000/],
    [{ maxConnections: 0 }, /maxConnections/],
    [{ timeoutMs: -1 }, /timeoutMs/],
    [{ path: 'x' }, /path must start with '\/'/],
    [{ path: '/a b' }, /path/],
    [{ path: '/\r\nX: y' }, /path/],
    [{ protocol: 'http' as 'tcp' }, /protocol must be one of tcp, udp, keepalive, h2, got 'http'/],
    [{ thinkMs: { min: 20, max: 5 } }, /thinkMs.min must not exceed thinkMs.max/],
    [{ thinkMs: { min: -1, max: 5 } }, /thinkMs.min must be an integer in 0\.\.60000/],
  ];
  for (const [change, message] of bad) {
    assert.throws(() => startLoad({ ...options(80), ...change }), { code: ErrorCodes.INVALID_ARGUMENT, message });
  }
});

test('latency percentiles are within 1% of the exact samples', () => {
  const histogram = new LatencyHistogram();
  const samples = Array.from({ length: 100_000 }, (_, i) => 0.05 * Math.exp(((i * 7919) % 100_000) / 10_000));
  for (const sample of samples) histogram.record(sample);
  const sorted = [...samples].sort((a, b) => a - b);
  for (const p of [0.5, 0.9, 0.99, 0.999]) {
    const exact = sorted[Math.ceil(p * sorted.length) - 1];
    const error = Math.abs(histogram.percentile(p) - exact) / exact;
    assert.ok(error < 0.01, `p${p * 100}: ${histogram.percentile(p)} vs ${exact}`);
  }
  assert.equal(histogram.max, sorted[sorted.length - 1]);
  assert.equal(new LatencyHistogram().percentile(0.99), 0);
});

test('cli: prints the result as one JSON line, exits 2 on bad arguments', LIMIT, async () => {
  const run = promisify(execFile);
  const server = await epochServer();
  try {
    const { stdout } = await run(process.execPath, [
      CLI, '--target', `127.0.0.1:${server.port}`, '--target', `[::1]:${server.port}`,
      // The count, not the time, ends it: exactly 10 connections, alternating between the targets.
      '--concurrency', '2', '--duration-ms', '30000', '--max-connections', '10',
    ]);
    const result = JSON.parse(stdout) as LoadResult;
    // Half of the targets ([::1]) has no server: the counter says so.
    assert.deepEqual([result.answered, result.errors], [5, { ECONNREFUSED: 5 }]);
  } finally {
    await server.close();
  }
  for (const args of [
    ['--target', '10.0.0.1:80', '--concurrency', '2', '--duration-ms', '100'],
    ['--target', '127.0.0.1:80', '--concurrency', 'many', '--duration-ms', '100'],
    ['--target', '::1:80', '--concurrency', '2', '--duration-ms', '100'],
    ['--target', '127.0.0.1:80', '--duration-ms', '100'],
    ['--target', '127.0.0.1:80', '--concurrency', '2', '--duration-ms', '100', '--bogus'],
  ]) {
    await assert.rejects(run(process.execPath, [CLI, ...args]), (error: { code: number; stderr: string }) => {
      assert.equal(error.code, 2, args.join(' '));
      assert.match(error.stderr, /^baton load: .+\nusage: /);
      return true;
    });
  }
});

// The control case: without it, "0 lost" could mean the counter is blind.
// Connections the kernel has accepted into a listener's queue but nobody has
// accept()ed are reset when that listener closes: exactly the loss a hot
// restart must avoid, and the counter must see every one of them.
test('control: closing a listener with a full accept queue is counted as lost', LIMIT, async () => {
  await assertCounterSeesLoss(startLoad);
});

test('h2: every stream is counted, on `concurrency` sessions of `streams` streams; streams the server refuses are lost', LIMIT, async (t) => {
  let refuse = false;
  const sessions = new Set<string>();
  const server = createHttp2Server((request, response) => {
    sessions.add(`${request.socket.remotePort}`);
    if (refuse) return request.stream.close(http2Constants.NGHTTP2_REFUSED_STREAM);
    response.end(`${RESPONDER}\n`);
  });
  const listening = await listen(server as unknown as Server);
  t.after(() => listening.close());

  const answered = await startLoad(options(listening.port, { protocol: 'h2', concurrency: 2, streams: 3, maxConnections: 60, durationMs: 4000 })).done;
  assertBalanced(answered);
  assert.deepEqual([answered.attempted, answered.answered, answered.notSent], [60, 60, 0]);
  assert.deepEqual(answered.byResponder, { [RESPONDER]: 60 });
  assert.equal(sessions.size, 2, 'two sessions carried every stream');

  refuse = true;
  const refused = await startLoad(options(listening.port, { protocol: 'h2', concurrency: 1, streams: 2, maxConnections: 10, durationMs: 4000 })).done;
  assertBalanced(refused);
  assert.deepEqual(refused.errors, { 'ERR_HTTP2_STREAM_ERROR/7': 10 });
});

// A stream that ended is closed already: resetting it too (RST_STREAM) is what
// nghttp2's rapid-reset guard (CVE-2023-44487) counts, and past about 1000 it
// ends the session with GOAWAY INTERNAL_ERROR, failing the streams in flight.
test('h2: a session carries streams past the server\'s rapid-reset limit: a stream that ended is not reset', LIMIT, async (t) => {
  const sessions = new Set<string>();
  const server = createHttp2Server((request, response) => {
    sessions.add(`${request.socket.remotePort}`);
    response.end(`${RESPONDER}\n`);
  });
  const listening = await listen(server as unknown as Server);
  t.after(() => listening.close());

  const result = await startLoad(options(listening.port, { protocol: 'h2', concurrency: 1, streams: 4, maxConnections: 2000, durationMs: 4000 })).done;
  assertBalanced(result);
  assert.deepEqual([result.attempted, result.answered, result.errors], [2000, 2000, {}]);
  assert.equal(sessions.size, 1, 'one session carried every stream');
});
