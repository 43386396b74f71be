// The Channel's queue: a peer that never reads is cut off rather than
// queueing our records without bound, and end() sends what is queued first.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as native from '../../src/binding';
import { Channel } from '../../src/channel/channel';
import { controlAddress } from '../../src/channel/address';
import { ControlServer } from '../../src/channel/server';

test('records for a peer that does not read: cut off with BATON_PROTOCOL after 1024 queued', async (t) => {
  const address = controlAddress(`@baton-unit-channel-${process.pid}`, 0, 0);
  const server = ControlServer.listen(address, 0o600);
  const accepted: Channel[] = [];
  server.on('connection', (channel) => accepted.push(channel)); // never read from
  const sender = new Channel(native.unixConnect(address.path, address.abstract));
  t.after(() => [server, sender, ...accepted].forEach((c) => c.close()));

  let closedWith: Error | undefined;
  sender.on('close', (error) => (closedWith = error));
  const record = Buffer.alloc(60_000, 0x20);
  let sent = 0;
  while (!sender.isClosed && sent < 5000) {
    sender.send(record);
    sent++;
  }
  assert.ok(sender.isClosed, 'cut off');
  assert.ok(sent > 1024 && sent < 1100, `cut off after ${sent} records (the socket buffer holds a few)`);
  assert.equal((closedWith as { code?: string }).code, 'BATON_PROTOCOL');
  assert.match(closedWith!.message, /has not read 1024 records/);
});

test('end() closes once the queued records are out, so a last refusal is never dropped', async (t) => {
  const address = controlAddress(`@baton-unit-channel-end-${process.pid}`, 0, 0);
  const server = ControlServer.listen(address, 0o600);
  let receiver: Channel | undefined;
  let received = 0;
  let eof = false;
  server.on('connection', (channel) => {
    receiver = channel;
    channel.on('message', () => received++).on('close', () => (eof = true));
  });
  const sender = new Channel(native.unixConnect(address.path, address.abstract));
  t.after(() => [server, sender, receiver].forEach((c) => c?.close()));
  // Synchronously, so that the socket buffer fills and records wait in the queue.
  const records = 40;
  for (let i = 0; i < records; i++) sender.send(Buffer.alloc(60_000, 0x20));
  sender.end();
  assert.equal(sender.isClosed, false, 'records still queued: not closed yet');
  for (let i = 0; i < 200 && !eof; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(sender.isClosed);
  assert.equal(received, records, 'every record arrived before the close');
  assert.ok(eof);
});
