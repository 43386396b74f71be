// The admin listener once its generation stopped accepting: a connection it
// accepted as it stopped has its first request answered by whoever accepts
// on the socket now (the next generation), not a failed scrape; a kept-alive
// connection that had requests before is told to ask again (503).

import assert from 'node:assert/strict';
import * as http from 'node:http';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import * as native from '../../src/binding';
import { ListenerSet } from '../../src/listeners/listener-set';
import { planHandoff } from '../../src/listeners/plan';
import { resolveListeners } from '../../src/listeners/spec';
import { AdminListener } from '../../src/restart/admin-listener';

/** Sends one request on `socket` and reads one answer's status line and body. */
function ask(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      const end = text.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(text);
      if (end >= 0 && length && text.length >= end + 4 + Number(length[1])) {
        socket.off('data', onData);
        resolve(`${text.split('\r\n')[0]} ${text.slice(end + 4)}`.trim());
      }
    };
    socket.on('data', onData).once('error', reject);
    socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
  });
}

test('stopped: a connection accepted as it stopped is answered by the next generation; a kept-alive one gets 503', async (t) => {
  const fd = native.tcpListen(4, '127.0.0.1', 0, false, 16);
  const port = native.socketInfo(fd).port;
  const listeners = resolveListeners([], { host: '127.0.0.1', port });
  const wanted = [{ ...listeners[0]!.address, ipv6Only: false, sockets: 1 }];
  const set = ListenerSet.assemble(listeners, 1, planHandoff([wanted[0]!], wanted, 1, 'drain'), new Map([[0, new Map([[0, fd]])]]));
  const admin = new AdminListener(set, (_req, res) => res.end('parent\n'), 3, () => undefined);
  const next = http.createServer((_req, res) => res.end('next generation\n'));
  t.after(() => {
    admin.terminate();
    next.close();
    next.closeAllConnections();
    set.close();
  });
  admin.resumeAccepting();

  const keptAlive = connect(port, '127.0.0.1');
  assert.match(await ask(keptAlive), /^HTTP\/1.1 200 OK parent$/);
  const fresh = connect(port, '127.0.0.1');
  await new Promise((resolve) => fresh.once('connect', resolve));
  await new Promise((resolve) => setTimeout(resolve, 50)); // accepted by the admin listener, no request yet

  admin.stopAccepting([]);
  next.listen({ fd: set.dup(0, 0) }); // the next generation accepts on the same socket
  assert.match(await ask(fresh), /^HTTP\/1.1 200 OK next generation$/, 'the scrape opened during the hand-over is answered');
  assert.match(await ask(keptAlive), /^HTTP\/1.1 503 Service Unavailable generation 3 is draining/);
  fresh.destroy();
  keptAlive.destroy();
});
