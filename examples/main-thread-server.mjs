#!/usr/bin/env node
// baton without its worker pool: HTTP served from the main thread, driven by
// the generation's events. The same steps serve an application that runs its
// workers its own way (child processes, its own threads...).
//
//   baton run -- node examples/main-thread-server.mjs --port 8080

import http from 'node:http';
import { parseArgs } from 'node:util';
import { drainHttp, Generation, stopListening } from 'baton';

const { values } = parseArgs({ options: { port: { type: 'string', default: '8080' } } });

// 1. Connect to the parent (if any) and shake hands; the parent keeps serving.
const generation = await Generation.start();
// 2. Take the parent's sockets (or create them): one listener, one worker.
const sockets = await generation.listen([{ host: '127.0.0.1', port: Number(values.port) }], 1);
// 3. One server per socket worker 0 accepts on: its own and, after a decrease, the parent's
//    surplus ones until they are retired. Each listen() gets its own dup: Node closes it with the server.
//    drainHttp follows the generation's drain: Connection: close on answers, idle keep-alives closed.
const answer = (req, res) => res.end(`epoch=${generation.epoch} worker=0\n`);
const serverFor = () => {
  const server = http.createServer(answer);
  drainHttp(server, generation.drainController);
  return server;
};
const servers = new Map(sockets.servedBy(0).map((entry) => [entry, serverFor()]));
const everyServer = [...servers.values()]; // a retired one's keep-alive connections are still closed at the end
const listen = (entry, server) => !server.listening && server.listen({ fd: sockets.dup(entry.listener.index, entry.index) }, entry.listener.backlog);
// Accept when the generation says so: at takeOver(), and again should a stop be undone. On a stop, a
// listener the child dropped (in `keep`) is still served until it is retired. stopListening, not
// server.close(): that would also cut idle keep-alive connections, which clients may be reusing.
generation.on('resumeAccepting', () => servers.forEach((server, entry) => listen(entry, server)));
generation.on('stopAccepting', (keep) => servers.forEach((server, entry) => !keep.includes(entry.listener) && stopListening(server)));
generation.onRetire((entry) => {
  const server = servers.get(entry);
  if (server) stopListening(server);
  servers.delete(entry);
});
generation.onTerminate(() => everyServer.forEach((server) => server.closeAllConnections()));
// 4. Take over: we accept, the parent drains, and this generation can have a child of its own.
generation.takeOver();
// 5. Signals are ours without serve(): stop gracefully, and take the SIGUSR1 that `baton run`
//    forwards (reopen logs), or Node would open its inspector on it.
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => generation.shutdown(signal, 5000));
process.on('SIGUSR1', () => console.log(`epoch ${generation.epoch}: nothing to reopen`));
console.log(`epoch ${generation.epoch}: serving 127.0.0.1:${values.port} from the main thread`);
