// The Channel's queue: a peer that never reads is cut off rather than
// queueing our records without bound, and end() sends what is queued first.
// An empty record is refused, not taken for EOF; a server out of fds pauses
// accepting instead of spinning.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import * as native from '../../src/binding';
import { Channel } from '../../src/channel/channel';
import { controlAddress } from '../../src/channel/address';
import { ControlServer } from '../../src/channel/server';
import { Connection } from '../../src/channel/connection';
import { waitFor } from '../support/wait';
import { ProtocolError, type Message } from '../../src/protocol/messages';

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

test('a record over the limits is refused with BATON_PROTOCOL before anything is sent', (t) => {
  const address = controlAddress(`@baton-unit-channel-limits-${process.pid}`, 0, 0);
  const server = ControlServer.listen(address, 0o600);
  const sender = new Channel(native.unixConnect(address.path, address.abstract));
  t.after(() => [server, sender].forEach((c) => c.close()));
  assert.throws(() => sender.send(Buffer.alloc(64 * 1024 + 1)), { code: 'BATON_PROTOCOL', message: /65537 bytes and 0 fds is over the limit/ });
  const fds = Array.from({ length: native.SCM_MAX_FD + 1 }, () => 0);
  assert.throws(() => sender.send(Buffer.from('{}'), fds), { code: 'BATON_PROTOCOL', message: new RegExp(`${native.SCM_MAX_FD + 1} fds is over the limit of 65536 bytes and 253 fds`) });
  assert.equal(sender.isClosed, false, 'the channel itself is fine');
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
  await waitFor(() => eof, { timeoutMs: 2000, what: 'the receiver seeing the end' });
  assert.ok(sender.isClosed);
  assert.equal(received, records, 'every record arrived before the close');
  assert.ok(eof);
});

test('an empty record is refused as a protocol error, the channel stays open, and EOF still closes it', async (t) => {
  const address = controlAddress(`@baton-unit-channel-empty-${process.pid}`, 0, 0);
  const listener = native.unixListen(address.path, address.abstract, 0o600, 4);
  const peer = native.unixConnect(address.path, address.abstract);
  const ours = new Connection(new Channel(native.accept(listener)));
  native.close(listener);
  t.after(() => ours.close());
  const messages: Message[] = [];
  const refused: ProtocolError[] = [];
  let closed = false;
  ours.on('message', (message) => messages.push(message));
  ours.on('protocolError', (error) => refused.push(error));
  ours.on('close', () => (closed = true));

  const hello: Message = { type: 'hello', protocol: 1, hotRestartVersion: 'x', epoch: 1, pid: process.pid };
  assert.ok(native.sendMessage(peer, Buffer.alloc(0), []));
  assert.ok(native.sendMessage(peer, Buffer.from(JSON.stringify(hello)), []));
  await waitFor(() => messages.length > 0, { timeoutMs: 1000, what: 'the record after the empty one' });
  assert.deepEqual(messages, [hello], 'the record after the empty one arrived');
  assert.equal(refused.length, 1);
  assert.match(refused[0].message, /empty/);
  assert.equal(closed, false);
  const answer = native.receiveMessage(peer, 65536, 0)!;
  assert.deepEqual(JSON.parse(answer.data.toString()), { type: 'error', code: 'BATON_PROTOCOL', message: refused[0].message });

  native.close(peer);
  await waitFor(() => closed, { timeoutMs: 1000, what: 'the channel closing at EOF' });
  assert.ok(closed, 'EOF closes the channel');
  assert.equal(refused.length, 1, 'EOF is not an empty record');
});

test('a server out of fds pauses accepting rather than spinning, and accepts once an fd is free', async (t) => {
  const prlimit = await promisify(execFile)('prlimit', ['--version']).catch(() => undefined);
  if (!prlimit) return t.skip('prlimit (util-linux) is not installed');
  // In a child with a small fd table, filled up but for the one fd the client takes.
  const script = `
    const native = require(${JSON.stringify(join(__dirname, '../../src/binding'))});
    const { ControlServer } = require(${JSON.stringify(join(__dirname, '../../src/channel/server'))});
    const name = 'baton-unit-emfile-' + process.pid;
    const server = ControlServer.listen({ path: name, abstract: true, display: '@' + name }, 0o600);
    let errors = 0, accepted = 0, message = '';
    server.on('error', (error) => { errors++; message = error.message; });
    server.on('connection', (channel) => { accepted++; channel.close(); });
    const held = [];
    try { for (;;) held.push(native.dup(0)); } catch {}
    native.close(held.pop());
    native.unixConnect(name, true);
    setTimeout(() => {
      const during = errors;
      native.close(held.pop());
      const giveUpAt = Date.now() + 5000;
      (function report() {
        if (accepted === 0 && Date.now() < giveUpAt) return setTimeout(report, 10);
        console.log(JSON.stringify({ during, accepted, message }));
        process.exit(0);
      })();
    }, 1000);
  `;
  const { stdout } = await promisify(execFile)('prlimit', ['--nofile=128:128', process.execPath, '-e', script], { timeout: 10_000 });
  const { during, accepted, message } = JSON.parse(stdout) as { during: number; accepted: number; message: string };
  assert.ok(during > 0 && during < 20, `${during} errors in 1 s`);
  assert.match(message, /EMFILE.*accepting resumes in \d+ ms/);
  assert.equal(accepted, 1, 'accepted once an fd was free');
});
