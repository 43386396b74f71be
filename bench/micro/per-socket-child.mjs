// The baseline of the handoff bench: a child that takes its sockets the way
// Envoy's does (PassListenSocket), one request per listener x worker, each
// waiting for its reply before the next is sent. Same channel, same records,
// same parent as baton's batched child: only the batching differs (the
// parent, in handoff.mjs, plans each request as it plans the batched one and
// answers with the one socket asked).

import { once } from 'node:events';
import * as native from '../../dist/src/binding.js';
import { Channel } from '../../dist/src/channel/channel.js';
import { hotRestartVersion } from '../../dist/src/options.js';
import { Connection } from '../../dist/src/channel/connection.js';
import { PROTOCOL_VERSION } from '../../dist/src/protocol/messages.js';

const REQUEST_TIMEOUT_MS = 5000;

/** Connects and says hello as epoch 1, as baton's child does. */
async function connect(address) {
  const connection = new Connection(new Channel(native.unixConnect(address.path, address.abstract)));
  const welcome = once(connection, 'message');
  connection.send({ type: 'hello', protocol: PROTOCOL_VERSION, hotRestartVersion: hotRestartVersion(), epoch: 1, pid: process.pid });
  const [message] = await welcome;
  if (message.type !== 'welcome') throw new Error(`expected welcome, got ${message.type}`);
  return connection;
}

export async function perSocketHandoff(address, listeners, workers) {
  const connection = await connect(address);
  const fds = [];
  for (const listener of listeners) {
    for (const worker of workers) {
      const answer = await connection.request({ type: 'getSockets', listeners: [listener], workers: worker + 1, surplus: 'drain' }, REQUEST_TIMEOUT_MS);
      fds.push(...answer.fds);
    }
  }
  return { fds, leave: () => connection.close() };
}
