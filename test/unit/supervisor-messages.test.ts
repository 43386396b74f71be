// The supervisor's command line records: every one checked both ways, a
// client of another protocol version told what to run, and the supervisor's
// name never read as an epoch's.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { asSupervisorAddress, controlAddress, liveEpochs, supervisorAddress } from '../../src/channel/address';
import { ControlServer } from '../../src/channel/server';
import { MAX_MESSAGE_BYTES } from '../../src/protocol/messages';
import { SUPERVISOR_PROTOCOL, decodeRecord, encodeRecord, type SupervisorMessage } from '../../src/supervisor/messages';
import { uniqueSocketPath } from '../support/processes';

const record = (o: unknown) => Buffer.from(JSON.stringify(o));
const status = {
  pid: 10,
  batonVersion: '0.1.0',
  baseId: 0,
  socket: '@baton_0_supervisor',
  restarts: 1,
  rollbacks: 0,
  generations: [
    { epoch: 0, pid: 11, state: 'draining', workers: 2, listeners: [{ name: 'tcp://127.0.0.1:8080', sockets: 2 }], sinceTakeOverMs: 900, connections: 3 },
    { epoch: 1, pid: 12, state: 'starting', workers: null, listeners: [], sinceTakeOverMs: null, connections: null },
  ],
};

test('every record survives encode and decode whole', () => {
  const records: SupervisorMessage[] = [
    { type: 'reload', protocol: SUPERVISOR_PROTOCOL, id: 1 },
    { type: 'status', protocol: SUPERVISOR_PROTOCOL, id: 2 },
    { type: 'rollback', protocol: SUPERVISOR_PROTOCOL, id: 3 },
    { type: 'upgrade', protocol: SUPERVISOR_PROTOCOL, id: 4 },
    { type: 'outcome', protocol: SUPERVISOR_PROTOCOL, re: 1, ok: true, message: 'epoch 1 took over', epoch: 1, serving: 1, tookOverMs: 231, workers: 4, parentWorkers: 2, inherited: 2, created: 2 },
    { type: 'outcome', protocol: SUPERVISOR_PROTOCOL, re: 1, ok: false, message: 'rollback refused', reason: 'stopping', serving: null },
    { type: 'snapshot', protocol: SUPERVISOR_PROTOCOL, re: 2, status: status as never },
    { type: 'error', protocol: SUPERVISOR_PROTOCOL, code: 'BATON_PEER_REFUSED', message: 'uid 65534' },
  ];
  for (const message of records) assert.deepEqual(decodeRecord(encodeRecord(message)), message);
});

test('a bad record is a ProtocolError naming the field, with the id of the request when it had one', () => {
  const refused: [unknown, RegExp, number | undefined][] = [
    ['not json', /record is not JSON/, undefined],
    [[1, 2], /not a JSON object/, undefined],
    [{ type: 'shutdown', protocol: 1, id: 4 }, /unrecognized record type "shutdown"/, undefined],
    [{ type: 'reload', protocol: 2, id: 5 }, /supervisor protocol 2, this side speaks 1: run the baton command of the same version as `baton run`/, 5],
    [{ type: 'reload', protocol: 1, id: -1 }, /reload\.id must be an integer/, undefined],
    [{ type: 'outcome', protocol: 1, re: 1, ok: 'yes', message: '' }, /outcome\.ok must be true or false/, undefined],
    [{ type: 'outcome', protocol: 1, re: 1, ok: true, message: 'x'.repeat(5000) }, /outcome\.message must be a string of at most 4096/, undefined],
    [{ type: 'snapshot', protocol: 1, re: 1, status: { ...status, generations: [{ ...status.generations[0], state: 'dancing' }] } }, /status\.generations\[0\]\.state must be one of starting, serving, draining, stopping/, undefined],
    [{ type: 'snapshot', protocol: 1, re: 1, status: { ...status, generations: Array(65).fill(status.generations[0]) } }, /snapshot\.status\.generations must be an array of at most 64/, undefined],
  ];
  for (const [input, message, re] of refused) {
    assert.throws(() => decodeRecord(typeof input === 'string' ? Buffer.from(input) : record(input)), (error: Error & { code?: string; re?: number }) => {
      assert.equal(error.code, 'BATON_PROTOCOL');
      assert.match(error.message, message);
      assert.equal(error.re, re, JSON.stringify(input));
      return true;
    });
  }
  const huge = { type: 'outcome', protocol: 1, re: 1, ok: true, message: 'x'.repeat(MAX_MESSAGE_BYTES) } as const;
  assert.throws(() => encodeRecord(huge), /over the limit of 65536/);
});

test("the supervisor's socket is named beside the epochs' and never counts as one", (t) => {
  const socketPath = uniqueSocketPath('names');
  const supervisor = ControlServer.listen(supervisorAddress(socketPath, 3), 0o600);
  t.after(() => supervisor.close());
  assert.equal(supervisor.address.display, `${socketPath}_3_supervisor`);
  assert.deepEqual(liveEpochs(socketPath, 3), []);
  assert.deepEqual(asSupervisorAddress(`${socketPath}_3_supervisor`), supervisorAddress(socketPath, 3));
  assert.equal(asSupervisorAddress(controlAddress(socketPath, 3, 0).display), undefined);
});
