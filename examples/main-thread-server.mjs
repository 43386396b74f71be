#!/usr/bin/env node
// baton without its worker pool: HTTP served from the main thread. The same
// steps serve an application that runs its workers its own way (child
// processes, its own threads...): anything with a Follower's five methods
// can follow the generation (generation.follow).
//
//   baton run -- node examples/main-thread-server.mjs --port 8080

import http from 'node:http';
import { parseArgs } from 'node:util';
import { Generation, serveOnMainThread } from 'baton';

const { values } = parseArgs({ options: { port: { type: 'string', default: '8080' } } });

// 1. Connect to the parent (if any) and shake hands; the parent keeps serving.
const generation = await Generation.start();
// 2. Take the parent's sockets (or create them): one listener, one worker.
await generation.listen([{ host: '127.0.0.1', port: Number(values.port) }], 1);
// 3. Serve worker 0's sockets from this thread: accepting from take-over on, stopping and draining
//    (Connection: close, idle keep-alives closed) with the generation, letting go of retired sockets.
serveOnMainThread(generation, http.createServer((req, res) => res.end(`epoch=${generation.epoch} worker=0\n`)));
// 4. Take over: we accept, the parent drains, and this generation can have a child of its own.
generation.takeOver();
// 5. Signals are ours without serve(): stop gracefully, and take the SIGUSR1 that `baton run`
//    forwards (reopen logs), or Node would open its inspector on it.
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => generation.shutdown(signal, 5000));
process.on('SIGUSR1', () => console.log(`epoch ${generation.epoch}: nothing to reopen`));
console.log(`epoch ${generation.epoch}: serving 127.0.0.1:${values.port} from the main thread`);
