// The Channel's own limits: a peer that never reads is cut off rather than
// queueing our records without bound.

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
