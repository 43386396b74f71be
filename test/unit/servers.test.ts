// ListenerServers owns the dups it makes ahead: one per socket not served,
// made when the servers are given and again after each stop, used by the
// next listen, and closed by retire() and close(). Out of fds, prepare()
// names the limit.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import * as net from 'node:net';
import { test } from 'node:test';
import * as native from '../../src/binding';
import { fdLimit, ListenerServers } from '../../src/listeners/servers';
import { waitFor } from '../support/wait';

const fds = () => readdirSync('/proc/self/fd').length;


test('dups made ahead are owned: used by listen, made again after a stop, closed by retire and close', async () => {
  const own = native.tcpListen(4, '127.0.0.1', 0, false, 8);
  const surplus = native.tcpListen(4, '127.0.0.1', 0, false, 8);
  const before = fds();
  const target = net.createServer((socket) => socket.end());
  const servers = new ListenerServers({ name: 'tcp://x', protocol: 'tcp', family: 4, backlog: 8 }, target, [{ index: 0, fd: own }, { index: 1, fd: surplus }], 0, () => undefined);
  servers.prepare();
  assert.equal(fds(), before + 2, 'a dup ahead for each socket');
  servers.attach();
  assert.equal(fds(), before + 2, 'listening on the dups made ahead, none more');
  servers.stop();
  await waitFor(() => fds() === before + 2, { what: 'the stopped servers closed their dups, and new ones are made ahead' });
  servers.retire(1);
  await waitFor(() => fds() === before + 1, { what: 'the retired socket has no dup left' });
  servers.close();
  await waitFor(() => fds() === before, { what: 'nothing of ours left' });
  native.close(own);
  native.close(surplus);
});

test('fdLimit names the open fds, the limit and what to do', () => {
  assert.match(fdLimit(), /^\d+ fds open, limit \d+ \(RLIMIT_NOFILE\): raise it \(ulimit -n, LimitNOFILE= in a systemd unit\) or start fewer workers$/);
});
