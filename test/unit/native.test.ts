// The addon through its validated wrappers: sockets, the control channel's
// records and fds, datagrams, readiness, error shapes, and teardown in worker threads.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import { readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import * as native from '../../src/binding';
import { has, notifyReceiver } from '../support/notify-receiver';
import { sleep, waitFor } from '../support/wait';

const fdCount = () => readdirSync('/proc/self/fd').length;
const fdsAtStart = fdCount();
const O_CLOEXEC = 0o2000000;
const isCloexec = (fd: number) => (parseInt(/flags:\s+(\d+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1], 8) & O_CLOEXEC) !== 0;
const unique = () => `baton-native-${process.pid}-${Math.random().toString(36).slice(2)}`;

/** A connected SEQPACKET pair: [client, server side]. */
function pair(): [number, number, () => void] {
  const name = unique();
  const listener = native.unixListen(name, true, 0o600, 4);
  const client = native.unixConnect(name, true);
  const server = native.accept(listener);
  native.close(listener);
  return [client, server, () => [client, server].forEach(native.close)];
}

describe('listeners', () => {
  test('TCP over IPv4 and IPv6, reuseport, v6only, backlog, CLOEXEC', () => {
    const a = native.tcpListen(4, '127.0.0.1', 0, false, 128);
    const info = native.socketInfo(a);
    assert.deepEqual({ ...info, port: 0 }, { family: 4, type: 'stream', address: '127.0.0.1', port: 0, listening: true, reusePort: true, acceptQueue: 0, backlog: 128, receiveQueueBytes: 0 });
    assert.ok(info.port > 0);
    const b = native.tcpListen(4, '127.0.0.1', info.port, false, 16); // same group
    assert.equal(native.socketInfo(b).port, info.port);
    assert.ok(isCloexec(a) && isCloexec(b));
    const v6 = native.tcpListen(6, '::1', 0, true, 8);
    assert.equal(native.socketInfo(v6).family, 6);
    assert.equal(native.socketInfo(v6).address, '::1');
    [a, b, v6].forEach(native.close);
  });

  test('v6only decides whether an IPv6 wildcard listener also takes the IPv4 port', async () => {
    const listenV4 = (port: number) =>
      new Promise<net.Server>((resolve, reject) => {
        const server = net.createServer().once('error', reject);
        server.listen(port, '127.0.0.1', () => resolve(server));
      });
    const only = native.tcpListen(6, '::', 0, true, 8);
    const v4 = await listenV4(native.socketInfo(only).port); // no conflict: IPv6 only
    await new Promise((r) => v4.close(r));
    native.close(only);
    const dual = native.tcpListen(6, '::', 0, false, 8);
    await assert.rejects(listenV4(native.socketInfo(dual).port), { code: 'EADDRINUSE' });
    native.close(dual);
  });

  test('a bound TCP socket takes no connection until listen(), and then net serves it', async () => {
    const fd = native.tcpBind(4, '127.0.0.1', 0, false);
    const info = native.socketInfo(fd);
    assert.equal(info.listening, false);
    assert.equal(info.reusePort, true);
    const refused = net.connect(info.port, '127.0.0.1');
    await assert.rejects(new Promise((resolve, reject) => refused.once('connect', resolve).once('error', reject)), { code: 'ECONNREFUSED' });
    const server = net.createServer((socket) => socket.end('hello'));
    await new Promise<void>((resolve) => server.listen({ fd: native.dup(fd) }, 8, resolve));
    assert.equal(native.socketInfo(fd).listening, true);
    const answer = await new Promise<string>((resolve) => net.connect(info.port, '127.0.0.1').on('data', (d) => resolve(String(d))));
    assert.equal(answer, 'hello');
    await new Promise((r) => server.close(r));
    native.close(fd);
  });

  test('accept queue length is what the kernel holds', async () => {
    const fd = native.tcpListen(4, '127.0.0.1', 0, false, 64);
    const { port } = native.socketInfo(fd);
    const clients = Array.from({ length: 5 }, () => net.connect(port, '127.0.0.1'));
    await waitFor(() => native.socketInfo(fd).acceptQueue === 5);
    clients.forEach((c) => c.destroy());
    native.close(fd);
  });

  test('UDP: bound, reuseport, served by dgram bind({ fd })', async () => {
    const fd = native.udpBind(4, '127.0.0.1', 0, false);
    const info = native.socketInfo(fd);
    assert.equal(info.type, 'dgram');
    assert.equal(info.listening, false);
    assert.equal(info.reusePort, true);
    const socket = dgram.createSocket('udp4');
    const got = new Promise<string>((resolve) => socket.on('message', (m) => resolve(m.toString())));
    socket.bind({ fd: native.dup(fd) });
    const sender = dgram.createSocket('udp4');
    sender.send('ping', info.port, '127.0.0.1');
    assert.equal(await got, 'ping');
    socket.close();
    sender.close();
    native.close(fd);
  });

  test('syscall errors look like Node\'s; bad arguments never reach native code', async () => {
    const server = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const { port } = server.address() as net.AddressInfo;
    assert.throws(() => native.tcpListen(4, '127.0.0.1', port, false, 8), (e: NodeJS.ErrnoException) => {
      assert.equal(e.code, 'EADDRINUSE');
      assert.equal(e.syscall, 'bind');
      assert.equal(e.errno, -98);
      assert.equal(e.message, 'bind EADDRINUSE: address already in use');
      return true;
    });
    server.close();
    assert.throws(() => native.close(1_000_000), { code: 'EBADF', syscall: 'close' });
    for (const bad of [
      () => native.tcpListen(4, '::1', 80, false, 8),
      () => native.tcpListen(6, '127.0.0.1', 80, false, 8),
      () => native.tcpListen(4, '127.0.0.1', 70000, false, 8),
      () => native.tcpListen(4, '127.0.0.1', 80, false, 0),
      () => native.dup(-1),
      () => native.dup(1.5),
      () => native.unixListen('', true, 0o600, 1),
      () => native.unixListen('x'.repeat(108), false, 0o600, 1),
      () => native.unixListen('x', false, 0o1777, 1),
      () => native.sendMessage(0, 'text' as unknown as Buffer, []),
      () => native.sendMessage(0, Buffer.alloc(1), new Array(254).fill(0)),
      () => native.sendMessage(0, Buffer.alloc(1), new Array<number>(2)), // holes are checked too
      () => native.receiveMessage(0, 0, 0),
      () => native.sendDatagram('', true, Buffer.alloc(1)),
      () => native.sendDatagram('x'.repeat(108), false, Buffer.alloc(1)),
      () => native.sendDatagram('/tmp/a\0b', false, Buffer.alloc(1)),
      () => native.sendDatagram('/tmp/x', 'yes' as unknown as boolean, Buffer.alloc(1)),
      () => native.sendDatagram('/tmp/x', false, 'READY=1' as unknown as Buffer),
      () => new native.Poll(0, undefined as unknown as () => void),
    ]) {
      assert.throws(bad, { code: 'BATON_INVALID_ARGUMENT' });
    }
  });
});

