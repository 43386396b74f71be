// The package's public API is a decision: its exports (runtime values, and
// types) are pinned here, each one is documented where editors show it (the
// shipped .d.ts, read with the TypeScript compiler API), and README's API
// section names exactly them.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { ROOT } from '../support/processes';

/** What `require('baton')` holds. */
const VALUES = [
  'BatonError',
  'ErrorCodes',
  'Generation',
  'WorkerPool',
  'drainDgram',
  'drainHttp',
  'drainHttp2',
  'drainNet',
  'metricsHandler',
  'serve',
  'serveOnMainThread',
  'stopListening',
  'workerContext',
];

/** What TypeScript sees besides the values: interfaces, and classes an application never constructs. */
const TYPES = [
  'Counter',
  'DrainAdapter',
  'DrainAdapterOptions',
  'DrainController',
  'DrainControllerEvents',
  'DrainProgress',
  'ErrorCode',
  'Follower',
  'Gauge',
  'GaugeOptions',
  'GenerationEvents',
  'Histogram',
  'HistogramOptions',
  'HotRestartOptions',
  'ListenOptions',
  'Listener',
  'ListenerSpec',
  'MainThreadServeOptions',
  'MetricOptions',
  'MetricsHandlerOptions',
  'NetDrainAdapter',
  'ServeOptions',
  'Served',
  'SocketEntry',
  'StartOptions',
  'StatsRegistry',
  'ThreadStats',
  'Transition',
  'WorkerContext',
  'WorkerContextEvents',
  'WorkerPoolEvents',
  'WorkerPoolOptions',
];

const DIST = join(ROOT, 'dist/src');
const DTS = join(DIST, 'index.d.ts');
const program = ts.createProgram([DTS], { strict: true, noEmit: true, types: ['node'], typeRoots: [join(ROOT, 'node_modules/@types')] });
const checker = program.getTypeChecker();
/** The package's exports as a consumer's TypeScript sees them, aliases resolved. */
const exported = checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(DTS)!)!).map((symbol) => ({
  name: symbol.name,
  symbol: symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol,
}));

const sorted = (names: Iterable<string>): string[] => [...names].sort();

test('the runtime exports are exactly the pinned values, from the package root only', () => {
  const api = require(join(DIST, 'index.js')) as Record<string, unknown>;
  assert.deepEqual(sorted(Object.keys(api)), VALUES);
  const { exports } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, string> };
  assert.deepEqual(exports, { '.': './dist/src/index.js', './package.json': './package.json' });
});

test('the type declarations export exactly the pinned values and types', () => {
  assert.equal(program.getSemanticDiagnostics(program.getSourceFile(DTS)).length, 0);
  const names = exported.map((e) => e.name);
  assert.deepEqual(sorted(names.filter((n) => !VALUES.includes(n))), TYPES);
  assert.deepEqual(sorted(names.filter((n) => VALUES.includes(n))), VALUES);
});

function documented(symbol: ts.Symbol): boolean {
  return ts.displayPartsToString(symbol.getDocumentationComment(checker)).trim() !== '';
}

/** Declared in the package (not inherited from Node's types), and neither private nor protected. */
function ours(member: ts.Symbol): boolean {
  const declarations = member.declarations ?? [];
  return (
    declarations.length > 0 &&
    declarations.every((d) => d.getSourceFile().fileName.startsWith(`${DIST}/`)) &&
    declarations.every((d) => !(ts.getCombinedModifierFlags(d) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)))
  );
}

/** `Export.member` for every member an application reaches that has no doc comment. */
function undocumentedMembers(name: string, symbol: ts.Symbol): string[] {
  const members: ts.Symbol[] = [];
  if (symbol.flags & (ts.SymbolFlags.Interface | ts.SymbolFlags.Class)) members.push(...checker.getDeclaredTypeOfSymbol(symbol).getProperties());
  // A class's static side: its static methods (Generation.start), not its prototype.
  if (symbol.flags & ts.SymbolFlags.Class) members.push(...checker.getTypeOfSymbol(symbol).getProperties());
  return members.filter((m) => ours(m) && !documented(m)).map((m) => `${name}.${m.name}`);
}

test('every export, every property of an exported interface, and every public member of an exported class is documented', () => {
  const missing = exported.flatMap(({ name, symbol }) => [...(documented(symbol) ? [] : [name]), ...undocumentedMembers(name, symbol)]);
  assert.deepEqual(missing, []);
});

test("README's API section names every export, and nothing else", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## API\n');
  assert.notEqual(start, -1, 'README has an API section');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end === -1 ? undefined : end);
  // One list item per export, naming it first: "- `serve(options)`: ..." or "- `ServeOptions`: ...".
  const named = [...section.matchAll(/^- `([A-Za-z_]\w*)/gm)].map((m) => m[1]!);
  assert.deepEqual(sorted(named), sorted([...VALUES, ...TYPES]));
});
