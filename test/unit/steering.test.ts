// What the kernel does with our BPF programs and shutdown(), checked on real
// SO_REUSEPORT groups on loopback: the facts the worker-count handoff rests on.

import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { after, describe, test } from 'node:test';
import * as native from '../../src/binding';
import type { Family } from '../../src/binding';
import { refuseNewHandshakes, steerTo, steerToFirst } from '../../src/listeners/steering';
import { sleep, waitFor } from '../support/wait';

const open: number[] = [];
after(() => open.splice(0).forEach((fd) => native.close(fd)));

const hosts: Array<[Family, string]> = [
  [4, '127.0.0.1'],
  [6, '::1'],
];

/** A group of `count` listeners (or UDP sockets) on a free port, in listen (bind) order. */
function group(protocol: 'tcp' | 'udp', family: Family, host: string, count: number): { port: number; fds: number[] } {
  const first = protocol === 'tcp' ? native.tcpListen(family, host, 0, false, 511) : native.udpBind(family, host, 0, false);
  const port = native.socketInfo(first).port;
  const fds = [first];
  for (let i = 1; i < count; i++) fds.push(protocol === 'tcp' ? native.tcpListen(family, host, port, false, 511) : native.udpBind(family, host, port, false));
  open.push(...fds);
  return { port, fds };
}

const connections = (host: string, port: number, count: number) =>
  Promise.all(
    Array.from({ length: count }, () => new Promise<void>((done, fail) => connect(port, host, function (this: import('node:net').Socket) {
      this.destroy();
      done();
    }).on('error', fail))),
  );

async function datagrams(family: Family, host: string, port: number, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const socket = createSocket(family === 4 ? 'udp4' : 'udp6');
    await new Promise<void>((done) => socket.send('x', port, host, () => done()));
    socket.close();
  }
  await sleep(50); // time for a stray datagram to reach a queue it should not
}

const acceptQueues = (fds: number[]) => fds.map((fd) => native.socketInfo(fd).acceptQueue);
const byteQueues = (fds: number[]) => fds.map((fd) => native.socketInfo(fd).receiveQueueBytes);

function acceptAll(fds: number[]): void {
  for (const fd of fds) {
    if (!native.socketInfo(fd).listening) continue;
    for (let c = native.accept(fd); c >= 0; c = native.accept(fd)) native.close(c);
  }
}

describe('steering', () => {
  for (const [family, host] of hosts) {
    test(`IPv${family} TCP: steerToFirst(n) sends every new connection to the first n sockets, spread over them`, async () => {
      const { port, fds } = group('tcp', family, host, 4);
      for (const n of [1, 2, 3]) {
        native.attachBpf(fds[0], 'reuseport', steerToFirst(n));
        await connections(host, port, 60 * n);
        const queues = acceptQueues(fds);
        assert.deepEqual(queues.slice(n), Array(4 - n).fill(0), `nothing past the first ${n}: ${queues}`);
        assert.ok(queues.slice(0, n).every((q) => q >= 15), `each of the first ${n} gets a share: ${queues}`);
        acceptAll(fds);
      }
      // Detached: the kernel's hash uses every socket again.
      native.detachBpf(fds[0], 'reuseport');
      await connections(host, port, 120);
      assert.ok(acceptQueues(fds).every((q) => q > 0));
      acceptAll(fds);
      assert.throws(() => native.detachBpf(fds[0], 'reuseport'), { code: 'ENOENT' });
    });

    test(`IPv${family} UDP: steerToFirst(n) keeps datagrams off the rest`, async () => {
      const { port, fds } = group('udp', family, host, 4);
      native.attachBpf(fds[0], 'reuseport', steerToFirst(2));
      await datagrams(family, host, port, 40);
      const queues = byteQueues(fds);
      assert.deepEqual(queues.slice(2), [0, 0]);
      assert.ok(queues[0] > 0 && queues[1] > 0, `${queues}`);
    });
  }

  test('a group is in listen order; a socket shut down leaves it at once and the last one takes its place', async () => {
    const { port, fds } = group('tcp', 4, '127.0.0.1', 4);
    const positionOf = async (k: number) => {
      native.attachBpf(fds[0], 'reuseport', steerTo(k));
      await connections('127.0.0.1', port, 1);
      const queues = acceptQueues(fds);
      acceptAll(fds);
      return queues.indexOf(1);
    };
    for (const k of [0, 1, 2, 3]) assert.equal(await positionOf(k), k, `position ${k} is socket ${k}`);
    // Retiring the highest first keeps every other position where it was.
    native.shutdown(fds[3]);
    assert.equal(native.socketInfo(fds[3]).listening, false);
    for (const k of [0, 1, 2]) assert.equal(await positionOf(k), k);
    // Shutting down a middle one moves the last into its place: why retirement goes from the top.
    native.shutdown(fds[1]);
    assert.equal(await positionOf(1), 2);
    // A socket shut down can listen again: it joins at the end (a parent resuming after its child died).
    native.listen(fds[3], 511);
    assert.equal(await positionOf(2), 3);
    assert.throws(() => native.shutdown(fds[1]), { code: 'ENOTCONN' });
  });

  test('refuseNewHandshakes: a new connection is not accepted while the filter is on; the retried SYN is once it is off', async () => {
    const { port, fds } = group('tcp', 4, '127.0.0.1', 1);
    native.attachBpf(fds[0], 'socket', refuseNewHandshakes());
    let connected = false;
    const socket = connect(port, '127.0.0.1', () => (connected = true));
    socket.on('error', () => undefined);
    await sleep(300);
    assert.equal(connected, false, 'the SYN was dropped');
    assert.equal(native.socketInfo(fds[0]).acceptQueue, 0);
    native.detachBpf(fds[0], 'socket');
    await waitFor(() => connected, { timeoutMs: 3000, what: 'the retried SYN accepted (after 1 s)' });
    assert.equal(connected, true);
    socket.destroy();
    acceptAll(fds);
  });

  test('attachBpf checks the program before it reaches the addon', () => {
    const [fd] = group('tcp', 4, '127.0.0.1', 1).fds;
    for (const bad of [[], [1, 2, 3], [0x10000, 0, 0, 0], [6, 256, 0, 0], [6, 0, 0, 2 ** 32], Array(4 * 4097).fill(0), Object.assign(new Array<number>(4), { 0: 6, 1: 0, 2: 0 })]) {
      assert.throws(() => native.attachBpf(fd, 'reuseport', bad), { code: 'BATON_INVALID_ARGUMENT' });
    }
    assert.throws(() => native.attachBpf(fd, 'xdp' as 'socket', steerTo(0)), { code: 'BATON_INVALID_ARGUMENT' });
    assert.throws(() => native.detachBpf(-1, 'socket'), { code: 'BATON_INVALID_ARGUMENT' });
  });
});
