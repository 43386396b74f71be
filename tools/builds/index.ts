// Builds of this package side by side, as two `npm install`s of different
// versions would leave them, and a `current` symlink an operator's unit
// names: what `baton upgrade` is tried on (its tests and its demo). Each
// holds package.json (with its own version), dist/src, the addon, the
// examples and test fixtures, and node_modules linked to this checkout's.

import { cpSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Builds {
  /** version -> the build's directory. */
  roots: Record<string, string>;
  /** The symlink to run baton through: `<dir>/current`. */
  current: string;
  /** Points `current` at `target` (a build, or anything else: a missing directory makes a missing build). */
  use(target: string): void;
}

/** Under `dir`, one build of the package at `root` per version, `current` pointing at the first. */
export function packageBuilds(root: string, dir: string, versions: string[]): Builds {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
  const roots = Object.fromEntries(
    versions.map((version, i) => {
      const build = join(dir, `build-${i}`);
      mkdirSync(join(build, 'build/Release'), { recursive: true });
      writeFileSync(join(build, 'package.json'), JSON.stringify({ ...pkg, version }));
      cpSync(join(root, 'dist/src'), join(build, 'dist/src'), { recursive: true });
      cpSync(join(root, 'build/Release/baton.node'), join(build, 'build/Release/baton.node'));
      cpSync(join(root, 'examples'), join(build, 'examples'), { recursive: true });
      cpSync(join(root, 'test/fixtures'), join(build, 'test/fixtures'), { recursive: true });
      symlinkSync(join(root, 'node_modules'), join(build, 'node_modules'));
      return [version, build];
    }),
  );
  const current = join(dir, 'current');
  const use = (target: string) => {
    rmSync(current, { force: true });
    symlinkSync(target, current);
  };
  use(roots[versions[0]]);
  return { roots, current, use };
}
