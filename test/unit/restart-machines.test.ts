// The parent and child restart machines, in one process over real control
// channels: every transition of both tables and every deadline. The parent's
// hooks are fakes that record what the machine asks of its generation; where a
// peer has to misbehave it is played by hand over a raw Connection.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, before, describe, test, type TestContext } from 'node:test';
import * as native from '../../src/binding';
import { controlAddress, type ControlAddress } from '../../src/channel/address';
import { Channel } from '../../src/channel/channel';
import { ControlServer } from '../../src/channel/server';
import { Connection, closeAll, type Answer } from '../../src/channel/connection';
import { PROTOCOL_VERSION, type GetSockets, type Hello, type Message, type Sockets, type WantedListener, type Welcome } from '../../src/protocol/messages';
import { ChildMachine, type ChildOptions, type ChildState, type Handover } from '../../src/restart/child';
import type { StateMachine, Transition } from '../../src/restart/machine';
import { ParentMachine, type ParentHooks, type ParentOptions, type ParentState } from '../../src/restart/parent';
import { sleep, waitFor } from '../support/wait';

const uid = process.getuid!();
const VERSION = 'baton.unit';
const PARENT_EPOCH = 1;
/** Longer than any test: a deadline that must not fire (their timers are unref'd). */
const NEVER = 60_000;
const LISTENERS: WantedListener[] = [
  { protocol: 'tcp', host: '127.0.0.1', port: 8080, ipv6Only: false },
  { protocol: 'udp', host: '::1', port: 5353, ipv6Only: false },
];
/** A getSockets request's fields, as takeSockets() takes them. */
const ask = (listeners: WantedListener[], workers: number) => ({ listeners, workers, surplus: 'drain' as const });

const fdCount = () => readdirSync('/proc/self/fd').length;
let fdsAtStart = 0;

/** Where generation PARENT_EPOCH listens for its child; abstract, so nothing to clean up. */
function freshAddress(): ControlAddress {
  return controlAddress(`@baton-unit-${process.pid}-${Math.random().toString(36).slice(2)}`, 0, PARENT_EPOCH);
}

/** Every transition the machine makes from now on. */
function trace<S extends string>(machine: StateMachine<S>): Transition<S>[] {
  const seen: Transition<S>[] = [];
  machine.on('transition', (t) => seen.push(t));
  return seen;
}

/** The transitions as 'from→to', checked to chain and to carry timings (asserted here, not in the listener, which would throw into the machine). */
function steps<S extends string>(seen: Transition<S>[]): string[] {
  seen.forEach((t, i) => {
    if (i > 0) assert.equal(t.from, seen[i - 1].to, 'transitions chain');
    assert.equal(typeof t.inStateMs, 'number');
    assert.ok(t.inStateMs >= 0 && t.atMs >= 0, `timings of ${t.from}→${t.to}`);
  });
  return seen.map((t) => `${t.from}→${t.to}`);
}

// ---------------------------------------------------------------------------
// The parent side: a ParentMachine behind a real ControlServer, fake hooks.

interface FakeHooks extends ParentHooks {
  /** Every hook call but warn, in order ('drain 5000', 'terminate'...). */
  calls: string[];
  warnings: string[];
  /** Port of the listener every handed-out fd is a dup of. */
  port: number;
  /** Fds the parent handed out: they stay the parent's. */
  owned: number[];
}

function fakeHooks(t: TestContext): FakeHooks {
  const base = native.tcpListen(4, '127.0.0.1', 0, false, 8);
  const hooks: FakeHooks = {
    calls: [],
    warnings: [],
    port: native.socketInfo(base).port,
    owned: [],
    async sockets({ listeners, workers }) {
      hooks.calls.push('sockets');
      const refs = listeners.flatMap((_, listener) => Array.from({ length: workers }, (_, index) => ({ listener, index })));
      const fds = refs.map(() => native.dup(base));
      hooks.owned.push(...fds);
      return { refs, fds, held: listeners.map((l) => ({ ...l, sockets: workers })) };
    },
    stopAccepting: () => void hooks.calls.push('stopAccepting'),
    resumeAccepting: () => void hooks.calls.push('resumeAccepting'),
    drain: (ms) => void hooks.calls.push(`drain ${ms}`),
    retired: (listener, index) => void hooks.calls.push(`retired ${listener.port} ${index}`),
    stats: () => [0, 1].map((part) => ({ format: 'fake', startTimeSeconds: 1, metrics: [{ name: `m${part}`, series: [] }] })),
    terminate: async () => void hooks.calls.push('terminate'),
    warn: (message) => void hooks.warnings.push(message),
  };
  t.after(() => closeAll([base, ...hooks.owned]));
  return hooks;
}

interface ParentSide {
  parent: ParentMachine;
  hooks: FakeHooks;
  address: ControlAddress;
  seen: Transition<ParentState>[];
}

function startParent(t: TestContext, options: Partial<ParentOptions> = {}, ready = true): ParentSide {
  const hooks = fakeHooks(t);
  const parent = new ParentMachine(
    { epoch: PARENT_EPOCH, hotRestartVersion: VERSION, allowedUids: [uid], handshakeTimeoutMs: NEVER, childInitTimeoutMs: NEVER, drainMs: NEVER, shutdownMs: NEVER, ...options },
    hooks,
  );
  const seen = trace(parent);
  const address = freshAddress();
  const server = ControlServer.listen(address, 0o600);
  server.on('connection', (channel, peer) => parent.accept(channel, peer));
  t.after(async () => {
    server.close();
    await parent.terminate('test over'); // closes the child's channel, if any
  });
  if (ready) parent.ready();
  return { parent, hooks, address, seen };
}

/** A would-be child played by hand: it sends only what the test sends. */
interface Peer {
  connection: Connection;
  messages: Message[];
  closed: boolean;
}

function rawPeer(t: TestContext, address: ControlAddress): Peer {
  const connection = new Connection(new Channel(native.unixConnect(address.path, address.abstract)));
  const peer: Peer = { connection, messages: [], closed: false };
  connection.on('message', (message, fds) => {
    closeAll(fds);
    peer.messages.push(message);
  });
  connection.on('close', () => (peer.closed = true));
  t.after(() => connection.close());
  return peer;
}

const hello = (fields: Partial<Hello> = {}): Hello => ({
  type: 'hello',
  protocol: PROTOCOL_VERSION,
  hotRestartVersion: VERSION,
  epoch: PARENT_EPOCH + 1,
  pid: process.pid,
  ...fields,
});

