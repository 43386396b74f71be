// When a server answers from a given epoch: one HTTP/1.0 request at a time,
// until the body says `epoch=N`. The same probe for baton and every
// alternative, so "new epoch serving after N ms" means the same for all.

import { connect } from 'node:net';
import { waitFor } from '../dist/test/support/wait.js';
import { killServer } from './processes.mjs';

/**
 * A connection can wait in the accept queue of a socket nobody accepts on
 * any more (a surplus worker's): an attempt is given up on after this, and
 * the next one may land on a socket that is served.
 */
const ATTEMPT_MS = 250;

/** The body of one GET, or undefined when the connection failed or took too long. */
function get(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks = [];
    const timer = setTimeout(() => socket.destroy(), ATTEMPT_MS);
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const body = text.indexOf('\r\n\r\n');
      resolve(body < 0 ? undefined : text.slice(body + 4));
    });
    socket.end('GET / HTTP/1.0\r\nHost: bench\r\n\r\n');
  });
}

/**
 * Resolves with performance.now() of the first answer from `epoch`. Rejects
 * after `ms`, or as soon as `exited` (the server's exit promise) settles.
 */
export async function firstAnswer(port, epoch, { ms = 20_000, server } = {}) {
  const pattern = new RegExp(`^epoch=${epoch}(\\s|$)`);
  let gone = false;
  server?.exited.then(() => (gone = true));
  return waitFor(
    async () => {
      const body = await get(port);
      if (body !== undefined && pattern.test(body)) return performance.now();
      if (gone) throw new Error(`the server exited before epoch ${epoch} answered: ${server.stderrTail() || 'no stderr'}`);
      return undefined;
    },
    { timeoutMs: ms, what: `epoch ${epoch} answering on port ${port}`, intervalMs: 2 },
  );
}

/** Resolves with a server just started (startServer) once epoch 0 answers; one that does not is killed. */
export async function answering(server, port) {
  try {
    await firstAnswer(port, 0, { server });
  } catch (error) {
    await killServer(server);
    throw error;
  }
  return server;
}
