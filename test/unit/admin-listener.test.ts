// The admin listener on a real socket. While its generation accepts: /ready
// and /live answer 200 beside /metrics. Once it stopped accepting: a
// connection it accepted as it stopped has its first request answered by
// whoever accepts on the socket now (the next generation), not a failed
// scrape or probe; a kept-alive connection that had requests before is told
// to ask again (503, /ready included), except /live, 200 while the process
// runs; both close the connection so the prober's next one reaches whoever
// accepts.

import assert from 'node:assert/strict';
import * as http from 'node:http';
import { connect, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import * as native from '../../src/binding';
import { ListenerSet } from '../../src/listeners/listener-set';
import { planHandoff } from '../../src/listeners/plan';
import { resolveListeners } from '../../src/listeners/spec';
import { AdminListener } from '../../src/restart/admin-listener';

/**
 * Sends one request on `socket` and reads one answer: its status line and
 * body, and whether it said Connection: close.
 */
function ask(socket: Socket, request = 'GET /metrics'): Promise<{ answer: string; closes: boolean }> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      const end = text.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(text);
      const bodyLength = request.startsWith('HEAD ') ? 0 : Number(length?.[1]);
      if (end >= 0 && length && text.length >= end + 4 + bodyLength) {
        socket.off('data', onData);
        const closes = /\r\nconnection: close\r\n/i.test(text.slice(0, end + 2));
        resolve({ answer: `${text.split('\r\n')[0]} ${text.slice(end + 4)}`.trim(), closes });
      }
    };
    socket.on('data', onData).once('error', reject);
    socket.write(`${request} HTTP/1.1\r\nHost: x\r\n\r\n`);
  });
}

/** A connection the admin listener has accepted, with no request yet. */
async function accepted(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  await new Promise((resolve) => setTimeout(resolve, 50));
  return socket;
}

/** Generation 3's admin listener, accepting on a socket of its own, and what stands for the next generation on it. */
function adminListener(t: TestContext) {
  const fd = native.tcpListen(4, '127.0.0.1', 0, false, 16);
  const port = native.socketInfo(fd).port;
  const listeners = resolveListeners([], { host: '127.0.0.1', port });
  const wanted = [{ ...listeners[0]!.address, ipv6Only: false, sockets: 1 }];
  const set = ListenerSet.assemble(listeners, 1, planHandoff([wanted[0]!], wanted, 1, 'drain'), new Map([[0, new Map([[0, fd]])]]));
  const admin = new AdminListener(set, (_req, res) => res.end('parent\n'), 3, () => undefined);
  const next = http.createServer((req, res) => res.end(`next generation ${req.url}\n`));
  const sockets: Socket[] = [];
  t.after(() => {
    sockets.forEach((s) => s.destroy());
    admin.terminate();
    next.close();
    next.closeAllConnections();
    set.close();
  });
  admin.resumeAccepting();
  /** The next generation accepts on the same socket. */
  const nextTakesOver = () => next.listen({ fd: set.dup(0, 0) });
  const connection = async () => sockets[sockets.push(await accepted(port)) - 1]!;
  return { admin, next, nextTakesOver, connection };
}

test('stopped: a connection accepted as it stopped is answered by the next generation; a kept-alive one gets 503', async (t) => {
  const { admin, nextTakesOver, connection } = adminListener(t);
  const keptAlive = await connection();
  assert.match((await ask(keptAlive)).answer, /^HTTP\/1.1 200 OK parent$/);
  const fresh = await connection(); // accepted by the admin listener, no request yet

  admin.stopAccepting([]);
  nextTakesOver();
  assert.match((await ask(fresh)).answer, /^HTTP\/1.1 200 OK next generation \/metrics$/, 'the scrape opened during the hand-over is answered');
  assert.match((await ask(keptAlive)).answer, /^HTTP\/1.1 503 Service Unavailable generation 3 is draining/);
});

test('serving: /ready and /live answer 200 to GET and HEAD on a kept-alive connection; other methods 405; other paths the handler\'s', async (t) => {
  const { connection } = adminListener(t);
  const probe = await connection();
  const expected = { 'GET /ready': 'generation 3 ready', 'GET /ready?verbose': 'generation 3 ready', 'HEAD /ready': '', 'GET /live': 'generation 3 live', 'HEAD /live': '' };
  for (const [request, body] of Object.entries(expected)) {
    const { answer, closes } = await ask(probe, request);
    assert.equal(answer, `HTTP/1.1 200 OK ${body}`.trim(), request);
    assert.equal(closes, false, `${request}: the connection stays open while serving`);
  }
  assert.match((await ask(probe, 'POST /ready')).answer, /^HTTP\/1.1 405 Method Not Allowed method not allowed$/);
  assert.match((await ask(probe, 'GET /readyz')).answer, /^HTTP\/1.1 200 OK parent$/, 'not a probe: the metrics handler answers (its 404)');
});

test('stopped: a kept-alive /ready gets 503 and /live 200, both closing; a fresh /ready is the next generation\'s, a fresh /live our own; ready again once resumed', async (t) => {
  const { admin, next, nextTakesOver, connection } = adminListener(t);
  const [readyProbe, liveProbe] = [await connection(), await connection()];
  assert.match((await ask(readyProbe, 'GET /ready')).answer, /^HTTP\/1.1 200 OK generation 3 ready$/);
  assert.match((await ask(liveProbe, 'GET /live')).answer, /^HTTP\/1.1 200 OK generation 3 live$/);
  const [freshReady, freshLive] = [await connection(), await connection()];

  admin.stopAccepting([]); // a child took over: we drain
  nextTakesOver();
  const stale = await ask(readyProbe, 'GET /ready');
  assert.match(stale.answer, /^HTTP\/1.1 503 Service Unavailable generation 3 is draining: not ready/);
  assert.equal(stale.closes, true, 'the prober reconnects, to whoever accepts');
  const live = await ask(liveProbe, 'GET /live');
  assert.deepEqual(live, { answer: 'HTTP/1.1 200 OK generation 3 live', closes: true }, 'alive while draining, and the prober reconnects');
  assert.deepEqual(await ask(freshReady, 'GET /ready'), { answer: 'HTTP/1.1 200 OK next generation /ready', closes: true }, 'passed on to the generation that serves');
  assert.deepEqual(await ask(freshLive, 'GET /live'), { answer: 'HTTP/1.1 200 OK generation 3 live', closes: true }, 'answered here: this process runs');

  // The child went away (rollback): we accept, and are ready, again.
  next.close();
  next.closeAllConnections();
  admin.resumeAccepting();
  assert.deepEqual(await ask(await connection(), 'GET /ready'), { answer: 'HTTP/1.1 200 OK generation 3 ready', closes: false });
});