async function assertRefused(peer: Peer, code: string, message?: RegExp): Promise<void> {
  await waitFor(() => peer.closed, { timeoutMs: 2000, what: 'the refused peer closed' });
  assert.equal(peer.messages.length, 1, JSON.stringify(peer.messages));
  const [refused] = peer.messages;
  assert.equal(refused.type, 'refused');
  assert.equal(refused.type === 'refused' && refused.code, code);
  if (message) assert.match(refused.type === 'refused' ? refused.message : '', message);
}

type ChildStage = 'handshaking' | 'childInitializing' | 'childTakingOver' | 'draining' | 'drained';
const STAGES: ChildStage[] = ['handshaking', 'childInitializing', 'childTakingOver', 'draining', 'drained'];

/** A serving parent with a hand-played child that went as far as `stage`. */
async function parentWithChildIn(t: TestContext, stage: ChildStage, options: Partial<ParentOptions> = {}) {
  const side = startParent(t, { drainMs: stage === 'drained' ? 10 : NEVER, ...options });
  const peer = rawPeer(t, side.address);
  const reach = (state: ParentState) => waitFor(() => side.parent.is(state), { timeoutMs: 2000, what: `parent ${state}` });
  await reach('handshaking');
  let sockets: Answer | undefined;
  let drainAck: Answer | undefined;
  const past = (s: ChildStage) => STAGES.indexOf(stage) >= STAGES.indexOf(s);
  if (past('childInitializing')) {
    peer.connection.send(hello());
    await reach('childInitializing');
    await waitFor(() => peer.messages.length === 1, { timeoutMs: 2000, what: 'welcome' }); // so later messages are answers
  }
  if (past('childTakingOver')) {
    sockets = await peer.connection.request({ type: 'getSockets', ...ask(LISTENERS, 2) }, 2000);
    const fds = sockets.fds;
    t.after(() => closeAll(fds));
    assert.equal(side.parent.state, 'childTakingOver');
  }
  if (past('draining')) drainAck = await peer.connection.request({ type: 'drain' }, 2000);
  await reach(stage);
  return { ...side, peer, sockets, drainAck };
}

before(async () => {
  // Warm-up: whatever the runtime opens lazily on a first channel is open before we count.
  const address = freshAddress();
  const server = ControlServer.listen(address, 0o600);
  const accepted: Channel[] = [];
  server.on('connection', (channel) => accepted.push(channel));
  const client = new Channel(native.unixConnect(address.path, true));
  await waitFor(() => accepted.length === 1);
  [client, ...accepted].forEach((c) => c.close());
  server.close();
  native.close(native.tcpListen(4, '127.0.0.1', 0, false, 8));
  fdsAtStart = fdCount();
});

