// The handoff plan, for every pair of worker counts 1..16 both ways and both
// surplus policies, and for listeners added, removed and changed. The
// kernel's side is modelled too: a SO_REUSEPORT group is an array in listen
// order, a leaving socket is replaced by the last one, and a steering program
// picks by position; the plan must keep position == worker throughout.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { planHandoff, takenSockets, type HandoffPlan } from '../../src/listeners/plan';
import type { HeldListener, SurplusPolicy, WantedListener } from '../../src/protocol/messages';

const tcp = (port: number, ipv6Only = false): WantedListener => ({ protocol: 'tcp', host: '::', port, ipv6Only });
const held = (listener: WantedListener, sockets: number): HeldListener => ({ ...listener, sockets });
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);

/** The group as the kernel keeps it, through the child's creates and retirements. */
function simulateGroup(plan: HandoffPlan, parentSockets: number): void {
  const [listener] = plan.listeners;
  const group = range(0, parentSockets).filter((i) => !listener.closedByParent.includes(i)); // 'close': shut at the drain
  for (const s of listener.sockets.filter((s) => s.action === 'create')) group.push(s.index);
  const check = (when: string) => {
    const steered = listener.steerTo ?? group.length;
    assert.deepEqual(group.slice(0, steered), range(0, steered), `positions are worker indexes ${when}`);
  };
  check('after the handoff');
  for (const index of listener.retire) {
    const at = group.indexOf(index);
    group[at] = group[group.length - 1];
    group.pop();
    check(`after retiring ${index}`);
  }
  assert.deepEqual(group, range(0, listener.sockets.filter((s) => s.action !== 'surplus').length), 'in the end: one socket per worker, in order');
}

describe('planHandoff', () => {
  for (const policy of ['drain', 'close'] as SurplusPolicy[]) {
    test(`one listener, every parent and child worker count 1..16 (${policy})`, () => {
      for (let m = 1; m <= 16; m++) {
        for (let n = 1; n <= 16; n++) {
          const what = `${m} -> ${n}`;
          const plan = planHandoff([held(tcp(80), m)], [tcp(80)], n, policy);
          assert.deepEqual(plan.released, [], what);
          const [l] = plan.listeners;
          assert.equal(l.held, 0, what);

          // Every worker has its own socket: adopted if the parent had it, else created.
          for (const index of range(0, n)) {
            assert.deepEqual(l.sockets[index], { index, action: index < m ? 'adopt' : 'create', worker: index }, what);
          }
          const surplus = l.sockets.slice(n);
          const beyond = range(n, m);
          if (policy === 'drain') {
            // All of the parent's sockets come over; the surplus is spread over the workers, then retired from the top.
            assert.deepEqual(surplus, beyond.map((index) => ({ index, action: 'surplus', worker: index % n })), what);
            const load = range(0, n).map((w) => surplus.filter((s) => s.worker === w).length);
            assert.ok(Math.max(...load) - Math.min(...load) <= 1, `${what}: surplus evenly spread`);
            assert.deepEqual(l.retire, [...beyond].reverse(), what);
            assert.equal(l.steerTo, m > n ? n : null, what);
            assert.deepEqual(l.closedByParent, [], what);
          } else {
            assert.deepEqual(surplus, [], what);
            assert.deepEqual(l.retire, [], what);
            assert.equal(l.steerTo, null, what);
            assert.deepEqual(l.closedByParent, beyond, what);
          }

          // Each of the parent's sockets is accounted for exactly once.
          const taken = takenSockets(plan);
          assert.deepEqual(taken, l.sockets.filter((s) => s.action !== 'create').map((s) => ({ listener: 0, held: 0, index: s.index })), what);
          assert.deepEqual([...taken.map((t) => t.index), ...l.closedByParent].sort((a, b) => a - b), range(0, m), what);
          simulateGroup(plan, m);
        }
      }
    });
  }

  test('listeners added, removed, reordered and changed', () => {
    const plan = planHandoff(
      [held(tcp(80), 4), held(tcp(81), 2), held(tcp(82, true), 2), held({ ...tcp(53), protocol: 'udp' }, 3)],
      [{ ...tcp(53), protocol: 'udp' }, tcp(90), tcp(82, false), tcp(80)],
      2,
      'drain',
    );
    const [udp, added, changed, kept] = plan.listeners;
    // Matched by address whatever the order, protocol included.
    assert.equal(udp.held, 3);
    assert.deepEqual(udp.sockets.map((s) => s.action), ['adopt', 'adopt', 'surplus']);
    assert.equal(udp.steerTo, 2);
    // New: all created, and the group gets no program.
    assert.equal(added.held, undefined);
    assert.deepEqual(added.sockets.map((s) => s.action), ['create', 'create']);
    assert.equal(added.steerTo, null);
    // IPV6_V6ONLY cannot change on a bound socket: created anew, and the parent's is released.
    assert.equal(changed.held, undefined);
    assert.deepEqual(changed.sockets.map((s) => s.action), ['create', 'create']);
    assert.equal(kept.held, 0);
    assert.deepEqual(kept.retire, [3, 2]);
    // 81 is gone from the config, 82 changed: the parent serves their queues, then closes them.
    assert.deepEqual(plan.released, [1, 2]);
    assert.deepEqual(
      takenSockets(plan).map((t) => `${t.listener}/${t.held}/${t.index}`),
      ['0/3/0', '0/3/1', '0/3/2', '3/0/0', '3/0/1', '3/0/2', '3/0/3'],
    );
  });

  test('nothing held (epoch 0, or a parent that died) creates everything; nothing wanted releases everything', () => {
    const fresh = planHandoff([], [tcp(80), tcp(81)], 3, 'drain');
    assert.deepEqual(fresh.released, []);
    for (const l of fresh.listeners) assert.deepEqual(l.sockets.map((s) => s.action), ['create', 'create', 'create']);
    assert.deepEqual(takenSockets(fresh), []);
    const none = planHandoff([held(tcp(80), 2), held(tcp(81), 1)], [], 1, 'drain');
    assert.deepEqual(none, { listeners: [], released: [0, 1] });
  });

  test('bad arguments are refused', () => {
    assert.throws(() => planHandoff([], [tcp(80)], 0, 'drain'), { code: 'BATON_INVALID_ARGUMENT', message: /workers must be an integer in 1\.\.256/ });
    assert.throws(() => planHandoff([], [tcp(80)], 257, 'drain'), { code: 'BATON_INVALID_ARGUMENT' });
    assert.throws(() => planHandoff([], [tcp(80)], 1, 'keep' as SurplusPolicy), { code: 'BATON_INVALID_ARGUMENT', message: /surplus policy/ });
    assert.throws(() => planHandoff([held(tcp(80), 300)], [tcp(80)], 1, 'drain'), { code: 'BATON_INVALID_ARGUMENT', message: /held sockets/ });
  });
});
