// `npm run bench`'s quickest part, end to end: the micro suites in --quick
// mode write their figures as the README documents them. Figures and
// targets are not checked here: on a shared machine they are noise.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../support/processes';

interface Figure {
  name: string;
  value: number;
  unit: string;
  baseline: { name: string; value: number | null } | null;
}

test('bench --quick --only micro writes every figure with its unit and baseline', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'bench.json');
  const run = spawnSync(process.execPath, ['bench/index.mjs', '--quick', '--only', 'micro', '--json', file], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /on \d+ CPU cores/);
  assert.match(run.stdout, /handoff\.64x16\.batched\.ms/);

  const { machine, results } = JSON.parse(readFileSync(file, 'utf8')) as { machine: { cores: number }; results: Figure[] };
  assert.ok(machine.cores >= 1);
  for (const figure of results) {
    assert.match(figure.name, /^[a-z0-9-]+(\.[a-z0-9-]+)+$/, figure.name);
    assert.ok(Number.isFinite(figure.value) && figure.value > 0, `${figure.name} = ${figure.value}`);
    assert.ok(figure.unit.length > 0, `${figure.name} has a unit`);
    if (figure.baseline) assert.ok(results.some((f) => f.name === figure.baseline!.name && f.value === figure.baseline!.value), `${figure.name}'s baseline was measured`);
  }
  const names = results.map((f) => f.name);
  for (const shape of ['1x1', '16x4', '64x16']) {
    const batched = results.find((f) => f.name === `handoff.${shape}.batched.ms`);
    assert.equal(batched?.baseline?.name, `handoff.${shape}.per-socket.ms`);
  }
  for (const count of [1, 16, 253]) assert.ok(names.includes(`fd-passing.${count}.fds`));
});
