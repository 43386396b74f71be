// The graceful shutdown of RFC 9113 §6.8, seen from the wire: the GOAWAY
// frame's bytes, and a raw client that sends a stream after the first GOAWAY
// reached it (one that was on its way) and still gets its answer.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { test, type TestContext } from 'node:test';
import { DrainController } from '../../src/drain/controller';
import { drainHttp2, goawayFrame } from '../../src/drain/http2';
import { waitFor } from '../support/wait';

test('goawayFrame: 9-byte header (length 8, type 0x7, no flags, stream 0), last stream id, error code', () => {
  assert.equal(goawayFrame(2 ** 31 - 1, 0).toString('hex'), '000008070000000000' + '7fffffff' + '00000000');
  assert.equal(goawayFrame(5, 2).toString('hex'), '000008070000000000' + '00000005' + '00000002');
  assert.equal(goawayFrame(0, 2 ** 32 - 1).toString('hex'), '000008070000000000' + '00000000' + 'ffffffff');
  assert.throws(() => goawayFrame(2 ** 31, 0), /lastStreamId must be an integer in 0\.\.2147483647/);
  assert.throws(() => goawayFrame(-1, 0), /lastStreamId/);
  assert.throws(() => goawayFrame(1, 2 ** 32), /errorCode/);
});

interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

const [HEADERS, SETTINGS, PING, GOAWAY] = [0x1, 0x4, 0x6, 0x7];
const ACK = 0x1;

function frame(type: number, flags: number, stream: number, payload: Buffer<ArrayBufferLike> = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(stream, 5);
  return Buffer.concat([header, payload]);
}

/** GET / (HPACK: :method GET, :scheme http, :path / from the static table; :authority 'a' not indexed), END_STREAM | END_HEADERS. */
const get = (stream: number) => frame(HEADERS, 0x5, stream, Buffer.from([0x82, 0x86, 0x84, 0x01, 0x01, 0x61]));

/** A client that speaks HTTP/2 frame by frame: it answers SETTINGS, and PING only when told to. */
function rawClient(port: number) {
  const socket = net.connect(port, '127.0.0.1');
  const frames: Frame[] = [];
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 9 && pending.length >= 9 + pending.readUIntBE(0, 3)) {
      const length = pending.readUIntBE(0, 3);
      const f = { type: pending[3], flags: pending[4], stream: pending.readUInt32BE(5) & 0x7fffffff, payload: pending.subarray(9, 9 + length) };
      pending = pending.subarray(9 + length);
      frames.push(f);
      if (f.type === SETTINGS && !(f.flags & ACK)) socket.write(frame(SETTINGS, ACK, 0));
    }
  });
  socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(SETTINGS, 0, 0)]));
  const goaways = () => frames.filter((f) => f.type === GOAWAY).map((f) => ({ last: f.payload.readUInt32BE(0) & 0x7fffffff, code: f.payload.readUInt32BE(4) }));
  const answered = (stream: number) => frames.some((f) => f.type === HEADERS && f.stream === stream);
  return { socket, frames, goaways, answered };
}

/** A drained http2 server and a raw client whose stream 1 was answered; the drain has just started. */
async function draining(t: TestContext) {
  const controller = new DrainController({ strategy: 'immediate' });
  const server = http2.createServer((_req, res) => res.end('ok'));
  drainHttp2(server, controller, { checkMs: 50 });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = rawClient((server.address() as net.AddressInfo).port);
  t.after(() => {
    controller.stop();
    client.socket.destroy();
    server.close();
  });
  client.socket.write(get(1));
  await waitFor(() => client.answered(1), { what: 'stream 1 answered' });
  controller.start(10_000);
  return client;
}

test('http2 drain: a stream sent after the first GOAWAY, before the PING is answered, is served; then the final GOAWAY names it', async (t) => {
  const client = await draining(t);
  await waitFor(() => client.goaways().length === 1 && client.frames.some((f) => f.type === PING && !(f.flags & ACK)), { what: 'the first GOAWAY and a PING' });
  assert.deepEqual(client.goaways(), [{ last: 2 ** 31 - 1, code: 0 }], 'the first GOAWAY refuses no stream');

  // A stream the client had sent before the GOAWAY reached it, then the PING's answer: one round trip.
  const ping = client.frames.find((f) => f.type === PING)!;
  client.socket.write(Buffer.concat([get(3), frame(PING, ACK, 0, ping.payload)]));
  await waitFor(() => client.answered(3), { what: 'stream 3 answered' });
  await waitFor(() => client.goaways().length >= 2, { what: 'the final GOAWAY' });
  // Node may repeat the final GOAWAY as it destroys the session.
  assert.deepEqual(client.goaways()[1], { last: 3, code: 0 }, 'the final GOAWAY names the last stream taken');
});

test('http2 drain: with no answer to its PING, a session gets its final GOAWAY at the PING timeout', async (t) => {
  const client = await draining(t);
  await waitFor(() => client.goaways().length >= 2, { what: 'both GOAWAYs' });
  assert.deepEqual(client.goaways().slice(0, 2), [{ last: 2 ** 31 - 1, code: 0 }, { last: 1, code: 0 }]);
});
