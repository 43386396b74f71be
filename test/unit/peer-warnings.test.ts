// Warnings about control socket peers are bounded: the first few of an
// interval in full, then one summary per interval counting the rest by peer
// pid and reason; a quiet interval starts over, and what is held back when
// the generation ends is still told.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PeerWarnings, reasonOf } from '../../src/restart/peer-warnings';

const junk = (pid: number, bytes: number) => `child pid ${pid}: record is not JSON (${bytes} bytes)`;

test('the first few in full, then one summary per interval by pid and reason; a quiet interval starts over', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const lines: string[] = [];
  const warnings = new PeerWarnings((line) => lines.push(line), { burst: 2, intervalMs: 1000 });

  for (let i = 0; i < 1000; i++) warnings.report(7, junk(7, i));
  for (let i = 0; i < 10; i++) warnings.report(8, `child pid 8: unrecognized message type "x${i}"`);
  warnings.report(8, 'refused a child: peer pid 8 runs as uid 65534; generation 0 accepts only uid 0');
  assert.deepEqual(lines, [junk(7, 0), junk(7, 1)], 'two in full, the rest counted');

  t.mock.timers.tick(1000);
  assert.equal(lines.length, 3, 'one summary');
  assert.equal(
    lines[2],
    'control socket: 1009 more warnings about peers within 1 s, counted, not logged: ' +
      '998 from pid 7: child pid N: record is not JSON (N bytes); ' +
      '10 from pid 8: child pid N: unrecognized message type "…"; ' +
      '1 from pid 8: refused a child: peer pid N runs as uid N; generation N accepts only uid N',
  );

  // The flood goes on: nothing more in full, a summary per interval.
  for (let i = 0; i < 5; i++) warnings.report(7, junk(7, i));
  t.mock.timers.tick(1000);
  assert.equal(lines.length, 4);
  assert.match(lines[3], /^control socket: 5 more warnings .*: 5 from pid 7: child pid N: record is not JSON \(N bytes\)$/);

  // A quiet interval ends it; the next warning is in full again.
  t.mock.timers.tick(1000);
  assert.equal(lines.length, 4, 'no summary of nothing');
  warnings.report(9, junk(9, 3));
  assert.deepEqual(lines.slice(4), [junk(9, 3)]);
});

test('kinds past 16 are one count; what is held back is told at flush, and nothing after it', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const lines: string[] = [];
  const warnings = new PeerWarnings((line) => lines.push(line), { burst: 0, intervalMs: 1000 });
  for (let pid = 1; pid <= 20; pid++) warnings.report(pid, junk(pid, 1));
  assert.equal(lines.length, 0);
  warnings.flush();
  assert.equal(lines.length, 1);
  assert.match(lines[0], /^control socket: 20 more warnings /);
  assert.equal(lines[0].match(/ from pid /g)?.length, 16);
  assert.match(lines[0], /; 4 of other kinds$/);
  t.mock.timers.tick(5000);
  assert.equal(lines.length, 1, 'the interval ended with the flush');
});

test('a reason is the message without its numbers and quoted excerpts', () => {
  assert.equal(reasonOf('a drain record came with 2 fds, expected 0'), 'a drain record came with N fds, expected N');
  assert.equal(reasonOf(`unrecognized message type "${'a'.repeat(39)}...`), 'unrecognized message type "…"');
  assert.equal(reasonOf("hot restart version 'x', this generation runs 'baton.protocol1'"), "hot restart version '…', this generation runs '…'");
});
