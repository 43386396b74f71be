// fd passing: one SCM_RIGHTS record sent and received over a connected
// SEQPACKET pair, the received fds closed (the receiver owns them), for 1,
// 16 and 253 (SCM_MAX_FD) fds a record. The record is the real `sockets`
// record for that many sockets of one listener, checked by the protocol's
// decode before it is timed.

import * as native from '../../dist/src/binding.js';
import { decode, encode, MAX_MESSAGE_BYTES, socketsRecords } from '../../dist/src/protocol/messages.js';
import { printFigures } from '../report.mjs';
import { runSuite } from './suite.mjs';

const SIZES = [1, 16, native.SCM_MAX_FD];

/** Both ends of a connected SEQPACKET pair, over an abstract name nobody else uses. */
function seqpacketPair() {
  const name = `baton-bench-${process.pid}-fd-passing`;
  const server = native.unixListen(name, true, 0o600, 1);
  try {
    const sender = native.unixConnect(name, true);
    return { sender, receiver: native.accept(server) };
  } finally {
    native.close(server);
  }
}

export async function fdPassing(results, { maxTime }) {
  const since = results.entries.length;
  const { sender, receiver } = seqpacketPair();
  const listener = native.tcpListen(4, '127.0.0.1', 0, false, 8);
  const { port } = native.socketInfo(listener);
  try {
    const cases = SIZES.map((count) => {
      const fds = Array(count).fill(listener);
      const refs = fds.map((_, index) => ({ listener: 0, index }));
      const held = [{ protocol: 'tcp', host: '127.0.0.1', port, ipv6Only: false, sockets: count }];
      const data = encode(socketsRecords(1, refs, held)[0]);
      decode(data, count); // throws if the record is not one a child would take
      return {
        name: String(count),
        fn() {
          if (!native.sendMessage(sender, data, fds)) throw new Error('socket buffer full');
          for (const fd of native.receiveMessage(receiver, MAX_MESSAGE_BYTES + 1, native.SCM_MAX_FD).fds) native.close(fd);
        },
      };
    });
    const measured = await runSuite(cases, { maxTime });
    for (const count of SIZES) {
      const { hz } = measured[count];
      results.add(`fd-passing.${count}.messages`, hz, 'msg/s');
      results.add(`fd-passing.${count}.fds`, hz * count, 'fd/s', count === 1 ? {} : { baseline: 'fd-passing.1.fds' });
    }
  } finally {
    for (const fd of [sender, receiver, listener]) native.close(fd);
  }
  printFigures('fd passing (send + receive + close, one SEQPACKET record)', results, since);
}
