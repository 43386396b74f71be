// Listener creation (baton's one native call against Node's net.Server on
// its event loop) and introspection (socketInfo: getsockname, SO_* flags and
// the accept queue from TCP_INFO, in one call).

import { createServer } from 'node:net';
import * as native from '../../dist/src/binding.js';
import { printFigures } from '../report.mjs';
import { runSuite } from './suite.mjs';

export async function sockets(results, { maxTime }) {
  const since = results.entries.length;
  const listener = native.tcpListen(4, '127.0.0.1', 0, false, 511);
  try {
    const measured = await runSuite(
      [
        { name: 'create', fn: () => native.close(native.tcpListen(4, '127.0.0.1', 0, false, 511)) },
        {
          name: 'node-net',
          defer: true,
          fn(deferred) {
            const server = createServer().listen({ host: '127.0.0.1', port: 0, backlog: 511 }, () => server.close(() => deferred.resolve()));
          },
        },
        { name: 'socket-info', fn: () => native.socketInfo(listener) },
      ],
      { maxTime },
    );
    results.add('listener.create.ops', measured.create.hz, 'op/s', { baseline: 'listener.create.node-net.ops' });
    results.add('listener.create.node-net.ops', measured['node-net'].hz, 'op/s');
    results.add('introspection.socket-info.ops', measured['socket-info'].hz, 'op/s');
  } finally {
    native.close(listener);
  }
  printFigures('listener creation (socket, bind, listen, close) and introspection', results, since);
}
