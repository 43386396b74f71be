#!/usr/bin/env node
// baton without its worker pool: one HTTP server in the main thread, driven
// by the generation's events. The same steps serve an application that runs
// its workers its own way (child processes, its own threads...).
//
//   baton run -- node examples/main-thread-server.mjs --port 8080

import http from 'node:http';
import { parseArgs } from 'node:util';
import { Generation } from 'baton';

const { values } = parseArgs({ options: { port: { type: 'string', default: '8080' } } });

// 1. Connect to the parent (if any) and shake hands; the parent keeps serving.
const generation = await Generation.start();
// 2. Take the parent's socket (or create it): one listener, one worker index.
const sockets = await generation.listen([{ host: '127.0.0.1', port: Number(values.port) }], 1);
// 3. Serve it. Each listen() gets its own dup: Node closes the fd it is given when the server closes.
const server = http.createServer((req, res) => res.end(`epoch=${generation.epoch} worker=0\n`));
// Accept when the generation says so: at takeOver(), and again should a stop be undone.
generation.on('resumeAccepting', () => server.listen({ fd: sockets.dup(0, 0) }, 511));
generation.on('stopAccepting', () => server.close());
generation.on('drain', () => server.closeIdleConnections());
generation.onTerminate(() => server.closeAllConnections());
// 4. Take over: we accept, the parent drains, and this generation can have a child of its own.
generation.takeOver();
// 5. Signals are ours without serve(): stop gracefully, and take the SIGUSR1 that `baton run`
//    forwards (reopen logs), or Node would open its inspector on it.
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => generation.shutdown(signal, 5000));
process.on('SIGUSR1', () => console.log(`epoch ${generation.epoch}: nothing to reopen`));
console.log(`epoch ${generation.epoch}: serving 127.0.0.1:${values.port} from the main thread`);
