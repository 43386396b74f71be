// Whatever reaches a serving generation's control socket (garbage, oversized
// records, unexpected fds, wrong versions, a second child, a peer running as
// another uid) gets a clear answer and costs the generation nothing: it
// keeps serving every connection, and its fd count does not move.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { hotRestartVersion } from '../../src/options';
import { test } from 'node:test';
import * as native from '../../src/binding';
import { Channel } from '../../src/channel/channel';
import { controlAddress } from '../../src/channel/address';
import { PROTOCOL_VERSION, type Message } from '../../src/protocol/messages';
import { fdCount, fdCountReaching, load, ROOT, settledFdCount, startGeneration, uniqueSocketPath } from '../support/processes';
import { freePort, sleep, waitFor } from '../support/wait';
import { assertCounterSeesLoss } from '../support/control';

/** A raw client of the control socket: send any bytes, read the answers. */
class RawPeer {
  readonly records: Message[] = [];
  closed = false;
  private readonly channel: Channel;

  constructor(socketPath: string) {
    const address = controlAddress(socketPath, 0, 0);
    this.channel = new Channel(native.unixConnect(address.path, address.abstract));
    this.channel.on('message', (data, fds) => {
      fds.forEach((fd) => native.close(fd));
      this.records.push(JSON.parse(data.toString()) as Message);
    });
    this.channel.on('close', () => (this.closed = true));
  }

  /** Straight to the socket: this peer may send what a Channel would refuse to. */
  send(data: Buffer | object, fds: number[] = []): void {
    assert.ok(native.sendMessage(this.channel.fd, Buffer.isBuffer(data) ? data : Buffer.from(JSON.stringify(data)), fds));
  }

  /** Sends every record as fast as the socket takes them (a full queue is waited out, not an error). */
  async flood(records: Buffer[]): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (let sent = 0; sent < records.length; ) {
      if (native.sendMessage(this.channel.fd, records[sent], [])) sent++;
      else await sleep(1);
      assert.ok(Date.now() < deadline, `only ${sent} of ${records.length} records sent`);
    }
  }

  async next(): Promise<Message> {
    await waitFor(() => this.records.length > 0, { timeoutMs: 2000, what: 'an answer from the generation' });
    return this.records.shift()!;
  }

  async waitClosed(): Promise<void> {
    await waitFor(() => this.closed, { timeoutMs: 2000, what: 'the generation closing the connection' });
  }

  close(): void {
    this.channel.close();
  }
}

const hello = (extra: object = {}) => ({ type: 'hello', protocol: PROTOCOL_VERSION, hotRestartVersion: hotRestartVersion(), epoch: 1, pid: process.pid, ...extra });

test('bad input on the control socket gets clear errors and loses nothing', async (t) => {
  await assertCounterSeesLoss(); // control: the same counter does see a loss
  const port = await freePort();
  const socketPath = uniqueSocketPath('input');
  const generation = startGeneration(t, { TEST_PORT: port, BATON_SOCKET_PATH: socketPath, BATON_RESTART_EPOCH: 0 });
  await generation.waitFor((l) => l.event === 'serving', { timeoutMs: 15_000, what: 'serving' });
  const fdsBefore = await settledFdCount(generation.pid);
  const traffic = load(t, port, { concurrency: 8, durationMs: 30_000 });

  const peer = new RawPeer(socketPath);
  peer.send(Buffer.from('not json at all'));
  assert.deepEqual(await peer.next(), { type: 'error', code: 'BATON_PROTOCOL', message: 'record is not JSON (15 bytes)' });
  peer.send(Buffer.alloc(100_000, 0x7b));
  assert.match(((await peer.next()) as { message: string }).message, /over 65536 bytes/);
  // A record just under the limit whose error would quote it whole: the answer quotes an excerpt.
  peer.send({ type: 'a'.repeat(65_000) });
  assert.equal(((await peer.next()) as { message: string }).message, `unrecognized message type "${'a'.repeat(39)}...`);
  peer.send({ type: 'launchMissiles', id: 4 });
  assert.deepEqual(await peer.next(), { type: 'error', re: 4, code: 'BATON_PROTOCOL', message: 'unrecognized message type "launchMissiles"' });
  // A request before hello is refused as out of order; fds on it are closed by the generation.
  const extra = native.tcpListen(4, '127.0.0.1', 0, false, 8);
  peer.send({ type: 'drain', id: 5 }, [extra, extra]);
  assert.match(((await peer.next()) as { message: string }).message, /drain record came with 2 fds, expected 0/);
  native.close(extra);
  peer.send({ type: 'getSockets', id: 6, listeners: [], workers: 1, surplus: 'drain' });
  assert.match(((await peer.next()) as { message: string }).message, /getSockets is not expected while the parent is handshaking/);

  // While this peer holds the handshake, a second would-be child is refused.
  const second = new RawPeer(socketPath);
  const busy = (await second.next()) as { type: string; code: string; message: string };
  assert.equal(busy.type, 'refused');
  assert.equal(busy.code, 'BATON_PARENT_BUSY');
  await second.waitClosed();

  // A wrong protocol version is refused and the connection closed.
  peer.send(hello({ protocol: 99 }));
  const refused = (await peer.next()) as { type: string; code: string; message: string };
  assert.equal(refused.type, 'refused');
  assert.equal(refused.code, 'BATON_VERSION_MISMATCH');
  assert.match(refused.message, new RegExp(`protocol 99, this generation speaks ${PROTOCOL_VERSION}`));
  await peer.waitClosed();

  // A child that says hello and vanishes.
  const vanishing = new RawPeer(socketPath);
  vanishing.send(hello());
  assert.equal((await vanishing.next()).type, 'welcome');
  vanishing.close();
  // A child that has us drain without taking a socket, then goes: we stop accepting and serve again;
  // the connections that came meanwhile waited in our queues.
  const greedy = new RawPeer(socketPath);
  greedy.send(hello());
  assert.equal((await greedy.next()).type, 'welcome');
  greedy.send({ type: 'drain', id: 1 });
  assert.equal((await greedy.next()).type, 'ack');
  await sleep(200);
  greedy.close();
  await generation.waitFor((l) => l.machine === 'parent' && l.from === 'draining' && l.to === 'serving', { timeoutMs: 5000, what: 'serving again' });

  await sleep(300);
  traffic.stop();
  const result = await traffic.done;
  assert.ok(result.attempted > 100);
  assert.equal(result.lost, 0, JSON.stringify(result.errors));
  assert.equal(await fdCountReaching(generation.pid, fdsBefore), fdsBefore, 'fds of the generation after all of it');
});

