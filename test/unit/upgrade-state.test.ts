// The state `baton upgrade` hands to the new image: whole through encode and
// decode, every field checked, the fds to keep across the exec exactly those
// it lists, and a version this code cannot read refused with what to do.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { carriedFds, decodeState, encodeState, READABLE_STATE_VERSIONS, STATE_VERSION, type UpgradeState } from '../../src/supervisor/upgrade-state';

const state: UpgradeState = {
  stateVersion: STATE_VERSION,
  batonVersion: '0.1.0',
  baseId: 7,
  highestEpoch: 3,
  restarts: 3,
  rollbacks: 1,
  options: { command: '/usr/bin/node', args: ['server.js', '--port', '80'], engine: { socketPath: '@baton', drainTimeS: 5 }, killTimeoutMs: 30_000, rollback: 'auto', log: 'json', pidFile: '/run/baton.pid' },
  generations: [
    { epoch: 1, pid: 101, phase: 'draining', reload: true, tookOverAgoMs: 5000, connections: 4, statusFd: 21, parentEpoch: 0 },
    {
      epoch: 3,
      parentEpoch: 1,
      pid: 103,
      phase: 'serving',
      reload: true,
      tookOverAgoMs: 20,
      takenOver: { event: 'takenOver', timeline: { startedAt: 1_780_000_000_000, marks: { baton: 40, takenOver: 120 } }, epoch: 3, ms: 80, inherited: 2, created: 0, surplus: 0, tcpMigrateReq: null, workers: 2, listeners: [{ name: 'tcp://127.0.0.1:80', sockets: 2 }] },
      statusFd: 23,
    },
    { epoch: 2, pid: 102, phase: 'stopping', reload: true, statusFd: -1, exit: { code: null, signal: 'SIGKILL' } },
  ],
  controlFd: 19,
  systemd: { notifySocket: '/run/systemd/notify', watchdogUsec: '2000000' },
  answer: { fd: 25, re: 1 },
};

test('a state survives encode and decode whole; without systemd, control socket or client it is still read', () => {
  assert.deepEqual(decodeState(encodeState(state)), state);
  const bare: UpgradeState = { ...state, baseId: null, highestEpoch: null, controlFd: null, systemd: null, answer: null, generations: [] };
  assert.deepEqual(decodeState(encodeState(bare)), bare);
});

test('the fds an exec keeps: the control socket, every open status pipe, the asking client; no closed pipe', () => {
  assert.deepEqual(carriedFds(state), [19, 21, 23, 25]);
  assert.deepEqual(carriedFds({ ...state, controlFd: null, answer: null, generations: [] }), []);
});

test('a state version this code does not read is refused, naming the versions it reads and what to do instead', () => {
  assert.deepEqual(READABLE_STATE_VERSIONS, [1]);
  for (const stateVersion of [0, 2, '1', undefined]) {
    assert.throws(() => decodeState(JSON.stringify({ ...state, stateVersion })), {
      code: 'BATON_PROTOCOL',
      message: new RegExp(`^upgrade state version ${JSON.stringify(stateVersion) ?? 'undefined'} cannot be read by this baton, which reads version 1: restart the supervisor instead`),
    });
  }
});

test('a bad field is named', () => {
  const refused: Array<[unknown, RegExp]> = [
    ['{', /not JSON/],
    [[], /^state must be an object/],
    [{ ...state, restarts: -1 }, /state\.restarts must be an integer/],
    [{ ...state, options: { ...state.options, rollback: 'maybe' } }, /state\.options\.rollback must be one of auto, off/],
    [{ ...state, options: { ...state.options, args: [1] } }, /state\.options\.args\[0\] must be a string/],
    [{ ...state, options: { ...state.options, engine: { drainTimeS: -5 } } }, /drain/i],
    [{ ...state, generations: [{ ...state.generations[0], phase: 'dancing' }] }, /state\.generations\[0\]\.phase must be one of starting, serving, draining, stopping/],
    [{ ...state, generations: [{ ...state.generations[0], statusFd: 2 }] }, /state\.generations\[0\]\.statusFd must be an integer in 3\.\./],
    [{ ...state, generations: [{ ...state.generations[0], pid: 0 }] }, /state\.generations\[0\]\.pid must be an integer in 1\.\./],
    [{ ...state, controlFd: 'x' }, /state\.controlFd must be an integer/],
    [{ ...state, answer: { fd: 25 } }, /state\.answer\.re must be an integer/],
  ];
  for (const [value, message] of refused) assert.throws(() => decodeState(typeof value === 'string' ? value : JSON.stringify(value)), { message }, JSON.stringify(value).slice(0, 80));
});
