#!/usr/bin/env node
// An HTTP server that hot restarts with baton. Run it under the supervisor:
//
//   baton run -- node examples/http-server.mjs --config server.json
//
// and send the supervisor SIGHUP to restart: the new process reads the config
// again ({ "concurrency": 2, "listen": ["127.0.0.1:8080"], "admin": "127.0.0.1:9901" },
// and, for the demo's bad deploy, "crashAfterMs": 1000; "http2": true serves
// cleartext HTTP/2 instead of HTTP/1.1),
// takes over every socket from the old one and the old one drains. This one
// file is both the main thread (config, sockets, workers) and each worker
// thread (HTTP). GET /metrics on the admin address answers in Prometheus
// text: baton's metrics and example_requests_total, summed over every worker
// and carried across generations; GET /ready and /live answer an
// orchestrator's probes.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { isMainThread } from 'node:worker_threads';
import { serve, workerContext } from 'baton';

if (isMainThread) {
  const { values } = parseArgs({ options: { config: { type: 'string' } } });
  if (!values.config) {
    console.error('usage: http-server.mjs --config FILE');
    process.exit(2);
  }
  const config = JSON.parse(readFileSync(values.config, 'utf8'));
  const { generation } = await serve({
    listen: config.listen,
    workers: config.concurrency,
    admin: config.admin,
    script: new URL(import.meta.url),
    ...(config.http2 === true ? { workerData: { http2: true } } : {}),
  });
  generation.on('warning', (message) => console.error(`epoch ${generation.epoch}: ${message}`));
  console.log(`epoch ${generation.epoch}: pid ${process.pid} serving ${config.listen.join(', ')} with ${config.concurrency} workers`);
  // The demo's bad deploy: code that dies soon after taking over. baton run rolls back to the epoch before.
  if (config.crashAfterMs) setTimeout(() => process.exit(70), config.crashAfterMs);
} else {
  const worker = workerContext();
  const requests = worker.stats.counter({ name: 'example_requests', help: 'Requests answered by the example server.' });
  worker.stats.gauge({ name: 'example_workers', help: 'Worker threads serving (the draining generation\'s included).' }).inc();
  for (const socket of worker.sockets) {
    const server = (worker.data?.http2 ? await import('node:http2') : http).createServer((req, res) => {
      res.end(`epoch=${worker.epoch} worker=${worker.index}\n`);
      requests.inc();
    });
    worker.serve(server, socket.name);
  }
}
