// The control protocol's cost for the largest handoff the bench makes
// (64 listeners x 16 workers): the parent encodes the five `sockets`
// records of its answer, the child decodes and validates them.

import { decode, encode, socketsRecords } from '../../dist/src/protocol/messages.js';
import { printFigures } from '../report.mjs';
import { runSuite } from './suite.mjs';

export async function protocol(results, { maxTime }) {
  const since = results.entries.length;
  const refs = Array.from({ length: 64 * 16 }, (_, i) => ({ listener: Math.floor(i / 16), index: i % 16 }));
  const held = Array.from({ length: 64 }, (_, i) => ({ protocol: 'tcp', host: '127.0.0.1', port: 20000 + i, ipv6Only: false, sockets: 16 }));
  const records = socketsRecords(1, refs, held);
  const encoded = records.map(encode);
  const measured = await runSuite(
    [
      { name: 'encode', fn: () => records.map(encode) },
      { name: 'decode', fn: () => encoded.map((data, i) => decode(data, records[i].sockets.length)) },
    ],
    { maxTime },
  );
  results.add('protocol.encode.64x16.ops', measured.encode.hz, 'op/s');
  results.add('protocol.decode.64x16.ops', measured.decode.hz, 'op/s');
  printFigures(`protocol, one 64x16 answer (${records.length} records, ${encoded.reduce((n, d) => n + d.length, 0)} bytes)`, results, since);
}