test('a flood of malformed records is logged in a few lines that count it right, and costs the generation nothing', async (t) => {
  const port = await freePort();
  const socketPath = uniqueSocketPath('flood');
  // A handshake timeout longer than the flood: the peer stays the child being handshaken, sending junk.
  const generation = startGeneration(t, { TEST_PORT: port, BATON_SOCKET_PATH: socketPath, BATON_RESTART_EPOCH: 0, BATON_HANDSHAKE_TIMEOUT_MS: 60_000 });
  await generation.waitFor((l) => l.event === 'serving', { timeoutMs: 15_000, what: 'serving' });
  await sleep(200);
  const fdsBefore = fdCount(generation.pid);
  const traffic = load(t, port, { concurrency: 8, durationMs: 30_000 });

  const RECORDS = 5000;
  const peer = new RawPeer(socketPath);
  await peer.flood(Array.from({ length: RECORDS }, (_, i) => (i % 5 === 0 ? Buffer.from(`junk ${i}`) : Buffer.from(JSON.stringify({ type: `bogus${i}` })))));
  for (let i = 0; i < 500 && peer.records.length < RECORDS; i++) await sleep(20);
  assert.equal(peer.records.length, RECORDS, 'every record answered');
  assert.ok(peer.records.every((r) => r.type === 'error'));
  peer.close();

  await sleep(300);
  traffic.stop();
  const result = await traffic.done;
  assert.ok(result.attempted > 100);
  assert.equal(result.lost, 0, JSON.stringify(result.errors));
  assert.equal(fdCount(generation.pid), fdsBefore, 'fds of the generation after the flood');

  // What is held back is counted in a summary every 10 s, and at termination.
  generation.kill('SIGTERM');
  await generation.exited;
  const warnings = generation.lines.filter((l) => l.event === 'warning').map((l) => String(l.message));
  const full = warnings.filter((m) => m.startsWith(`child pid ${process.pid}: `));
  const summaries = warnings.filter((m) => m.startsWith('control socket: '));
  assert.deepEqual(full, [
    `child pid ${process.pid}: record is not JSON (6 bytes)`,
    `child pid ${process.pid}: unrecognized message type "bogus1"`,
    `child pid ${process.pid}: unrecognized message type "bogus2"`,
    `child pid ${process.pid}: unrecognized message type "bogus3"`,
    `child pid ${process.pid}: unrecognized message type "bogus4"`,
  ]);
  assert.equal(warnings.length, full.length + summaries.length, warnings.join('\n'));
  assert.ok(summaries.length >= 1 && summaries.length <= 4, summaries.join('\n'));
  const counted = (reason: string) =>
    summaries.reduce((sum, line) => sum + Number(line.match(new RegExp(`(\\d+) from pid ${process.pid}: child pid N: ${reason}`))?.[1] ?? 0), 0);
  assert.equal(counted('record is not JSON \\(N bytes\\)'), RECORDS / 5 - 1);
  assert.equal(counted('unrecognized message type "…"'), (RECORDS * 4) / 5 - 4);
  assert.equal(summaries.reduce((sum, line) => sum + Number(line.match(/^control socket: (\d+) more warnings/)?.[1]), 0), RECORDS - 5);
});

test('a peer running as another uid is refused (run as nobody when the suite runs as root)', async (t) => {
  if (process.getuid!() !== 0) return t.skip('needs root to start a process as another uid');
  const port = await freePort();
  const socketPath = uniqueSocketPath('uid');
  const generation = startGeneration(t, { TEST_PORT: port, BATON_SOCKET_PATH: socketPath, BATON_RESTART_EPOCH: 0 });
  await generation.waitFor((l) => l.event === 'serving', { timeoutMs: 15_000, what: 'serving' });

  const address = controlAddress(socketPath, 0, 0);
  const script = `
    const native = require(${JSON.stringify(`${ROOT}/dist/src/binding.js`)});
    const fd = native.unixConnect(${JSON.stringify(address.path)}, true);
    const deadline = Date.now() + 3000;
    (function poll() {
      const record = native.receiveMessage(fd, 65536, 0);
      if (record) return console.log(record.data.toString());
      if (Date.now() > deadline) return console.log('{"type":"none"}');
      setTimeout(poll, 20);
    })();`;
  const run = spawnSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 10_000 });
  if (/EACCES|permission denied/i.test(run.stderr)) return t.skip(`uid 65534 cannot read the build here: ${run.stderr.split('\n')[0]}`);
  const answer = JSON.parse(run.stdout.trim()) as { type: string; code: string; message: string };
  assert.equal(answer.type, 'refused', run.stderr);
  assert.equal(answer.code, 'BATON_PEER_REFUSED');
  assert.match(answer.message, /runs as uid 65534; generation 0 accepts only uid 0/);
  const traffic = load(t, port, { concurrency: 4, durationMs: 300 });
  assert.equal((await traffic.done).lost, 0);
});