describe('ParentMachine', () => {
  test('notReady refuses a child as busy; ready() makes it serve', async (t) => {
    const { parent, hooks, address, seen } = startParent(t, {}, false);
    assert.equal(parent.state, 'notReady');
    const early = rawPeer(t, address);
    await assertRefused(early, 'BATON_PARENT_BUSY', /is notReady, not serving/);
    assert.match(hooks.warnings.join('\n'), /refused a child/);
    assert.equal(parent.state, 'notReady');
    parent.ready();
    parent.ready(); // idempotent
    assert.deepEqual(steps(seen), ['notReady→serving']);
    rawPeer(t, address);
    await waitFor(() => parent.is('handshaking'));
  });

  test('terminate() from notReady, and from serving: terminating→terminated, the terminate hook once', async (t) => {
    for (const ready of [false, true]) {
      const { parent, hooks, seen } = startParent(t, {}, ready);
      await Promise.all([parent.terminate('shutdown'), parent.terminate('again')]);
      assert.equal(parent.state, 'terminated');
      assert.deepEqual(hooks.calls, ['terminate']);
      assert.deepEqual(steps(seen), [...(ready ? ['notReady→serving'] : []), `${ready ? 'serving' : 'notReady'}→terminating`, 'terminating→terminated']);
      assert.equal(seen.at(-2)!.reason, 'shutdown');
    }
  });

  test('a terminate hook that throws is a warning: the parent still ends terminated', async (t) => {
    const { parent, hooks } = startParent(t);
    hooks.terminate = async () => {
      throw new Error('socket already closed');
    };
    await parent.terminate('shutdown');
    assert.equal(parent.state, 'terminated');
    assert.deepEqual(hooks.warnings, ['terminating: socket already closed']);
  });

  test('a whole handoff: handshaking, childInitializing, childTakingOver, draining, drained, terminated', async (t) => {
    const { parent, hooks, seen, peer, sockets, drainAck } = await parentWithChildIn(t, 'drained');
    // welcome names the parent's generation.
    assert.deepEqual(peer.messages, [{ type: 'welcome', protocol: PROTOCOL_VERSION, hotRestartVersion: VERSION, epoch: PARENT_EPOCH, pid: process.pid }]);
    // One fd per listener x worker: the same sockets as the parent's, as new fds.
    const reply = sockets!.reply as Sockets;
    assert.equal(reply.type, 'sockets');
    assert.deepEqual(reply.sockets, [{ listener: 0, index: 0 }, { listener: 0, index: 1 }, { listener: 1, index: 0 }, { listener: 1, index: 1 }]);
    assert.deepEqual(reply.held, LISTENERS.map((l) => ({ ...l, sockets: 2 })));
    assert.equal(sockets!.fds.length, 4);
    for (const fd of sockets!.fds) {
      assert.ok(!hooks.owned.includes(fd), 'the parent keeps its own fds');
      assert.equal(native.socketInfo(fd).port, hooks.port);
    }
    assert.deepEqual(drainAck!.reply, { type: 'ack', re: drainAck!.reply.re });
    assert.deepEqual(hooks.calls, ['sockets', 'stopAccepting', 'drain 10']);

    const ack = await peer.connection.request({ type: 'terminate' }, 2000);
    assert.deepEqual(ack.reply, { type: 'ack', re: ack.reply.re });
    await waitFor(() => parent.is('terminated') && peer.closed);
    assert.deepEqual(hooks.calls, ['sockets', 'stopAccepting', 'drain 10', 'terminate']);
    assert.deepEqual(steps(seen), [
      'notReady→serving',
      'serving→handshaking',
      'handshaking→childInitializing',
      'childInitializing→childTakingOver',
      'childTakingOver→draining',
      'draining→drained',
      'drained→terminating',
      'terminating→terminated',
    ]);
    assert.deepEqual(hooks.warnings, []);
  });

  test('terminate while draining (before drainMs is over): ack, then the terminate hook once', async (t) => {
    const { parent, hooks, seen, peer } = await parentWithChildIn(t, 'draining');
    await peer.connection.request({ type: 'terminate' }, 2000);
    await waitFor(() => parent.is('terminated') && peer.closed);
    await sleep(10);
    assert.deepEqual(hooks.calls.filter((c) => c === 'terminate'), ['terminate']);
    assert.deepEqual(steps(seen).slice(-3), ['childTakingOver→draining', 'draining→terminating', 'terminating→terminated']);
  });

  test('getSockets may be asked again while childTakingOver', async (t) => {
    const { parent, hooks, peer } = await parentWithChildIn(t, 'childTakingOver');
    const again = await peer.connection.request({ type: 'getSockets', ...ask(LISTENERS.slice(0, 1), 3) }, 2000);
    closeAll(again.fds);
    assert.deepEqual((again.reply as Sockets).sockets, [0, 1, 2].map((index) => ({ listener: 0, index })));
    assert.equal(again.fds.length, 3);
    assert.equal(parent.state, 'childTakingOver');
    assert.deepEqual(hooks.calls, ['sockets', 'sockets']);
  });

  for (const stage of STAGES) {
    test(`a child that disconnects in ${stage} leaves the parent serving${stage.startsWith('drain') ? ', accepting again' : ''}`, async (t) => {
      const { parent, hooks, address, seen, peer } = await parentWithChildIn(t, stage);
      const callsBefore = hooks.calls.length;
      peer.connection.close();
      await waitFor(() => parent.is('serving'));
      assert.deepEqual(hooks.calls.slice(callsBefore), stage.startsWith('drain') ? ['resumeAccepting'] : []);
      assert.equal(steps(seen).at(-1), `${stage}→serving`);
      assert.match(seen.at(-1)!.reason!, /went away/);
      // Serving for real: the next child gets a handshake.
      rawPeer(t, address);
      await waitFor(() => parent.is('handshaking'));
    });
  }

  // Every deadline the parent keeps for a child; each drops the child with a warning.
  const deadlines: { stage: ChildStage; options: Partial<ParentOptions>; warning: RegExp }[] = [
    { stage: 'handshaking', options: { handshakeTimeoutMs: 20 }, warning: /sent no hello within 20 ms/ },
    { stage: 'childInitializing', options: { childInitTimeoutMs: 30 }, warning: /did not take over within 30 ms/ },
    { stage: 'childTakingOver', options: { childInitTimeoutMs: 250, handshakeTimeoutMs: 50 }, warning: /took sockets but did not ask to drain within 250 ms/ },
  ];
  for (const { stage, options, warning } of deadlines) {
    test(`a child that stays in ${stage} past its deadline is dropped; the parent serves`, async (t) => {
      const { parent, hooks, seen, peer } = await parentWithChildIn(t, stage, options);
      await waitFor(() => parent.is('serving') && peer.closed);
      assert.equal(steps(seen).at(-1), `${stage}→serving`);
      assert.match(hooks.warnings.join('\n'), warning);
      // Told why, so that it fails instead of serving beside us.
      const refused = peer.messages.at(-1)!;
      assert.equal(refused.type, 'refused');
      assert.equal(refused.type === 'refused' && refused.code, 'BATON_TIMEOUT');
      assert.match(refused.type === 'refused' ? refused.message : '', warning);
      assert.ok(!hooks.calls.includes('stopAccepting') && !hooks.calls.includes('resumeAccepting'));
    });
  }

  test('a drain that crosses the refusal of a slow child that holds our sockets is honoured', async (t) => {
    const { parent, hooks, peer } = await parentWithChildIn(t, 'childTakingOver', { childInitTimeoutMs: 60 });
    await waitFor(() => peer.messages.at(-1)?.type === 'refused', { timeoutMs: 2000, what: 'the refusal' });
    assert.equal(parent.state, 'childTakingOver', 'it waits to see whether a drain crossed');
    const ack = await peer.connection.request({ type: 'drain' }, 2000);
    assert.equal(ack.reply.type, 'ack');
    assert.equal(parent.state, 'draining');
    assert.deepEqual(hooks.calls, ['sockets', 'stopAccepting', `drain ${NEVER}`]);
  });

  test('draining becomes drained after drainMs, and a child gone then makes the parent accept again', async (t) => {
    const { parent, hooks, seen, peer } = await parentWithChildIn(t, 'drained');
    assert.equal(steps(seen).at(-1), 'draining→drained');
    peer.connection.close();
    await waitFor(() => parent.is('serving'));
    assert.deepEqual(hooks.calls, ['sockets', 'stopAccepting', 'drain 10', 'resumeAccepting']);
  });

  test('drained and never told to terminate: the parent terminates itself at shutdownMs', async (t) => {
    const { parent, hooks, seen } = await parentWithChildIn(t, 'drained', { shutdownMs: 60 });
    await waitFor(() => parent.is('terminated'), { timeoutMs: 2000, what: 'terminated at its own shutdown time' });
    assert.deepEqual(steps(seen).slice(-3), ['draining→drained', 'drained→terminating', 'terminating→terminated']);
    assert.match(seen.at(-2)!.reason!, /parent shutdown time \(60 ms\) is over/);
    assert.deepEqual(hooks.calls, ['sockets', 'stopAccepting', 'drain 10', 'terminate']);
  });

  test('a shutdown time shorter than the drain time: never told to terminate, the parent terminates itself at shutdownMs from the drain\'s start, cutting the drain short', async (t) => {
    const { parent, hooks, seen } = await parentWithChildIn(t, 'draining', { shutdownMs: 60 });
    await waitFor(() => parent.is('terminated'), { timeoutMs: 2000, what: 'terminated at its own shutdown time' });
    assert.deepEqual(steps(seen).slice(-3), ['childTakingOver→draining', 'draining→terminating', 'terminating→terminated']);
    assert.match(seen.at(-2)!.reason!, /parent shutdown time \(60 ms\) is over/);
    assert.ok(seen.at(-2)!.inStateMs >= 55, `terminated after ${seen.at(-2)!.inStateMs} ms of draining, not at once`);
    assert.deepEqual(hooks.calls, ['sockets', 'stopAccepting', `drain ${NEVER}`, 'terminate']);
  });

  test('a child whose own child took over goes away: the parent does not accept again, and ends at its shutdown time', async (t) => {
    const { parent, hooks, seen, peer } = await parentWithChildIn(t, 'draining', { drainMs: 30, shutdownMs: 80 });
    assert.equal((await peer.connection.request({ type: 'accepting', accepting: false }, 2000)).reply.type, 'ack');
    peer.connection.close();
    await waitFor(() => hooks.warnings.length > 0, { timeoutMs: 2000, what: 'the warning' });
    assert.match(hooks.warnings.join('\n'), /went away after its own child took over: draining on to our shutdown time/);
    assert.equal(parent.state, 'draining');
    await waitFor(() => parent.is('terminated'), { timeoutMs: 2000, what: 'terminated at its own shutdown time' });
    assert.ok(!hooks.calls.includes('resumeAccepting'), 'old code never serves beside the newest generation');
    assert.deepEqual(steps(seen).slice(-4), ['childTakingOver→draining', 'draining→drained', 'drained→terminating', 'terminating→terminated']);
  });

  test('a child that accepts again (its own child went away) makes the parent resume when it goes', async (t) => {
    const { parent, hooks, peer } = await parentWithChildIn(t, 'draining');
    await peer.connection.request({ type: 'accepting', accepting: false }, 2000);
    await peer.connection.request({ type: 'accepting', accepting: true }, 2000);
    peer.connection.close();
    await waitFor(() => parent.is('serving'));
    assert.equal(hooks.calls.at(-1), 'resumeAccepting');
  });

  const mismatches: { what: string; fields: Partial<Hello>; code: string; message: RegExp }[] = [
    { what: 'another protocol', fields: { protocol: PROTOCOL_VERSION + 1 }, code: 'BATON_VERSION_MISMATCH', message: new RegExp(`protocol ${PROTOCOL_VERSION + 1}, this generation speaks ${PROTOCOL_VERSION}`) },
    { what: 'another hot restart version', fields: { hotRestartVersion: 'other' }, code: 'BATON_VERSION_MISMATCH', message: /'other'/ },
    { what: 'an earlier epoch', fields: { epoch: PARENT_EPOCH - 1 }, code: 'BATON_PROTOCOL', message: /restart epoch 0 is not after this generation's, 1/ },
    { what: 'its own epoch', fields: { epoch: PARENT_EPOCH }, code: 'BATON_PROTOCOL', message: /restart epoch 1 is not after/ },
  ];
  for (const { what, fields, code, message } of mismatches) {
    test(`a hello with ${what} is refused ${code}; the parent serves`, async (t) => {
      const { parent, hooks, seen, peer } = await parentWithChildIn(t, 'handshaking');
      peer.connection.send(hello(fields));
      await assertRefused(peer, code, message);
      assert.equal(parent.state, 'serving');
      assert.deepEqual(steps(seen), ['notReady→serving', 'serving→handshaking', 'handshaking→serving']);
      assert.match(hooks.warnings.join('\n'), /refused a child: incompatible child/);
      assert.deepEqual(hooks.calls, []);
    });
  }

  test('a second child while one is handshaking is refused busy; the first goes on', async (t) => {
    const { parent, address, seen, peer } = await parentWithChildIn(t, 'handshaking');
    const second = rawPeer(t, address);
    await assertRefused(second, 'BATON_PARENT_BUSY', new RegExp(`already handing over to pid ${process.pid}`));
    assert.equal(parent.state, 'handshaking');
    peer.connection.send(hello());
    await waitFor(() => parent.is('childInitializing'));
    assert.deepEqual(steps(seen), ['notReady→serving', 'serving→handshaking', 'handshaking→childInitializing']);
    assert.equal(peer.closed, false);
  });

  test('a peer whose uid is not allowed is refused; nothing changes', async (t) => {
    const { parent, hooks, address, seen } = startParent(t, { allowedUids: [12345] });
    const peer = rawPeer(t, address);
    await assertRefused(peer, 'BATON_PEER_REFUSED', new RegExp(`runs as uid ${uid}; generation 1 accepts only uid 12345`));
    assert.equal(parent.state, 'serving');
    assert.deepEqual(steps(seen), ['notReady→serving']);
    assert.equal(hooks.warnings.length, 1);
  });

  // Requests out of order are answered INVALID_STATE and change nothing.
  const outOfOrder: { stage: ChildStage; send: Message['type'][] }[] = [
    { stage: 'handshaking', send: ['drain', 'getSockets', 'terminate'] },
    { stage: 'childInitializing', send: ['terminate', 'hello', 'accepting'] },
    { stage: 'childTakingOver', send: ['terminate', 'hello', 'accepting'] },
    { stage: 'draining', send: ['drain', 'getSockets', 'hello'] },
    { stage: 'drained', send: ['drain', 'getSockets'] },
  ];
  for (const { stage, send } of outOfOrder) {
    test(`${send.join(', ')} in ${stage} get BATON_INVALID_STATE and change nothing`, async (t) => {
      const { parent, hooks, seen, peer } = await parentWithChildIn(t, stage);
      const before = { calls: [...hooks.calls], steps: steps(seen), messages: peer.messages.length };
      for (const type of send) {
        if (type === 'hello') {
          // hello has no id: the error answers no request and arrives as a message.
          peer.connection.send(hello());
          await waitFor(() => peer.messages.length > before.messages);
          assert.deepEqual(peer.messages.at(-1), { type: 'error', code: 'BATON_INVALID_STATE', message: `hello is not expected while the parent is ${stage}` });
          before.messages = peer.messages.length;
        } else {
          const request = type === 'getSockets' ? { type, ...ask(LISTENERS, 1) } : type === 'accepting' ? { type, accepting: false } : { type };
          await assert.rejects(peer.connection.request(request as { type: 'drain' }, 2000), {
            code: 'BATON_INVALID_STATE',
            message: new RegExp(`${type} is not expected while the parent is ${stage}`),
          });
        }
      }
      assert.equal(parent.state, stage);
      assert.deepEqual(hooks.calls, before.calls);
      assert.deepEqual(steps(seen), before.steps);
      assert.equal(peer.closed, false);
    });
  }

  test('a message only a parent sends is answered BATON_PROTOCOL', async (t) => {
    const { parent, peer } = await parentWithChildIn(t, 'childInitializing');
    peer.connection.send({ type: 'welcome', protocol: 1, hotRestartVersion: VERSION, epoch: 2, pid: process.pid });
    await waitFor(() => peer.messages.length === 2);
    assert.deepEqual(peer.messages[1], { type: 'error', code: 'BATON_PROTOCOL', message: 'a child does not send welcome' });
    assert.equal(parent.state, 'childInitializing');
  });

  for (const stage of STAGES) {
    test(`terminate() with a child in ${stage} closes its channel and terminates once`, async (t) => {
      const { parent, hooks, seen, peer } = await parentWithChildIn(t, stage);
      await parent.terminate('operator');
      await waitFor(() => peer.closed);
      assert.equal(parent.state, 'terminated');
      assert.deepEqual(steps(seen).slice(-2), [`${stage}→terminating`, 'terminating→terminated']);
      assert.deepEqual(hooks.calls.filter((c) => c === 'terminate' || c === 'resumeAccepting'), ['terminate']);
    });
  }
});

// ---------------------------------------------------------------------------
// The child side: a ChildMachine against a real ParentMachine, or against a
// parent played by hand where the parent has to misbehave.

interface ChildSide {
  child: ChildMachine;
  childSeen: Transition<ChildState>[];
  /** What the child emitted as 'warning'. */
  warnings: string[];
}

function newChild(t: TestContext, options: Partial<ChildOptions> = {}): ChildSide {
  const child = new ChildMachine({
    epoch: PARENT_EPOCH + 1,
    hotRestartVersion: VERSION,
    allowedUids: [uid],
    handshakeTimeoutMs: 2000,
    requestTimeoutMs: 2000,
    parentShutdownMs: NEVER,
    ...options,
  });
  const warnings: string[] = [];
  child.on('warning', (message) => warnings.push(message));
  const childSeen = trace(child);
  t.after(() => child.detach()); // closes its channel whatever state it ended in
  return { child, childSeen, warnings };
}

/** A parent played by hand: `answer` sees every message the child sends. */
function fakeParent(t: TestContext, answer: (message: Message, connection: Connection) => void = () => {}) {
  const side = { address: freshAddress(), received: [] as string[], closed: false };
  const server = ControlServer.listen(side.address, 0o600);
  const connections: Connection[] = [];
  server.on('connection', (channel) => {
    const connection = new Connection(channel);
    connections.push(connection);
    connection.on('message', (message, fds) => {
      closeAll(fds);
      side.received.push(message.type);
      answer(message, connection);
    });
    connection.on('close', () => (side.closed = true));
  });
  t.after(() => {
    server.close();
    connections.forEach((c) => c.close());
  });
  return side;
}

/** A fake parent's answer: welcome to hello, then `then` for the rest. */
const welcoming =
  (then: (message: Message, connection: Connection) => void = () => {}, fields: Partial<Welcome> = {}) =>
  (message: Message, connection: Connection) =>
    message.type === 'hello'
      ? connection.send({ type: 'welcome', protocol: PROTOCOL_VERSION, hotRestartVersion: VERSION, epoch: PARENT_EPOCH, pid: process.pid, ...fields })
      : then(message, connection);

/** The inherited fds are the parent's sockets as fds of our own, one per listener x worker; closes them. */
function checkAndClose(inherited: Handover, hooks: FakeHooks, listeners: WantedListener[], workers: number): void {
  const fds = [...inherited.fds.values()].flatMap((byIndex) => [...byIndex.values()]);
  try {
    assert.deepEqual([...inherited.fds.keys()], listeners.map((_, i) => i));
    for (const byIndex of inherited.fds.values()) assert.deepEqual([...byIndex.keys()], Array.from({ length: workers }, (_, i) => i));
    assert.deepEqual(inherited.held, listeners.map((l) => ({ ...l, sockets: workers })));
    assert.equal(new Set(fds).size, fds.length, 'one fd per socket');
    for (const fd of fds) {
      assert.ok(!hooks.owned.includes(fd), 'a duplicate, not the parent\'s own fd');
      assert.equal(native.socketInfo(fd).port, hooks.port, 'the parent\'s socket');
    }
  } finally {
    closeAll(fds);
  }
  // The parent still holds its own.
  for (const fd of hooks.owned) assert.equal(native.socketInfo(fd).port, hooks.port);
}

type HandoffStage = 'initializing' | 'startingWorkers' | 'drainingParent';

/** A real parent and a child that went as far as `stage` with it. */
async function handoff(t: TestContext, stage: HandoffStage, childOptions: Partial<ChildOptions> = {}) {
  const parentSide = startParent(t);
  const childSide = newChild(t, childOptions);
  await childSide.child.connect(parentSide.address);
  assert.equal(parentSide.parent.state, 'childInitializing');
  if (stage !== 'initializing') {
    checkAndClose(await childSide.child.takeSockets(ask(LISTENERS, 1)), parentSide.hooks, LISTENERS, 1);
    assert.equal(parentSide.parent.state, 'childTakingOver');
    childSide.child.startingWorkers();
  }
  if (stage === 'drainingParent') {
    childSide.child.takeOver();
    await waitFor(() => parentSide.parent.is('draining'), { timeoutMs: 2000, what: 'parent draining' });
  }
  assert.equal(childSide.child.state, stage);
  return { ...parentSide, ...childSide };
}

describe('ChildMachine', () => {
  test('epoch 0, no parent: initializing, takingSockets (nothing), startingWorkers, serving', async (t) => {
    const { child, childSeen, warnings } = newChild(t, { epoch: 0 });
    await child.connect(undefined);
    assert.equal(child.hasParent, false);
    const inherited = await child.takeSockets(ask(LISTENERS, 2));
    assert.equal(inherited.fds.size, 0);
    assert.deepEqual(inherited.held, []);
    child.startingWorkers();
    child.takeOver();
    assert.deepEqual(steps(childSeen), ['connecting→initializing', 'initializing→takingSockets', 'takingSockets→startingWorkers', 'startingWorkers→serving']);
    assert.equal(childSeen[0].reason, 'no parent');
    assert.deepEqual(warnings, []);
  });

  test('a whole handoff with a real parent: sockets in two records, drain, terminate after parentShutdownMs, serving', async (t) => {
    const { parent, hooks, address, seen } = startParent(t);
    const { child, childSeen, warnings } = newChild(t, { parentShutdownMs: 30 });
    await child.connect(address);
    assert.ok(child.hasParent);
    assert.equal(parent.state, 'childInitializing');
    // 2 x 130 sockets: more than one record can carry (253 fds), joined by the child.
    checkAndClose(await child.takeSockets(ask(LISTENERS, 130)), hooks, LISTENERS, 130);
    assert.equal(parent.state, 'childTakingOver');
    child.startingWorkers();
    child.takeOver();
    assert.equal(child.state, 'drainingParent');
    await waitFor(() => child.is('serving') && parent.is('terminated'));
    assert.deepEqual(steps(childSeen), [
      'connecting→handshaking',
      'handshaking→initializing',
      'initializing→takingSockets',
      'takingSockets→startingWorkers',
      'startingWorkers→drainingParent',
      'drainingParent→terminatingParent',
      'terminatingParent→serving',
    ]);
    assert.equal(childSeen.at(-1)!.reason, 'parent exited');
    assert.deepEqual(steps(seen), [
      'notReady→serving',
      'serving→handshaking',
      'handshaking→childInitializing',
      'childInitializing→childTakingOver',
      'childTakingOver→draining',
      'draining→terminating',
      'terminating→terminated',
    ]);
    assert.deepEqual(hooks.calls, ['sockets', 'stopAccepting', `drain ${NEVER}`, 'terminate']);
    assert.deepEqual(warnings, []);
    assert.deepEqual(hooks.warnings, []);
  });

  test('initializing→startingWorkers without asking for sockets', async (t) => {
    const { child, childSeen, parent } = await handoff(t, 'initializing');
    child.startingWorkers();
    assert.equal(steps(childSeen).at(-1), 'initializing→startingWorkers');
    assert.equal(parent.state, 'childInitializing', 'the parent was asked nothing');
  });

  test('no parent listening: connecting→failed with BATON_NO_PARENT', async (t) => {
    const { child, childSeen } = newChild(t);
    await assert.rejects(child.connect(freshAddress()), { code: 'BATON_NO_PARENT', message: /restart epoch 2 found no parent at @baton-unit-/ });
    assert.deepEqual(steps(childSeen), ['connecting→failed']);
  });

  test('a parent running as a uid not allowed: connecting→failed with BATON_PEER_REFUSED; the parent serves on', async (t) => {
    const { parent, address, seen } = startParent(t);
    const { child, childSeen } = newChild(t, { allowedUids: [12345] });
    await assert.rejects(child.connect(address), { code: 'BATON_PEER_REFUSED', message: new RegExp(`runs as uid ${uid}, not 12345`) });
    assert.deepEqual(steps(childSeen), ['connecting→failed']);
    assert.equal(child.hasParent, false);
    // The parent saw a peer that said nothing and left.
    await waitFor(() => steps(seen).includes('handshaking→serving'));
    assert.equal(parent.state, 'serving');
  });

  test('a real parent of another version refuses: handshaking→failed with its code', async (t) => {
    const { parent, address, seen, hooks } = startParent(t, { hotRestartVersion: 'other' });
    const { child, childSeen } = newChild(t);
    await assert.rejects(child.connect(address), { code: 'BATON_VERSION_MISMATCH', message: /the parent refused this generation: incompatible child/ });
    assert.deepEqual(steps(childSeen), ['connecting→handshaking', 'handshaking→failed']);
    assert.equal(parent.state, 'serving');
    assert.deepEqual(steps(seen), ['notReady→serving', 'serving→handshaking', 'handshaking→serving']);
    assert.deepEqual(hooks.calls, []);
  });

  // The child sends hello as soon as it connects; a parent that refuses at
  // accept() closes with that hello unread, and on a SEQPACKET socket the
  // kernel then reports ECONNRESET to the child before the 'refused' record,
  // which the channel must still read.
  for (const busy of ['not ready', 'handing over to another child'] as const) {
    test(
      `a real parent ${busy} refuses: the child fails with BATON_PARENT_BUSY`,
      async (t) => {
        const { parent, address } = startParent(t, {}, busy === 'handing over to another child');
        if (busy === 'handing over to another child') {
          rawPeer(t, address);
          await waitFor(() => parent.is('handshaking'));
        }
        const { child, childSeen } = newChild(t);
        await assert.rejects(child.connect(address), { code: 'BATON_PARENT_BUSY' });
        assert.deepEqual(steps(childSeen), ['connecting→handshaking', 'handshaking→failed']);
      },
    );
  }

  // handshaking→failed, for every way a parent can fail the handshake.
  const handshakes: { what: string; answer: (message: Message, connection: Connection) => void; code: string; message: RegExp; timeoutMs?: number }[] = [
    { what: 'sends no welcome within handshakeTimeoutMs', answer: () => {}, code: 'BATON_TIMEOUT', message: /no welcome within 30 ms/, timeoutMs: 30 },
    {
      what: 'refuses after reading hello',
      answer: (_, c) => (c.send({ type: 'refused', code: 'BATON_PARENT_BUSY', message: 'busy' }), c.close()),
      code: 'BATON_PARENT_BUSY',
      message: /refused this generation: busy/,
    },
    {
      what: 'refuses with a code baton does not know',
      answer: (_, c) => (c.send({ type: 'refused', code: 'E_WHO_KNOWS', message: 'no' }), c.close()),
      code: 'BATON_PROTOCOL',
      message: /refused this generation: no/,
    },
    { what: 'welcomes with another version', answer: welcoming(undefined, { hotRestartVersion: 'other' }), code: 'BATON_VERSION_MISMATCH', message: /hot restart version 'other'/ },
    { what: 'answers something else', answer: (_, c) => c.send({ type: 'error', code: 'BATON_PROTOCOL', message: '?' }), code: 'BATON_PROTOCOL', message: /expected welcome from the parent, got error/ },
    { what: 'closes the channel', answer: (_, c) => c.close(), code: 'BATON_CHANNEL_CLOSED', message: /during the handshake/ },
  ];
  for (const { what, answer, code, message, timeoutMs = 2000 } of handshakes) {
    test(`a parent that ${what}: handshaking→failed with ${code}`, async (t) => {
      const fake = fakeParent(t, answer);
      const { child, childSeen } = newChild(t, { handshakeTimeoutMs: timeoutMs });
      await assert.rejects(child.connect(fake.address), { code, message });
      assert.deepEqual(steps(childSeen), ['connecting→handshaking', 'handshaking→failed']);
      assert.equal(child.hasParent, false);
      await waitFor(() => fake.closed, { timeoutMs: 2000, what: 'the child let go of the parent' });
      assert.deepEqual(fake.received, ['hello']);
    });
  }

  // takingSockets→failed, for every way a parent can fail getSockets.
  const requests: { what: string; answer: (message: Message, connection: Connection, fd: number) => void; code: string; timeoutMs?: number; told?: string[] }[] = [
    { what: 'never answers within requestTimeoutMs', answer: () => {}, code: 'BATON_TIMEOUT', timeoutMs: 30 },
    { what: 'answers with an ack', answer: (m, c) => c.send({ type: 'ack', re: (m as GetSockets).id }), code: 'BATON_PROTOCOL' },
    { what: 'answers with an error', answer: (m, c) => c.send({ type: 'error', re: (m as GetSockets).id, code: 'BATON_INVALID_STATE', message: 'not now' }), code: 'BATON_INVALID_STATE' },
    {
      what: 'sends part of its sockets, then an error',
      answer: (m, c, fd) => {
        const re = (m as GetSockets).id;
        c.send({ type: 'sockets', re, part: 0, parts: 2, sockets: [{ listener: 0, index: 0 }], held: [] }, [fd]);
        c.send({ type: 'error', re, code: 'BATON_INVALID_STATE', message: 'changed its mind' });
      },
      code: 'BATON_INVALID_STATE',
    },
    {
      // Failed as it comes, not at the request's timeout, and the fd of the first part closed.
      what: 'sends part of its sockets, then a part it cannot read (one fd too many)',
      answer: (m, c, fd) => {
        const re = (m as GetSockets).id;
        c.send({ type: 'sockets', re, part: 0, parts: 2, sockets: [{ listener: 0, index: 0 }], held: [] }, [fd]);
        c.send({ type: 'sockets', re, part: 1, parts: 2, sockets: [], held: [] }, [fd]);
      },
      code: 'BATON_PROTOCOL',
      timeoutMs: 60_000,
      told: ['error'], // the parent hears what was wrong with its record
    },
    {
      what: 'sends a socket that was not asked for',
      answer: (m, c, fd) => c.send({ type: 'sockets', re: (m as GetSockets).id, part: 0, parts: 1, sockets: [{ listener: 5, index: 0 }], held: [] }, [fd]),
      code: 'BATON_PROTOCOL',
    },
  ];
  for (const { what, answer, code, timeoutMs = 2000, told = [] } of requests) {
    test(`a parent that ${what}: takingSockets→failed with ${code}, fds closed`, async (t) => {
      const socket = native.tcpListen(4, '127.0.0.1', 0, false, 8);
      t.after(() => native.close(socket));
      const fake = fakeParent(t, welcoming((m, c) => answer(m, c, socket)));
      const { child, childSeen } = newChild(t, { requestTimeoutMs: timeoutMs });
      await child.connect(fake.address);
      const fds = fdCount();
      await assert.rejects(child.takeSockets(ask(LISTENERS, 1)), { code });
      assert.deepEqual(steps(childSeen).slice(-2), ['initializing→takingSockets', 'takingSockets→failed']);
      await waitFor(() => fake.closed, { timeoutMs: 2000, what: 'the child let go of the parent' });
      assert.ok(fdCount() <= fds, 'no received fd left open');
      assert.deepEqual(fake.received, ['hello', 'getSockets', ...told]);
    });
  }

  test('a parent that answers nothing after welcome: drain unconfirmed, terminate after parentShutdownMs, cut off after requestTimeoutMs', async (t) => {
    const fake = fakeParent(t, welcoming());
    const { child, childSeen, warnings } = newChild(t, { parentShutdownMs: 20, requestTimeoutMs: 40 });
    await child.connect(fake.address);
    child.startingWorkers();
    child.takeOver();
    await waitFor(() => child.is('serving'));
    assert.deepEqual(steps(childSeen).slice(-3), ['startingWorkers→drainingParent', 'drainingParent→terminatingParent', 'terminatingParent→serving']);
    await waitFor(() => fake.closed && warnings.length > 0);
    assert.match(warnings.join('\n'), /the parent did not confirm the drain/);
    assert.deepEqual(fake.received, ['hello', 'drain', 'terminate']);
  });

  test('a parent that gives up on a slow child: the child fails with its reason, before and after taking sockets', async (t) => {
    const early = startParent(t, { childInitTimeoutMs: 30 });
    const first = newChild(t);
    await first.child.connect(early.address);
    await waitFor(() => first.child.is('failed'), { timeoutMs: 2000, what: 'the child failed' });
    assert.match(first.childSeen.at(-1)!.reason!, /did not take over within 30 ms/);
    await assert.rejects(first.child.takeSockets(ask(LISTENERS, 1)), { code: 'BATON_TIMEOUT', message: /the parent gave up on this generation: .*did not take over within 30 ms/ });
    assert.deepEqual(first.warnings, [], 'not mistaken for a parent that died');

    const late = startParent(t, { childInitTimeoutMs: 100 });
    const second = newChild(t);
    await second.child.connect(late.address);
    checkAndClose(await second.child.takeSockets(ask(LISTENERS, 1)), late.hooks, LISTENERS, 1);
    second.child.startingWorkers();
    await waitFor(() => second.child.is('failed'), { timeoutMs: 2000, what: 'the child failed' });
    assert.throws(() => second.child.takeOver(), { code: 'BATON_TIMEOUT', message: /took sockets but did not ask to drain within 100 ms/ });
    await waitFor(() => late.parent.is('serving'), { timeoutMs: 2000, what: 'the parent serving: the failed child closed' });
  });

  test('a refusal that crosses our drain: a warning, and the child serves on', async (t) => {
    const fake = fakeParent(t, welcoming((m, c) => {
      if (m.type === 'getSockets') return c.send({ type: 'sockets', re: m.id, part: 0, parts: 1, sockets: [], held: [] });
      if (m.type !== 'drain') return;
      c.send({ type: 'refused', code: 'BATON_TIMEOUT', message: 'too slow' });
      c.send({ type: 'ack', re: m.id });
    }));
    const { child, warnings } = newChild(t);
    await child.connect(fake.address);
    await child.takeSockets(ask([], 1));
    child.startingWorkers();
    child.takeOver();
    await waitFor(() => warnings.length > 0, { timeoutMs: 2000, what: 'the warning' });
    assert.match(warnings[0], /gave up on us as we asked it to drain \(too slow\); it drains all the same/);
    assert.equal(child.state, 'drainingParent');
  });

  test('pullStats while the parent drains: its snapshot parts, joined; at terminate it pushes its final stats (twice) before closing', async (t) => {
    const finals: unknown[] = [];
    const { parent, child } = await handoff(t, 'drainingParent', { onParentStats: (s) => void finals.push(s) });
    assert.deepEqual(await child.pullStats(), { format: 'fake', startTimeSeconds: 1, metrics: [{ name: 'm0', series: [] }, { name: 'm1', series: [] }] });
    await parent.terminate('test');
    await waitFor(() => child.is('serving'), { timeoutMs: 2000, what: 'the child alone' });
    assert.equal(finals.length, 2, 'the final stats came, as it began and once its hooks were done, before the channel closed');
    assert.equal(await child.pullStats(), undefined, 'no parent, no stats');
  });

  test('a pull answered just before the final stats, and read with them, is older: it is dropped, the final ones stand', async (t) => {
    const imported: unknown[] = [];
    const snapshot = (n: number) => ({ format: 'fake', startTimeSeconds: 1, metrics: [{ name: `m${n}`, series: [] }] });
    const fake = fakeParent(t, welcoming((m, c) => {
      if (m.type === 'getSockets') return c.send({ type: 'sockets', re: m.id, part: 0, parts: 1, sockets: [], held: [] });
      if (m.type === 'drain') return c.send({ type: 'ack', re: m.id });
      if (m.type !== 'getStats') return;
      // Both in one go, as when the parent answers and begins to terminate in the same tick.
      c.send({ type: 'stats', re: m.id, part: 0, parts: 1, snapshot: snapshot(1) });
      c.send({ type: 'stats', final: true, part: 0, parts: 1, snapshot: snapshot(2) });
    }));
    const { child } = newChild(t, { onParentStats: (s) => void imported.push(s) });
    await child.connect(fake.address);
    await child.takeSockets(ask([], 1));
    child.startingWorkers();
    await child.takeOver();
    assert.equal(await child.pullStats(), undefined);
    assert.deepEqual(imported, [snapshot(2)]);
  });

  test('final stats that cannot be read, or that come before we took over, are a warning and nothing more', async (t) => {
    const imported: unknown[] = [];
    const fake = fakeParent(t, welcoming((m, c) => {
      if (m.type === 'getSockets') {
        c.send({ type: 'stats', final: true, part: 0, parts: 1, snapshot: { format: 'x' } }); // before take-over
        return c.send({ type: 'sockets', re: m.id, part: 0, parts: 1, sockets: [], held: [] });
      }
      if (m.type === 'drain') {
        c.send({ type: 'ack', re: m.id });
        c.send({ type: 'stats', final: true, part: 0, parts: 1, snapshot: {} }); // no metrics: cannot be joined
      }
    }));
    const { child, warnings } = newChild(t, { onParentStats: (s) => void imported.push(s) });
    await child.connect(fake.address);
    await child.takeSockets(ask([], 1));
    child.startingWorkers();
    await child.takeOver();
    await waitFor(() => warnings.length === 2, { timeoutMs: 2000, what: 'two warnings' });
    assert.match(warnings[0], /sent stats part 0 of 1 unexpectedly \(we are takingSockets\): ignored/);
    assert.match(warnings[1], /the parent's final stats were refused: every part must be a stats snapshot/);
    assert.deepEqual(imported, []);
    assert.equal(child.state, 'drainingParent');
  });

  test('reportRetired: a draining parent closes its copy of the socket; before the drain nothing is sent', async (t) => {
    const { hooks, child } = await handoff(t, 'drainingParent');
    await child.reportRetired(LISTENERS[1], 3);
    assert.deepEqual(hooks.calls.slice(-1), ['retired 5353 3']);
    const early = await handoff(t, 'startingWorkers');
    await early.child.reportRetired(LISTENERS[1], 3);
    assert.ok(!early.hooks.calls.some((c) => c.startsWith('retired')));
  });

  test('reportAccepting(false), then gone: the parent drains on without accepting again', async (t) => {
    const { parent, hooks, child } = await handoff(t, 'drainingParent');
    await child.reportAccepting(false);
    child.detach();
    await waitFor(() => hooks.warnings.length > 0, { timeoutMs: 2000, what: 'the parent noticing' });
    assert.match(hooks.warnings.join('\n'), /went away after its own child took over/);
    assert.equal(parent.state, 'draining');
    assert.ok(!hooks.calls.includes('resumeAccepting'));
  });

  test('drainingParent→serving when the parent exits before its shutdown time', async (t) => {
    const { parent, child, childSeen, hooks } = await handoff(t, 'drainingParent');
    await parent.terminate('its own shutdown');
    await waitFor(() => child.is('serving'));
    assert.equal(steps(childSeen).at(-1), 'drainingParent→serving');
    assert.equal(childSeen.at(-1)!.reason, 'parent exited');
    assert.deepEqual(hooks.calls, ['sockets', 'stopAccepting', `drain ${NEVER}`, 'terminate']);
  });

  // detach(): before taking over the handoff fails; either way the parent serves again.
  const detaches: { stage: HandoffStage; child: string; parent: string; resumed: boolean }[] = [
    { stage: 'initializing', child: 'initializing→failed', parent: 'childInitializing→serving', resumed: false },
    { stage: 'startingWorkers', child: 'startingWorkers→failed', parent: 'childTakingOver→serving', resumed: false },
    { stage: 'drainingParent', child: 'drainingParent→serving', parent: 'draining→serving', resumed: true },
  ];
  for (const { stage, child: childStep, parent: parentStep, resumed } of detaches) {
    test(`detach() in ${stage}: child ${childStep}, parent ${parentStep}`, async (t) => {
      const { parent, seen, hooks, child, childSeen } = await handoff(t, stage);
      child.detach();
      await waitFor(() => parent.is('serving'));
      assert.equal(steps(childSeen).at(-1), childStep);
      assert.equal(steps(seen).at(-1), parentStep);
      assert.equal(hooks.calls.includes('resumeAccepting'), resumed);
      assert.ok(!hooks.calls.includes('terminate'));
      child.detach(); // again: nothing more happens
      assert.equal(steps(childSeen).at(-1), childStep);
    });
  }

  test('a parent that goes away during initializing: a warning, then no sockets and serving alone', async (t) => {
    const { parent, child, childSeen, warnings } = await handoff(t, 'initializing');
    await parent.terminate('gone');
    await waitFor(() => warnings.length > 0);
    assert.match(warnings[0], /the parent went away during our initializing: going on without it/);
    assert.equal(child.state, 'initializing');
    const inherited = await child.takeSockets(ask(LISTENERS, 1));
    assert.equal(inherited.fds.size, 0);
    assert.deepEqual(inherited.held, []);
    child.startingWorkers();
    child.takeOver();
    assert.deepEqual(steps(childSeen).slice(-3), ['initializing→takingSockets', 'takingSockets→startingWorkers', 'startingWorkers→serving']);
  });

  test('a parent that goes away while answering getSockets: a warning, then no sockets', async (t) => {
    const fake = fakeParent(t, welcoming((_, c) => c.close()));
    const { child, warnings } = newChild(t);
    await child.connect(fake.address);
    const inherited = await child.takeSockets(ask(LISTENERS, 1));
    assert.equal(inherited.fds.size, 0);
    assert.deepEqual(inherited.held, []);
    assert.equal(child.state, 'takingSockets');
    assert.match(warnings.join('\n'), /went away during our takingSockets/);
  });

  // Even with no listeners the child asks: the parent learns that it releases all of its own.
  test(
    'a child with no listeners takes over: the parent drains',
    async (t) => {
      const { parent, hooks, child, warnings } = await handoff(t, 'initializing');
      await child.takeSockets(ask([], 1));
      child.startingWorkers();
      child.takeOver();
      await waitFor(() => parent.is('draining') || warnings.length > 0);
      assert.deepEqual(warnings, []);
      assert.equal(parent.state, 'draining');
      assert.deepEqual(hooks.calls, ['sockets', 'stopAccepting', `drain ${NEVER}`]);
    },
  );
});

after(() => {
  assert.equal(fdCount(), fdsAtStart, 'every fd opened by these tests was closed');
});
