#!/usr/bin/env node
// Keep-alive requests per second, as wrk measures them: C HTTP/1.1
// connections, each sending its next GET as soon as the previous answer is
// complete, for a fixed time; prints one JSON line { requests, errors,
// durationMs, requestsPerSecond }. Raw sockets and a minimal parser (status
// line, Content-Length), so the client spends far less per request than the
// server it measures. Loopback only.
//
//   node keepalive-load.mjs --port PORT [--connections 64] [--duration-ms 3000]

import { connect } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    connections: { type: 'string', default: '64' },
    'duration-ms': { type: 'string', default: '3000' },
  },
});
const port = Number(values.port);
const durationMs = Number(values['duration-ms']);
const REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: bench\r\n\r\n', 'latin1');
const HEADER_END = Buffer.from('\r\n\r\n');
const LENGTH = /\r\ncontent-length: *(\d+)/i;

let requests = 0;
let errors = 0;
const startedAt = performance.now();
const running = () => performance.now() - startedAt < durationMs;

/** One connection's loop; resolves when it is closed (time is up, or it failed). */
function connection() {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      // Each answer in full: head up to the blank line, then Content-Length bytes.
      for (;;) {
        const headEnd = pending.indexOf(HEADER_END);
        if (headEnd < 0) return;
        const head = pending.toString('latin1', 0, headEnd);
        const length = LENGTH.exec(head);
        if (!head.startsWith('HTTP/1.1 200') || length === null) {
          errors++;
          return socket.destroy();
        }
        const end = headEnd + HEADER_END.length + Number(length[1]);
        if (pending.length < end) return;
        pending = pending.subarray(end);
        requests++;
        if (running()) socket.write(REQUEST);
        else return socket.end();
      }
    });
    socket.on('error', () => errors++);
    socket.on('close', resolve);
    socket.write(REQUEST);
  });
}

await Promise.all(Array.from({ length: Number(values.connections) }, connection));
const elapsedMs = performance.now() - startedAt;
console.log(JSON.stringify({ requests, errors, durationMs: Math.round(elapsedMs), requestsPerSecond: Math.round((requests * 1000) / elapsedMs) }));
