// Files and directories baton writes in, where another local user may have a
// say: the pid file and the base-id file are written beside themselves and
// renamed into place (a symlink planted at the name is replaced, never
// followed), and a control socket's directory must be one nobody else can
// write in (whoever can rename in it can swap our socket for a symlink).

import { randomBytes } from 'node:crypto';
import { closeSync, constants, lstatSync, mkdirSync, openSync, renameSync, statSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { BatonError, ErrorCodes, invalidArgument, isSystemError } from './errors';

const GROUP_OR_OTHER_WRITE = 0o022;
const STICKY = 0o1000;

/**
 * Writes `text` to `path` as a new file, mode 0644: first to a temporary
 * file in the same directory, created with O_EXCL | O_NOFOLLOW (so it is
 * ours and new), then renamed over `path` (which replaces a symlink there
 * rather than writing through it).
 */
export function writeFileReplacing(path: string, text: string): void {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}`);
  try {
    const fd = openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (error) {
    try {
      unlinkSync(temporary);
    } catch {
      // Never created, or already renamed: nothing to clean.
    }
    throw new BatonError(ErrorCodes.INVALID_ARGUMENT, `cannot write ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Where control sockets go when no --socket-path is given: systemd's
 * $RUNTIME_DIRECTORY (the first, if several), else $XDG_RUNTIME_DIR/baton,
 * else <tmpdir>/baton-<uid>; each is created 0700 if missing and checked
 * before every bind (privateSocketDirectory), never trusted.
 */
export function defaultSocketDirectory(env: NodeJS.ProcessEnv = process.env): string {
  const runtime = env.RUNTIME_DIRECTORY?.split(':')[0];
  if (runtime && isAbsolute(runtime)) return runtime;
  if (env.XDG_RUNTIME_DIR && isAbsolute(env.XDG_RUNTIME_DIR)) return join(env.XDG_RUNTIME_DIR, 'baton');
  return join(tmpdir(), `baton-${uid()}`);
}

/**
 * Checks the directory of a filesystem control socket before it is bound:
 * the default one is created 0700 if missing and must be a real directory
 * of ours that no one else can write in; one given with --socket-path must
 * be owned by us or root and not writable by others unless sticky (/tmp).
 */
export function checkSocketDirectory(dir: string): void {
  if (resolve(dir) === resolve(defaultSocketDirectory())) return privateSocketDirectory(dir);
  const stats = statOf(dir, statSync);
  const owner = stats.uid === uid() || stats.uid === 0;
  if (!owner || ((stats.mode & GROUP_OR_OTHER_WRITE) !== 0 && (stats.mode & STICKY) === 0)) {
    throw unsafeDirectory(
      dir,
      stats,
      `use a directory that only uid ${uid()} (or root) can write in, mode 755 or 700; or one with the sticky bit, owned by root or uid ${uid()} (such as /tmp)`,
    );
  }
}

function privateSocketDirectory(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (error) {
    if (!isSystemError(error, 'EEXIST')) {
      throw invalidArgument(`cannot create the control socket directory ${dir}: ${(error as Error).message}; give a --socket-path`);
    }
  }
  const stats = statOf(dir, lstatSync);
  if (stats.uid !== uid() || (stats.mode & GROUP_OR_OTHER_WRITE) !== 0) {
    throw unsafeDirectory(dir, stats, `remove it (baton creates it, mode 700), or give a --socket-path in a directory of uid ${uid()}`);
  }
}

function statOf(dir: string, stat: typeof statSync | typeof lstatSync): Stats {
  const stats = stat(dir, { throwIfNoEntry: false });
  if (!stats) throw invalidArgument(`the control socket directory ${dir} does not exist: create it (owned by uid ${uid()}, mode 700 or 755)`);
  if (!stats.isDirectory()) {
    throw new BatonError(ErrorCodes.UNSAFE_PATH, `the control socket directory ${dir} is not a directory${stats.isSymbolicLink() ? ' (a symlink)' : ''}: remove it, or give another --socket-path`);
  }
  return stats;
}

function unsafeDirectory(dir: string, stats: Stats, what: string): BatonError {
  const mode = (stats.mode & 0o7777).toString(8).padStart(3, '0');
  return new BatonError(
    ErrorCodes.UNSAFE_PATH,
    `the control socket directory ${dir} (owner uid ${stats.uid}, mode ${mode}) could be changed by another user, who could then replace baton's socket: ${what}`,
  );
}

function uid(): number {
  return process.getuid!();
}