describe('control channel', () => {
  test('filesystem socket gets its mode before anyone can connect; abstract has no file', () => {
    const path = join(tmpdir(), unique());
    const fd = native.unixListen(path, false, 0o600, 4);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(native.socketInfo(fd).address, path);
    native.close(fd);
    unlinkSync(path);
    const name = unique();
    const abstract = native.unixListen(name, true, 0o600, 4);
    assert.equal(native.socketInfo(abstract).address, `@${name}`);
    assert.equal(native.socketInfo(abstract).type, 'seqpacket');
    assert.throws(() => native.unixListen(name, true, 0o600, 4), { code: 'EADDRINUSE' });
    native.close(abstract);
    assert.throws(() => native.unixConnect(name, true), { code: 'ECONNREFUSED', message: `connect ECONNREFUSED: connection refused, '@${name}'`, path: `@${name}` });
    // Every error about a socket file names it, as Node's fs errors do.
    const missing = join(tmpdir(), `no-such-dir-${unique()}`, 'baton_0_0');
    assert.throws(() => native.unixListen(missing, false, 0o600, 4), { code: 'ENOENT', syscall: 'bind', message: `bind ENOENT: no such file or directory, '${missing}'`, path: missing });
    assert.throws(() => native.unixConnect(missing, false), { code: 'ENOENT', syscall: 'connect', message: `connect ENOENT: no such file or directory, '${missing}'`, path: missing });
  });

  test('accept returns -1 when nobody waits; peer credentials are ours', () => {
    const name = unique();
    const listener = native.unixListen(name, true, 0o600, 4);
    assert.equal(native.accept(listener), -1);
    const client = native.unixConnect(name, true);
    const server = native.accept(listener);
    assert.deepEqual(native.peerCredentials(server), { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    assert.ok(isCloexec(server) && isCloexec(client));
    [listener, client, server].forEach(native.close);
  });

  test('records keep their boundaries and carry 0, 1, 16 and 253 fds, received CLOEXEC', () => {
    assert.equal(native.SCM_MAX_FD, 253, 'the addon exports the kernel limit it was built with');
    const [client, server, done] = pair();
    const listener = native.tcpListen(4, '127.0.0.1', 0, false, 8);
    const { port } = native.socketInfo(listener);
    for (const count of [0, 1, 16, 253]) {
      assert.equal(native.sendMessage(client, Buffer.from(`record ${count}`), new Array(count).fill(listener)), true);
    }
    for (const count of [0, 1, 16, 253]) {
      const record = native.receiveMessage(server, 1024, 253)!;
      assert.equal(record.data.toString(), `record ${count}`);
      assert.equal(record.fds.length, count);
      assert.equal(record.truncated, false);
      assert.equal(record.controlTruncated, false);
      for (const fd of record.fds) {
        assert.ok(isCloexec(fd));
        assert.equal(native.socketInfo(fd).port, port, 'the same socket');
        native.close(fd);
      }
    }
    assert.equal(native.receiveMessage(server, 1024, 253), null);
    native.close(listener);
    done();
  });

  test('MSG_TRUNC and MSG_CTRUNC are reported; the fds that did arrive are returned', () => {
    const [client, server, done] = pair();
    native.sendMessage(client, Buffer.alloc(100, 1), []);
    const cut = native.receiveMessage(server, 10, 0)!;
    assert.equal(cut.truncated, true);
    assert.equal(cut.data.length, 10);
    const before = fdCount();
    native.sendMessage(client, Buffer.from('x'), [0, 1, 2, 0, 1]);
    const record = native.receiveMessage(server, 16, 2)!;
    assert.equal(record.controlTruncated, true);
    assert.ok(record.fds.length <= 2);
    record.fds.forEach(native.close);
    assert.equal(fdCount(), before, 'the kernel closed the fds that did not fit');
    // The control buffer is CMSG_SPACE(maxFds * 4), padded to 8 bytes: with an
    // odd maxFds one more fd fits, and it must come back to be closed too.
    native.sendMessage(client, Buffer.from('x'), [0, 1, 2, 0, 1]);
    const odd = native.receiveMessage(server, 16, 1)!;
    assert.equal(odd.controlTruncated, true);
    assert.equal(odd.fds.length, 2);
    odd.fds.forEach(native.close);
    assert.equal(fdCount(), before);
    done();
  });

  test('peer close reads as eof, an empty record (even one just before it) does not; a full buffer makes send return false', () => {
    const [client, , done] = pair();
    let sent = 0;
    while (native.sendMessage(client, Buffer.alloc(4096), [])) sent++;
    assert.ok(sent > 0);
    const [a, b] = pair();
    native.sendMessage(a, Buffer.alloc(0), []);
    const empty = native.receiveMessage(b, 16, 0)!;
    assert.deepEqual([empty.data.length, empty.fds.length, empty.eof], [0, 0, false]);
    native.sendMessage(a, Buffer.alloc(0), []);
    native.sendMessage(a, Buffer.from('last'), []);
    native.close(a);
    assert.equal(native.receiveMessage(b, 16, 0)!.eof, false, 'a record is still queued behind it');
    assert.equal(native.receiveMessage(b, 16, 0)!.data.toString(), 'last');
    const eof = native.receiveMessage(b, 16, 0)!;
    assert.deepEqual([eof.data.length, eof.fds.length, eof.eof], [0, 0, true]);
    native.close(b);
    done();
  });
});

describe('unix datagrams (sd_notify)', () => {
  test('one datagram each to a path and an abstract name, from this process; no socket to reach is an error', async (t) => {
    for (const kind of ['path', 'abstract'] as const) {
      const receiver = await notifyReceiver(t, kind);
      const [path, abstract] = kind === 'path' ? [receiver.address, false] : [receiver.address.slice(1), true];
      assert.equal(native.sendDatagram(path, abstract, Buffer.from('READY=1\nSTATUS=first')), true);
      assert.equal(native.sendDatagram(path, abstract, Buffer.from('WATCHDOG=1')), true);
      await receiver.waitFor(has('WATCHDOG'), 'the second datagram');
      assert.deepEqual(receiver.notifications.map((n) => [n.text, n.pid]), [['READY=1\nSTATUS=first', process.pid], ['WATCHDOG=1', process.pid]], kind);
    }
    assert.throws(() => native.sendDatagram(join(tmpdir(), unique()), false, Buffer.from('READY=1')), { code: 'ENOENT', syscall: 'sendto' });
    assert.throws(() => native.sendDatagram(unique(), true, Buffer.from('READY=1')), { code: 'ECONNREFUSED', syscall: 'sendto' });
  });

  test('a receiver that stopped reading makes send return false at once instead of blocking', async (t) => {
    const receiver = await notifyReceiver(t, 'abstract', { paused: true });
    const started = performance.now();
    let sent = 0;
    while (sent < 100_000 && native.sendDatagram(receiver.address.slice(1), true, Buffer.from('WATCHDOG=1'))) sent++;
    assert.ok(sent < 100_000, 'the queue filled');
    assert.ok(performance.now() - started < 2000, `returned at once (${performance.now() - started} ms)`);
    t.diagnostic(`${sent} datagrams queued before the receiver's queue was full`);
  });
});

describe('processes across an exec (baton upgrade)', () => {
  test('pidfd_open: CLOEXEC, readable once the process exits; waitpid: null while it runs, ECHILD for no child of ours', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const pidfd = native.pidfdOpen(child.pid!);
    assert.ok(isCloexec(pidfd));
    let exited = false;
    const poll = new native.Poll(pidfd, (error, readable) => {
      assert.equal(error, null);
      exited ||= readable;
    });
    poll.start(true, false);
    assert.equal(native.waitpid(child.pid!), null, 'WNOHANG: running');
    await sleep(100);
    assert.equal(exited, false);
    child.kill('SIGKILL');
    await waitFor(() => exited, { what: 'the pidfd readable' });
    poll.close();
    native.close(pidfd);
    await waitFor(() => child.signalCode === 'SIGKILL', { what: 'libuv reaping its own child' });
    assert.throws(() => native.waitpid(process.ppid), { code: 'ECHILD', syscall: 'waitpid' });
    assert.throws(() => native.pidfdOpen(2 ** 22), { code: 'ESRCH', syscall: 'pidfd_open' });
    assert.throws(() => native.pidfdOpen(0), { code: 'BATON_INVALID_ARGUMENT' });
  });

  test('setCloexec sets the flag and says what it was; a failed execve throws and this process runs on', () => {
    const fd = native.dup(0);
    assert.equal(native.setCloexec(fd, false), true);
    assert.equal(isCloexec(fd), false);
    assert.equal(native.setCloexec(fd, true), false);
    assert.ok(isCloexec(fd));
    native.close(fd);
    assert.throws(() => native.setCloexec(fd, true), { code: 'EBADF', syscall: 'fcntl' });
    assert.throws(() => native.execve('/nonexistent/node', ['node'], {}), { code: 'ENOENT', syscall: 'execve' });
    assert.throws(() => native.execve(process.execPath, ['node', 'a\0b'], {}), { code: 'BATON_INVALID_ARGUMENT', message: /argv\[1\]/ });
    assert.throws(() => native.execve('', [], {}), { code: 'BATON_INVALID_ARGUMENT' });
  });
});

describe('sendWhole (a frame onto a stream socket)', () => {
  /** A connected TCP pair on loopback: the client socket's fd, and what the server side reads. */
  async function tcpPair() {
    const server = net.createServer();
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const accepted = new Promise<net.Socket>((done) => server.once('connection', done));
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    await new Promise((done) => client.once('connect', done));
    const peer = await accepted;
    const fd = (client as unknown as { _handle: { fd: number } })._handle.fd;
    return {
      client,
      peer,
      fd,
      end: () => {
        client.destroy();
        peer.destroy();
        server.close();
      },
    };
  }

  test('sends the bytes whole into an empty queue', async () => {
    const { peer, fd, end } = await tcpPair();
    const received = new Promise<Buffer>((done) => peer.once('data', done));
    assert.equal(native.sendWhole(fd, Buffer.from('seventeen bytes!!')), true);
    assert.equal((await received).toString(), 'seventeen bytes!!');
    end();
  });

  test('sends nothing while the send queue holds bytes (the peer does not read)', async () => {
    const { client, peer, fd, end } = await tcpPair();
    peer.pause();
    client.write(Buffer.alloc(8 * 1024 * 1024));
    assert.equal(native.sendWhole(fd, Buffer.from('frame')), false);
    end();
  });

  test('validates its arguments; a socket that is not connected is EPIPE, from send', () => {
    assert.throws(() => native.sendWhole(-1, Buffer.from('x')), /fd must be an integer/);
    assert.throws(() => native.sendWhole(0, Buffer.alloc(0)), /data must be a Buffer of 1\.\.4096 bytes/);
    assert.throws(() => native.sendWhole(0, 'x' as never), /data must be a Buffer/);
    const fd = native.tcpBind(4, '127.0.0.1', 0, false);
    assert.throws(() => native.sendWhole(fd, Buffer.from('x')), { syscall: 'send', code: 'EPIPE' });
    native.close(fd);
  });
});

describe('poll', () => {
  test('readable and writable readiness arrive on the loop; close is idempotent', async () => {
    const [client, server, done] = pair();
    const events: string[] = [];
    const poll = new native.Poll(server, (error, readable, writable) => {
      assert.equal(error, null);
      if (readable) events.push(native.receiveMessage(server, 64, 0)!.data.toString());
      if (writable) events.push('writable');
    });
    assert.equal(native.openHandles(), 1);
    poll.start(true, false);
    native.sendMessage(client, Buffer.from('hello'), []);
    await waitFor(() => events.includes('hello'));
    poll.start(false, true);
    await waitFor(() => events.includes('writable'));
    poll.stop();
    poll.close();
    poll.close();
    assert.equal(native.openHandles(), 0);
    assert.throws(() => poll.start(true, false), /after close/);
    done();
  });

  test('a worker thread that exits with an open poll is torn down cleanly', async () => {
    const binding = require.resolve('../../src/binding');
    for (const exit of ['terminate', 'natural']) {
      const worker = new Worker(
        `const native = require(${JSON.stringify(binding)});
         const { parentPort } = require('node:worker_threads');
         const name = 'baton-worker-' + process.pid + '-' + Math.random();
         const fd = native.unixListen(name, true, 0o600, 4);
         if (${JSON.stringify(exit)} === 'terminate') {
           new native.Poll(fd, () => {}).start(true, false); // keeps the thread alive until terminate()
         } else {
           const p = new native.Poll(fd, () => {}); p.start(true, false); p.stop();
           global.keep = p; // not closed, not active: the thread ends by itself
         }
         parentPort.postMessage(fd);`,
        { eval: true },
      );
      const fd = await new Promise<number>((resolve) => worker.once('message', resolve));
      if (exit === 'terminate') await worker.terminate();
      else await new Promise((resolve) => worker.once('exit', resolve));
      native.close(fd);
    }
    assert.equal(native.openHandles(), 0, 'the main thread\'s count is its own');
  });

  // A worker that opens a connected pair, posts both fds (they belong to the
  // process, so this thread closes them after the worker is gone), then runs
  // `body`; `stop` ends it if it would not end by itself. Resolves with its
  // next message, exit code and uncaught error.
  async function runWorker(body: string, stop: (worker: Worker) => Promise<unknown> = async () => {}) {
    const worker = new Worker(
      `const native = require(${JSON.stringify(require.resolve('../../src/binding'))});
       const { parentPort } = require('node:worker_threads');
       const name = 'baton-worker-' + process.pid + '-' + Math.random();
       const listener = native.unixListen(name, true, 0o600, 4);
       const client = native.unixConnect(name, true);
       parentPort.postMessage([listener, client]);
       ${body}`,
      { eval: true },
    );
    let error: Error | undefined;
    worker.on('error', (e) => (error = e));
    const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
    const received: unknown[] = [];
    const second = new Promise<void>((resolve) => worker.on('message', (m) => received.push(m) === 2 && resolve()));
    await Promise.race([second, exited]);
    await stop(worker);
    const code = await exited;
    (received[0] as number[]).forEach(native.close);
    return { message: received[1], code, error };
  }

  // Events keep coming while terminate() stops the thread; calling into JS
  // then must fail quietly (through node-addon-api it aborted within 200 rounds).
  test('terminating a worker whose poll fires on every loop turn does not abort', async () => {
    for (let i = 0; i < 200; i++) {
      const { message } = await runWorker(
        `let n = 0;
         new native.Poll(client, () => { if (++n === 3) parentPort.postMessage('busy'); }).start(true, true);`,
        (worker) => worker.terminate(),
      );
      assert.equal(message, 'busy');
    }
  });

  test('a throwing callback is the worker\'s uncaught exception, not a crash', async () => {
    const { code, error } = await runWorker(
      `parentPort.postMessage('armed');
       new native.Poll(client, () => { throw new Error('from the callback'); }).start(false, true);`,
    );
    assert.equal(error?.message, 'from the callback');
    assert.equal(code, 1);
  });

  test('a worker that only loads the addon exits normally', async () => {
    const { message, code } = await runWorker(`parentPort.postMessage(native.openHandles());`);
    assert.deepEqual([message, code], [0, 0]);
  });
});

test('200 create/send/receive/close cycles leave the fd count unchanged', () => {
  const before = fdCount();
  for (let i = 0; i < 200; i++) {
    const [client, server, done] = pair();
    const listener = native.tcpListen(4, '127.0.0.1', 0, false, 8);
    assert.equal(native.sendMessage(client, Buffer.from('fds'), [listener, listener]), true);
    const record = native.receiveMessage(server, 64, 4)!;
    [listener, ...record.fds].forEach(native.close);
    const poll = new native.Poll(server, () => {});
    poll.close();
    done();
  }
  assert.equal(fdCount(), before);
  assert.equal(native.openHandles(), 0);
});

after(() => {
  assert.equal(fdCount(), fdsAtStart, 'every fd created in this file was closed');
});
