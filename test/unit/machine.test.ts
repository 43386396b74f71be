import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StateMachine, type Transition } from '../../src/restart/machine';
import { sleep, waitFor } from '../support/wait';

type S = 'a' | 'b' | 'c';
const table = { a: ['b'], b: ['a', 'c'], c: [] } as const;

test('allowed transitions happen, with timings; others throw INVALID_STATE', async () => {
  const m = new StateMachine<S>('m', 'a', table);
  const seen: Transition<S>[] = [];
  m.on('transition', (t) => seen.push(t));
  await sleep(5);
  m.to('b', 'why');
  assert.equal(m.state, 'b');
  assert.ok(m.is('b', 'c'));
  assert.equal(seen[0].from, 'a');
  assert.equal(seen[0].to, 'b');
  assert.equal(seen[0].reason, 'why');
  assert.ok(seen[0].inStateMs >= 4, `inStateMs ${seen[0].inStateMs}`);
  assert.throws(() => m.to('b'), { code: 'BATON_INVALID_STATE' });
  m.to('c');
  assert.throws(() => m.to('a'), /no transition from c to a/);
  assert.equal(m.can('a'), false);
});

test('a deadline fires only if the state was not left', async () => {
  const m = new StateMachine<S>('m', 'a', table);
  let fired = 0;
  m.expire(10, () => fired++);
  m.to('b');
  await sleep(30);
  assert.equal(fired, 0);
  m.expire(10, () => m.to('c', 'timeout'));
  await waitFor(() => m.is('c'), { timeoutMs: 1000, what: 'the deadline moving to c' });
  assert.equal(m.state, 'c');
  // Leaving and coming back to the same state does not revive an old deadline.
  const n = new StateMachine<S>('n', 'a', table);
  n.expire(20, () => fired++);
  n.to('b');
  n.to('a');
  await sleep(40);
  assert.equal(fired, 0);
});
