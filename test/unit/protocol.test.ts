import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  decode,
  encode,
  MAX_MESSAGE_BYTES,
  PROTOCOL_VERSION,
  ProtocolError,
  type RecordIds,
  socketsRecords,
  type Message,
} from '../../src/protocol/messages';
import { SCM_MAX_FD } from '../../src/binding';

const samples: Message[] = [
  { type: 'hello', protocol: PROTOCOL_VERSION, hotRestartVersion: 'baton.protocol1', epoch: 3, pid: 42 },
  { type: 'welcome', protocol: PROTOCOL_VERSION, hotRestartVersion: 'baton.protocol1.app', epoch: 2, pid: 41 },
  {
    type: 'getSockets',
    id: 1,
    listeners: [{ protocol: 'tcp', host: '127.0.0.1', port: 8080, ipv6Only: false }, { protocol: 'udp', host: '::1', port: 53, ipv6Only: true }],
    workers: 3,
    surplus: 'drain',
  },
  { type: 'drain', id: 2 },
  { type: 'terminate', id: 3 },
  { type: 'accepting', id: 4, accepting: false },
  { type: 'retired', id: 5, listener: { protocol: 'udp', host: '::1', port: 53 }, index: 7 },
  { type: 'getStats', id: 6 },
  { type: 'stats', re: 6, part: 0, parts: 2, snapshot: { format: 'baton.stats.snapshot/1', metrics: [] } },
  { type: 'stats', final: true, part: 1, parts: 2, snapshot: {} },
  { type: 'ack', re: 3 },
  { type: 'error', re: 1, code: 'BATON_PROTOCOL', message: 'no' },
  { type: 'error', code: 'BATON_PROTOCOL', message: 'unreadable' },
  { type: 'refused', code: 'BATON_VERSION_MISMATCH', message: 'old' },
];

function rejects(data: Buffer | string, fds: number, pattern: RegExp, ids: RecordIds = {}): void {
  assert.throws(
    () => decode(Buffer.isBuffer(data) ? data : Buffer.from(data), fds),
    (error: unknown) => {
      assert.ok(error instanceof ProtocolError, `expected ProtocolError, got ${error}`);
      assert.equal(error.code, 'BATON_PROTOCOL');
      assert.match(error.message, pattern);
      assert.equal(error.re, ids.re, 'the request the error answers');
      assert.equal(error.answers, ids.answers, 'the request of ours that fails');
      return true;
    },
  );
}

