#!/usr/bin/env node
// The baseline of the overhead section: examples/http-server.mjs's HTTP
// server without baton. One process, N worker threads, each serving its own
// SO_REUSEPORT socket of the same address (made by baton's addon only
// because Node 20's net cannot set SO_REUSEPORT): what baton's workers
// serve, minus baton.
//
//   node raw-threads.mjs --port PORT --workers N

import http from 'node:http';
import { parseArgs } from 'node:util';
import { isMainThread, Worker, workerData } from 'node:worker_threads';

if (isMainThread) {
  const { tcpListen } = await import('../../dist/src/binding.js');
  const { DEFAULT_BACKLOG } = await import('../../dist/src/listeners/spec.js');
  const { values } = parseArgs({ options: { port: { type: 'string' }, workers: { type: 'string', default: '2' } } });
  const port = Number(values.port);
  process.on('SIGTERM', () => process.exit(0));
  for (let index = 0; index < Number(values.workers); index++) {
    const fd = tcpListen(4, '127.0.0.1', port, false, DEFAULT_BACKLOG);
    new Worker(new URL(import.meta.url), { workerData: { fd, index } }).on('error', (error) => {
      console.error(`worker ${index}: ${error.stack}`);
      process.exit(1);
    });
  }
} else {
  const { fd, index } = workerData;
  // The example counts its requests in a baton counter; a plain integer here.
  let requests = 0;
  http
    .createServer((req, res) => {
      res.end(`epoch=0 worker=${index}\n`);
      requests++;
    })
    .listen({ fd });
}
