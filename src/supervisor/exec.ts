// The supervisor replacing its own image with node again, same pid: once at
// start, to run with its own V8 flags, and for `baton upgrade`. Of the fds
// Node and baton opened, only stdio and the ones asked for stay open across
// the exec (inherited fds without CLOEXEC stay too, as they did before).

import * as native from '../binding';

/**
 * V8 flags of the supervisor's own process, which runs little JavaScript
 * for months. --jitless: no thread compiles in the background, so none
 * grows a malloc arena of its own (those arenas grew its RSS by ~1 MB over
 * 1,000 reloads, and swung by as much from one reading to the next), and
 * no compiled code takes memory (47.5 MB instead of 54). A 1 MB semi-space
 * keeps its young generation from swinging between 1 and 2 MB.
 * --no-expose-wasm is what --jitless implies, said so that V8 does not warn
 * about it on stderr. Given before the operator's own node flags, so that
 * theirs win.
 */
export const SUPERVISOR_NODE_FLAGS = ['--jitless', '--no-expose-wasm', '--max-semi-space-size=1'];

/** stdin, stdout, stderr: Node may have made them CLOEXEC, and the new image logs where this one did. */
const STDIO = [0, 1, 2];

/**
 * execve of this node with `nodeArgs` (flags, script, its arguments) and
 * `env`. Only stdio and `fds` are kept across (CLOEXEC cleared); should
 * execve fail each gets its flag back, this image runs on as before, and
 * the error is thrown. No event loop turn happens in between, so nothing is
 * read from a kept fd that the new image would miss.
 */
export function execNode(nodeArgs: string[], env: Record<string, string>, fds: number[] = []): void {
  const kept: { fd: number; cloexec: boolean }[] = [];
  try {
    for (const fd of [...STDIO, ...fds]) kept.push({ fd, cloexec: native.setCloexec(fd, false) });
    native.execve(process.execPath, [process.execPath, ...nodeArgs], env);
  } finally {
    for (const { fd, cloexec } of kept) native.setCloexec(fd, cloexec);
  }
}

/**
 * This process again with SUPERVISOR_NODE_FLAGS, `env` added to its
 * environment and `fds` kept, unless it has the flags already or runs under
 * a debugger (--inspect*: one process to attach to, whose JIT does not
 * matter). Returns only then, or with why the exec failed.
 */
export function withSupervisorFlags(env: Record<string, string> = {}, fds: number[] = []): string | undefined {
  const missing = SUPERVISOR_NODE_FLAGS.filter((flag) => !process.execArgv.includes(flag));
  if (missing.length === 0 || process.execArgv.some((flag) => flag.startsWith('--inspect'))) return undefined;
  try {
    execNode([...missing, ...process.execArgv, ...process.argv.slice(1)], { ...envOf(process.env), ...env }, fds);
  } catch (error) {
    return (error as Error).message;
  }
  return undefined;
}

export function envOf(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
}
