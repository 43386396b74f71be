// The package as a user installs it: `npm pack` (its prepack builds the
// prebuild), then the tarball installed into a new project whose PATH has no
// compiler, make or python. There it loads with nothing compiled, imports
// from CommonJS and ESM, type-checks, and hot restarts through its own CLI;
// on another libc the prebuild is never loaded. The tarball holds what an
// application needs and nothing else.

import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { libc, PLATFORM_ARCH, prebuildFile } from '../../src/prebuild';
import { assertCounterSeesLoss } from '../support/control';
import { load, ROOT, start, uniqueSocketPath } from '../support/processes';
import { freePort, sleep } from '../support/wait';
import { assertNoneLost, epochsAnswering, tookOver } from '../support/supervised';

/** Our environment without the npm_* variables npm sets for a script (the project as local prefix, an
 * `npm exec -c` command...), as in a user's shell; npm's config comes from npmrc files and NPM_CONFIG_*. */
const shellEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('npm_')));

function run(command: string, args: string[], options: SpawnSyncOptions = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 120_000, env: shellEnv, ...options });
  return { status: result.status, stdout: String(result.stdout), stderr: String(result.error ?? result.stderr) };
}

function ok(result: ReturnType<typeof run>, what: string): string {
  assert.equal(result.status, 0, `${what} failed:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

let dir: string; // the project, packed; the tarball; the consumer app
let app: string;
/** The consumer's environment: a PATH with node, npm, npx and sh only. */
let appEnv: NodeJS.ProcessEnv;
let tarball: string[];

before(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'baton-package-')));
  const project = join(dir, 'project');
  const skip = new Set(['node_modules', '.git', 'dist', 'build', 'prebuilds', 'test', 'bench']);
  cpSync(ROOT, project, { recursive: true, filter: (path) => path === ROOT || !skip.has(path.slice(ROOT.length + 1)) });
  symlinkSync(join(ROOT, 'node_modules'), join(project, 'node_modules'));
  const packed = ok(run('npm', ['pack', '--pack-destination', dir], { cwd: project }), 'npm pack').trim().split('\n').pop()!;
  tarball = ok(run('tar', ['-tzf', join(dir, packed)]), 'tar').trim().split('\n').map((f) => f.replace(/^package\//, ''));

  const bin = join(dir, 'bin');
  mkdirSync(bin);
  for (const tool of ok(run('sh', ['-c', 'for t in node npm npx sh; do command -v $t; done']), 'finding node, npm, npx, sh').trim().split('\n')) {
    symlinkSync(tool, join(bin, tool.split('/').pop()!));
  }
  appEnv = { ...shellEnv, PATH: bin };
  app = join(dir, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  // The registry is asked only for what npm ci did not leave in the cache (bindings' and node-addon-api's metadata).
  ok(run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(dir, packed)], { cwd: app, env: appEnv }), 'npm install');
});

after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `code` with node in the app: CommonJS, or ESM with `.mjs`. */
function appNode(code: string, file = 'main.cjs', options: SpawnSyncOptions = {}) {
  writeFileSync(join(app, file), code);
  return run('node', [file], { cwd: app, env: appEnv, ...options });
}

test('npm pack ships the prebuild; installed with no compiler on PATH, it loads and nothing was compiled', () => {
  const found = run('sh', ['-c', 'for t in g++ gcc cc c++ make python3 python; do command -v $t; done'], { env: appEnv });
  assert.equal(found.stdout, '', 'no compiler, make or python');
  const prebuild = `prebuilds/${PLATFORM_ARCH}/${prebuildFile(libc())}`;
  assert.ok(tarball.includes(prebuild), `${prebuild} in ${tarball.join(' ')}`);
  const installed = join(app, 'node_modules/baton');
  assert.equal(existsSync(join(installed, 'build')), false, 'nothing compiled');
  const loaded = appNode(`
    require('baton');
    const maps = require('fs').readFileSync('/proc/self/maps', 'utf8');
    console.log(maps.split('\\n').find((l) => l.endsWith('.node')).split(/\\s+/).pop());`);
  assert.equal(loaded.stdout.trim(), join(installed, prebuild), loaded.stderr);
});

test('the installed package: require() and import both work, and npx baton --version prints its version', () => {
  const cjs = appNode(`const { serve, workerContext } = require('baton'); console.log(typeof serve, typeof workerContext)`);
  assert.equal(cjs.stdout, 'function function\n', cjs.stderr);
  const esm = appNode(`import { serve, workerContext } from 'baton'; console.log(typeof serve, typeof workerContext)`, 'main.mjs');
  assert.equal(esm.stdout, 'function function\n', esm.stderr);
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.equal(run('npx', ['baton', '--version'], { cwd: app, env: appEnv }).stdout, `${version}\n`);
});

test('a one-file server hot restarts under load through the installed CLI, and loses nothing', async (t) => {
  await assertCounterSeesLoss(); // control: the same counter does see a loss
  const port = await freePort();
  writeFileSync(
    join(app, 'server.mjs'),
    `import http from 'node:http';
    import { isMainThread } from 'node:worker_threads';
    import { serve, workerContext } from 'baton';

    if (isMainThread) {
      await serve({ listen: ['127.0.0.1:${port}'], workers: 2, script: new URL(import.meta.url) });
    } else {
      const worker = workerContext();
      for (const socket of worker.sockets) {
        worker.serve(http.createServer((req, res) => res.end(\`epoch=\${worker.epoch} worker=\${worker.index}\\n\`)), socket.name);
      }
    }`,
  );
  const flags = ['--log', 'json', '--socket-path', uniqueSocketPath('installed'), '--drain-time-s', '1', '--parent-shutdown-time-s', '2'];
  const supervisor = start(t, join(app, 'node_modules/.bin/baton'), ['run', ...flags, '--', 'node', 'server.mjs'], { cwd: app, env: appEnv });
  await supervisor.waitFor(tookOver(0), { timeoutMs: 15_000, what: 'epoch 0 taking over' });
  const traffic = load(t, port);
  await sleep(300);
  supervisor.child.kill('SIGHUP');
  await supervisor.waitFor(tookOver(1), { timeoutMs: 15_000, what: 'epoch 1 taking over' });
  await sleep(300);
  traffic.stop();
  const result = await traffic.done;
  assertNoneLost(t, result);
  assert.deepEqual(epochsAnswering(result), ['epoch=0', 'epoch=1']);
  supervisor.child.kill('SIGTERM');
  assert.deepEqual(await supervisor.exited, { code: 0, signal: null });
});

test("the README's example type-checks against the installed package (strict, nodenext, skipLibCheck off); wrong calls do not", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const example = /```js\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf('\n## Use it')))![1];
  writeFileSync(join(app, 'server.mts'), example);
  writeFileSync(
    join(app, 'wrong.mts'),
    `import { serve } from 'baton';
await serve({ listen: 8080, workers: 1, script: new URL(import.meta.url) });
await serve({ listen: ['127.0.0.1:8080'], workers: '4', script: new URL(import.meta.url) });
`,
  );
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        skipLibCheck: false,
        noEmit: true,
        types: ['node'],
        typeRoots: [join(ROOT, 'node_modules/@types')],
      },
      files: ['server.mts', 'wrong.mts'],
    }),
  );
  const tsc = run('node', [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', '.'], { cwd: app, env: appEnv });
  assert.deepEqual(tsc.stdout.trim().split('\n'), [
    "wrong.mts(2,15): error TS2322: Type 'number' is not assignable to type '(string | ListenerSpec)[]'.",
    "wrong.mts(3,43): error TS2322: Type 'string' is not assignable to type 'number'.",
  ]);
});

test('on musl the glibc prebuild is never loaded: install compiles from source (and fails with no compiler), import throws BATON_ADDON_NOT_FOUND', () => {
  // Node's report names no glibc on musl; NODE_OPTIONS makes every node here, npm's too, believe it.
  writeFileSync(join(dir, 'musl.cjs'), 'process.report.getReport = () => ({ header: {} });');
  const musl = { ...appEnv, NODE_OPTIONS: `--require ${join(dir, 'musl.cjs')}` };
  const rebuild = run('npm', ['rebuild', 'baton'], { cwd: app, env: musl });
  assert.notEqual(rebuild.status, 0);
  assert.match(rebuild.stderr, /node-gyp rebuild[\s\S]*Could not find any Python/, 'the install step went on to node-gyp');

  const missing = appNode(`try { require('baton') } catch (e) { console.log(e.code); console.log(e.message) }`, 'main.cjs', { env: musl });
  const [code, ...lines] = missing.stdout.trim().split('\n');
  const message = lines.join('\n');
  assert.equal(code, 'BATON_ADDON_NOT_FOUND', missing.stderr);
  assert.match(message, new RegExp(`^baton's native addon could not be loaded on ${PLATFORM_ARCH} with musl: `));
  assert.match(message, /Install python3, make and g\+\+ .*then run `npm rebuild baton`/);
  assert.match(message, new RegExp(`prebuilds/${PLATFORM_ARCH}/baton\\.musl\\.node`), 'the musl prebuild was looked for');
  assert.doesNotMatch(message, /glibc/, 'and only that one');
});

test('the packed files: what an application needs, no tests, bench, tools, build intermediates or source maps', () => {
  const [pack] = JSON.parse(ok(run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT }), 'npm pack --dry-run')) as [{ files: Array<{ path: string }> }];
  const files = pack.files.map((f) => f.path);
  for (const needed of ['package.json', 'README.md', 'CHANGELOG.md', 'binding.gyp', 'native/addon.cc', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/native.d.ts', 'dist/src/supervisor/cli.js']) {
    assert.ok(files.includes(needed), `${needed} is packed`);
  }
  const unwanted = files.filter((f) => /^(test|bench|build|tools|dist\/test|src)\/|\.map$/.test(f));
  assert.deepEqual(unwanted, []);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { os: string[]; cpu: string[] };
  assert.deepEqual([pkg.os, pkg.cpu], [['linux'], ['x64']], 'the platform the tests and the prebuild are for');
});

test('importing baton on another OS throws BATON_UNSUPPORTED_PLATFORM', () => {
  const result = spawnSync(process.execPath, ['-e', `
    Object.defineProperty(process, 'platform', { value: 'darwin' });
    try { require('./dist/src/index.js') } catch (e) { console.log(e.code); console.log(e.message) }`], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(result.stdout, 'BATON_UNSUPPORTED_PLATFORM\nbaton runs on Linux only (SO_REUSEPORT groups, SCM_RIGHTS, reuseport BPF); this is darwin\n');
});
