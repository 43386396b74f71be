// The package as a user installs it: the addon built by `npm run prebuildify`
// loads from prebuilds/ with no build/ at all (and the install step then
// compiles nothing); no addon anywhere, or another OS, is a clear error.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../support/processes';

/** Runs `code` (CommonJS) with node in `cwd`; its stdout, stderr and status. */
function node(cwd: string, code: string) {
  return spawnSync(process.execPath, ['-e', code], { cwd, encoding: 'utf8' });
}

const npm = (cwd: string, script: string) => spawnSync('npm', ['run', '--silent', script], { cwd, encoding: 'utf8' });

/** The addon's loaded file, as the dynamic loader mapped it. */
const LOADED_ADDON = `
  const native = require('./dist/src/binding.js');
  native.close(native.tcpListen(4, '127.0.0.1', 0, false, 8));
  const maps = require('fs').readFileSync('/proc/self/maps', 'utf8');
  console.log(maps.split('\\n').find((l) => l.endsWith('baton.node')).split(/\\s+/).pop());`;

test('the prebuilt addon loads without build/, and installing over it compiles nothing; without either, BATON_ADDON_NOT_FOUND', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-package-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const part of ['package.json', 'binding.gyp', 'native', 'dist/src']) cpSync(join(ROOT, part), join(dir, part), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));

  const prebuild = npm(dir, 'prebuildify');
  assert.equal(prebuild.status, 0, prebuild.stderr);
  rmSync(join(dir, 'build'), { recursive: true, force: true });
  const loaded = node(dir, LOADED_ADDON);
  assert.equal(loaded.status, 0, loaded.stderr);
  assert.equal(loaded.stdout.trim(), join(dir, `prebuilds/linux-${process.arch}/baton.node`));

  const install = npm(dir, 'install');
  assert.equal(install.status, 0, install.stderr);
  assert.equal(existsSync(join(dir, 'build')), false, 'a prebuild for this platform: nothing compiled');

  rmSync(join(dir, 'prebuilds'), { recursive: true });
  const missing = node(dir, `try { require('./dist/src/index.js') } catch (e) { console.log(e.code); console.log(e.message) }`);
  const [code, message] = missing.stdout.split('\n');
  assert.equal(code, 'BATON_ADDON_NOT_FOUND');
  assert.match(message, /baton's native addon could not be loaded: run `npm rebuild baton` \(needs python3, make and g\+\+\)/);
});

test('importing baton on another OS throws BATON_UNSUPPORTED_PLATFORM', () => {
  const result = node(ROOT, `
    Object.defineProperty(process, 'platform', { value: 'darwin' });
    try { require('./dist/src/index.js') } catch (e) { console.log(e.code); console.log(e.message) }`);
  assert.equal(result.stdout, 'BATON_UNSUPPORTED_PLATFORM\nbaton runs on Linux only (SO_REUSEPORT groups, SCM_RIGHTS, reuseport BPF); this is darwin\n');
});