describe('protocol', () => {
  test('every message type survives encode and decode', () => {
    for (const message of samples) assert.deepEqual(decode(encode(message), 0), message);
    const [sockets] = socketsRecords(7, [{ listener: 0, index: 1 }], [{ protocol: 'tcp', host: '::', port: 80, ipv6Only: false, sockets: 2 }]);
    assert.deepEqual(decode(encode(sockets), 1), sockets);
  });

  test('malformed records are refused with a reason', () => {
    rejects('not json', 0, /not JSON/);
    rejects('[1,2]', 0, /not a JSON object/);
    rejects('null', 0, /not a JSON object/);
    rejects('{"type":"launch","id":5}', 0, /unrecognized message type "launch"/, { re: 5 });
    rejects('{"type":"__proto__"}', 0, /unrecognized/);
    rejects('{"type":"toString"}', 0, /unrecognized/);
    rejects('{"id":1}', 0, /unrecognized message type undefined/, { re: 1 });
    rejects('{"type":"drain"}', 0, /drain.id must be an integer/);
    rejects('{"type":"drain","id":-1}', 0, /drain.id/);
    rejects('{"type":"drain","id":1.5}', 0, /drain.id/);
    rejects('{"type":"accepting","id":6,"accepting":"no"}', 0, /accepting.accepting must be true or false/, { re: 6 });
    rejects(JSON.stringify({ type: 'x'.repeat(60_000) }), 0, /^unrecognized message type "x{39}\.\.\.$/);
    rejects('{"type":"hello","protocol":1,"hotRestartVersion":7,"epoch":1,"pid":1}', 0, /hotRestartVersion must be a string/);
    rejects('{"type":"hello","protocol":1,"hotRestartVersion":"v","epoch":1,"pid":0}', 0, /pid/);
    const get = (fields: object) => JSON.stringify({ type: 'getSockets', id: 4, listeners: [], workers: 1, surplus: 'drain', ...fields });
    const tcp = { protocol: 'tcp', host: '127.0.0.1', port: 1, ipv6Only: false };
    rejects(get({ listeners: [{ ...tcp, protocol: 'sctp' }] }), 0, /protocol must be 'tcp' or 'udp'/, { re: 4 });
    rejects(get({ listeners: [{ ...tcp, port: 70000 }] }), 0, /port/, { re: 4 });
    rejects(get({ listeners: [{ ...tcp, ipv6Only: 'yes' }] }), 0, /ipv6Only/, { re: 4 });
    rejects(get({ workers: 0 }), 0, /workers must be an integer in 1\.\.256/, { re: 4 });
    rejects(get({ workers: [0, 1] }), 0, /workers must be an integer/, { re: 4 });
    rejects(get({ surplus: 'keep' }), 0, /surplus must be one of drain, close/, { re: 4 });
    rejects(get({ listeners: {} }), 0, /listeners must be an array/, { re: 4 });
    rejects(get({ listeners: [{ ...tcp, sockets: 0 }] }), 0, /listeners\[0\]\.sockets must be 1\.\.256/, { re: 4 });
    rejects(JSON.stringify({ type: 'stats', re: 3, part: 0, parts: 1, snapshot: [] }), 0, /stats.snapshot must be an object/, { answers: 3 });
    rejects(JSON.stringify({ type: 'stats', re: 3, part: 1, parts: 1, snapshot: {} }), 0, /stats.part must be an integer in 0\.\.0/, { answers: 3 });
    rejects(JSON.stringify({ type: 'retired', id: 8, listener: { protocol: 'tcp', host: '::1' }, index: 0 }), 0, /retired.listener must have a host string and a port/, { re: 8 });
    rejects(JSON.stringify({ type: 'retired', id: 8, listener: { protocol: 'tcp', host: '::1', port: 1 }, index: 256 }), 0, /retired.index must be an integer in 0\.\.255/, { re: 8 });
    rejects(JSON.stringify({ type: 'sockets', re: 1, part: 2, parts: 2, sockets: [], held: [] }), 0, /part must be/, { answers: 1 });
    rejects(JSON.stringify({ type: 'sockets', re: 1, part: 0, parts: 1, sockets: [], held: [{ ...tcp, sockets: 0 }] }), 0, /held\[0\]\.sockets must be 1\.\.256/, { answers: 1 });
    rejects(JSON.stringify({ type: 'sockets', re: 1, part: 0, parts: 1, sockets: [{ listener: 0, worker: 0 }], held: [] }), 1, /socket index/, { answers: 1 });
    rejects(JSON.stringify({ type: 'error', code: 'x', message: 'y'.repeat(5000) }), 0, /message must be a string/);
  });

  test('fds are allowed only on sockets records, one per entry', () => {
    rejects(encode({ type: 'drain', id: 9 }), 1, /drain record came with 1 fds, expected 0/, { re: 9 });
    const [sockets] = socketsRecords(3, [{ listener: 0, index: 0 }, { listener: 0, index: 1 }], []);
    rejects(encode(sockets), 1, /came with 1 fds, expected 2/, { answers: 3 });
    rejects(encode(sockets), 3, /came with 3 fds, expected 2/, { answers: 3 });
  });

  test('oversized records are refused both ways', () => {
    rejects(Buffer.alloc(MAX_MESSAGE_BYTES + 1, 0x20), 0, /over the limit/);
    const huge = { type: 'error', code: 'x', message: 'y'.repeat(MAX_MESSAGE_BYTES) } as const;
    assert.throws(() => encode(huge), ProtocolError);
  });

  test('bounded arrays: too many listeners is refused', () => {
    const listeners = Array.from({ length: 257 }, (_, i) => ({ protocol: 'tcp', host: '127.0.0.1', port: i + 1, ipv6Only: false }));
    rejects(JSON.stringify({ type: 'getSockets', id: 1, listeners, workers: 1, surplus: 'drain' }), 0, /at most 256/, { re: 1 });
  });

  test('socketsRecords batches at most 253 fds a record, in order, and fits the size limit', () => {
    // The largest inventory there can be: 256 listeners on the longest IPv6 literals.
    const held = Array.from({ length: 256 }, (_, i) => ({
      protocol: 'udp' as const,
      host: 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255',
      port: 60000 + i,
      ipv6Only: true,
      sockets: 256,
    }));
    for (const count of [0, 1, 253, 254, 1024, 256 * 16]) {
      const refs = Array.from({ length: count }, (_, i) => ({ listener: Math.floor(i / 16) % 256, index: i % 16 }));
      const records = socketsRecords(5, refs, held);
      assert.equal(records.length, Math.max(1, Math.ceil(count / SCM_MAX_FD)));
      assert.deepEqual(records.flatMap((r) => r.sockets), refs);
      records.forEach((r, part) => {
        assert.equal(r.part, part);
        assert.equal(r.parts, records.length);
        assert.ok(r.sockets.length <= SCM_MAX_FD);
        assert.deepEqual(r.held, part === 0 ? held : []);
        assert.deepEqual(decode(encode(r), r.sockets.length), r);
      });
    }
  });
});
