// The house's rules, checked on the source: no import cycle (type-only
// imports count: a cycle of types is a cycle of design), and a lower layer
// never imports a higher one. stats/ and drain/ are libraries that know
// nothing of the engine: beside errors and validation they may use only the
// addon's syscalls (binding.ts: the HTTP/2 drain writes a GOAWAY frame).

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../support/processes';

const SRC = join(ROOT, 'src');

/** Low to high; a module may import its own layer or a lower one. */
const LAYERS: Array<[string, number]> = [
  ['native.ts', 0],
  ['prebuild.ts', 0],
  ['install.ts', 1],
  ['binding.ts', 1],
  ['errors.ts', 0],
  ['validate.ts', 0],
  ['timeline.ts', 0],
  ['files.ts', 1],
  ['stats', 2],
  ['drain', 2],
  ['protocol', 3],
  ['channel', 4],
  ['options.ts', 4],
  ['listeners', 5],
  ['restart', 6],
  ['workers', 7],
  ['serve.ts', 8],
  ['index.ts', 9],
  ['supervisor', 9],
];

function layerOf(file: string): [string, number] {
  const top = relative(SRC, file).split('/')[0];
  const layer = LAYERS.find(([name]) => name === top);
  assert.ok(layer, `src/${top} has no layer in this test: give it one`);
  return layer;
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

function resolveImport(from: string, spec: string): string {
  const base = normalize(join(dirname(from), spec));
  for (const candidate of [`${base}.ts`, `${base}.d.ts`, join(base, 'index.ts')]) if (existsSync(candidate)) return candidate;
  throw new Error(`${relative(ROOT, from)} imports ${spec}, which is not a source file`);
}

function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sources(SRC)) {
    const text = readFileSync(file, 'utf8');
    const specs = [...text.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+'(\.[^']+)'/gms)].map((m) => m[1]);
    graph.set(file, specs.map((spec) => resolveImport(file, spec)));
  }
  return graph;
}

test('src/ has no import cycle, type-only imports included', () => {
  const graph = importGraph();
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (file: string, path: string[]): void => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'open') {
      cycles.push([...path.slice(path.indexOf(file)), file].map((f) => relative(SRC, f)).join(' -> '));
      return;
    }
    state.set(file, 'open');
    for (const next of graph.get(file) ?? []) visit(next, [...path, file]);
    state.set(file, 'done');
  };
  for (const file of graph.keys()) visit(file, []);
  assert.deepEqual(cycles, []);
});

test('a lower layer never imports a higher one; stats/ and drain/ import only errors.ts, validate.ts and binding.ts', () => {
  const wrong: string[] = [];
  for (const [file, imports] of importGraph()) {
    const [name, rank] = layerOf(file);
    for (const target of imports) {
      const [targetName, targetRank] = layerOf(target);
      const library = (name === 'stats' || name === 'drain') && targetName !== name && !['errors.ts', 'validate.ts', 'binding.ts'].includes(targetName);
      if (targetRank > rank || (targetRank === rank && targetName !== name && rank > 0) || library) wrong.push(`${relative(SRC, file)} -> ${relative(SRC, target)}`);
    }
  }
  assert.deepEqual(wrong, []);
});
