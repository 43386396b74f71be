// Whether an optional server is on this machine, and which version.

import { spawnSync } from 'node:child_process';

/** The path `which` finds, or undefined. */
export function which(command) {
  const found = spawnSync('which', [command], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

/** The first line `command flag` prints (nginx -v prints on stderr), or undefined when not installed. */
export function version(command, flag = '-v') {
  if (!which(command)) return undefined;
  const run = spawnSync(command, [flag], { encoding: 'utf8' });
  return `${run.stdout}${run.stderr}`.trim().split('\n', 1)[0];
}
