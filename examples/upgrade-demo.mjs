#!/usr/bin/env node
// npm run demo:upgrade: baton upgrades itself under load. Two builds of this
// package side by side (the second one's version ends in -upgraded), the
// supervisor run through a `current` symlink as a unit file would name it;
// the example server serves a load from a separate process while `current`
// is switched to the new build and `baton upgrade` re-executes the
// supervisor in place. Then a reload starts a generation of the new build.
// Printed: the supervisor's pid and version before and after, and what the
// load lost (nothing, or the demo exits 1).

import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { packageBuilds } from '../dist/tools/builds/index.js';
import { freePort, runDemo } from '../dist/tools/demo/index.js';
import { spawnLoad } from '../dist/tools/load/index.js';

const root = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const dir = mkdtempSync(join(tmpdir(), 'baton-upgrade-demo-'));
const { roots, current, use } = packageBuilds(root, dir, [version, `${version}-upgraded`]);
const port = await freePort();
const config = join(dir, 'server.json');
writeFileSync(config, JSON.stringify({ concurrency: 2, listen: [`127.0.0.1:${port}`] }));
const socketPath = `@baton-upgrade-demo-${process.pid}`;
const cli = join(current, 'dist/src/supervisor/cli.js');
const baton = async (...args) => (await promisify(execFile)(process.execPath, [cli, ...args, '--socket-path', socketPath])).stdout.trim();

const supervisor = spawn(
  process.execPath,
  [cli, 'run', '--log', 'json', '--socket-path', socketPath, '--drain-time-s', '1', '--parent-shutdown-time-s', '2', '--', process.execPath, join(current, 'examples/http-server.mjs'), '--config', config],
  { stdio: ['ignore', 'ignore', 'pipe'] },
);
const log = [];
createInterface({ input: supervisor.stderr }).on('line', (line) => log.push(JSON.parse(line)));
const tookOver = (epoch) =>
  new Promise((done, fail) => {
    const deadline = Date.now() + 20_000;
    const check = () => (log.some((e) => e.epoch === epoch && typeof e.tookOverMs === 'number') ? done() : Date.now() > deadline ? fail(new Error(`epoch ${epoch} did not take over within 20 s`)) : setTimeout(check, 20));
    check();
  });
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

await runDemo(supervisor, dir, async () => {
  await tookOver(0);
  console.log(`baton upgrade demo: example server on 127.0.0.1:${port}, ${current} -> ${roots[version]}`);
  console.log(`  ${(await baton('status')).split('\n')[0]}`);
  const load = spawnLoad({ targets: [{ host: '127.0.0.1', port }], concurrency: 32, durationMs: 60_000 });
  await pause(1000);
  use(roots[`${version}-upgraded`]);
  console.log(`  npm install of a new version, in place: ${current} -> ${roots[`${version}-upgraded`]}`);
  console.log(`  $ baton upgrade\n  ${await baton('upgrade')}`);
  console.log(`  ${(await baton('status')).split('\n')[0]}`);
  await pause(1000);
  console.log(`  $ baton reload\n  ${await baton('reload')}`);
  await pause(1000);
  load.stop();
  const result = await load.done;
  console.log(`\nconnections attempted ${result.attempted}, answered ${result.answered}, lost ${result.lost}${result.lost ? ` ${JSON.stringify(result.errors)}` : ''}`);
  return result.lost === 0 && result.answered === result.attempted;
});
