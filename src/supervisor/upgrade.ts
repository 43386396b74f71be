// `baton upgrade`: the supervisor re-executes itself in place, as nginx's
// master does on USR2: the same pid, the new package's code, every
// generation kept as its child. Two steps here, with no policy of their own:
// the dry run of the new code on disk, and the exec that keeps exactly the
// fds the state lists.

import { spawn } from 'node:child_process';
import { envOf, execNode } from './exec';
import { carriedFds, decodeState, encodeState, STATE_ENV, type UpgradeState } from './upgrade-state';

/** The dry run is a Node start-up and a module load: seconds at most, even on a loaded machine. */
export const CHECK_TIMEOUT_MS = 15_000;

/** How the running image was started: re-executed the same way, through the path the operator gave (a symlink stays one). */
export interface Image {
  cliPath: string;
  /** The arguments after the cli path. */
  argv: string[];
}

/** What `baton upgrade-check` answers on stdout: the new code's version. */
export interface CheckAnswer {
  batonVersion: string;
}

/**
 * Runs the code now at `image.cliPath` with `upgrade-check`, the state on
 * its stdin: it loads every module of the supervisor, as the new image will,
 * and reads the state. Resolves with its version, or rejects with why not.
 */
export function checkNewImage(image: Image, state: UpgradeState): Promise<CheckAnswer> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, image.cliPath, 'upgrade-check'], { stdio: ['pipe', 'pipe', 'pipe'], timeout: CHECK_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    child.stdin.on('error', () => undefined); // it may exit before reading: its exit says why
    child.stdin.end(encodeState(state));
    child.on('error', (error) => reject(new Error(`the dry run could not start: ${error.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) {
        try {
          return resolve(JSON.parse(stdout) as CheckAnswer);
        } catch {
          return reject(new Error(`the dry run of ${image.cliPath} printed no version: ${excerptOf(stdout)}`));
        }
      }
      if (signal) return reject(new Error(`the dry run of ${image.cliPath} did not finish within ${CHECK_TIMEOUT_MS / 1000} s (${signal})`));
      reject(new Error(`the new code at ${image.cliPath} ${whyFailed(stdout, stderr)}`));
    });
  });
}

/** `baton upgrade-check`, in the new code: reads the state on stdin; exit 0 and the version, or 1 and why. */
export function answerCheck(version: string): void {
  let text = '';
  process.stdin.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  process.stdin.on('end', () => {
    try {
      decodeState(text);
    } catch (error) {
      process.stdout.write(`cannot take over this supervisor: ${(error as Error).message}\n`);
      return void (process.exitCode = 1);
    }
    process.stdout.write(`${JSON.stringify({ batonVersion: version } satisfies CheckAnswer)}\n`);
  });
}

/**
 * Replaces this image with the one at `image.cliPath`, `state` in its
 * environment, keeping the fds the state lists; should execve fail, this
 * image runs on as before, and the error is thrown.
 */
export function execImage(image: Image, state: UpgradeState): void {
  execNode([...process.execArgv, image.cliPath, ...image.argv], { ...envOf(process.env), [STATE_ENV]: encodeState(state) }, carriedFds(state));
}

/** The reason of a failed dry run: its own answer, or the error Node printed (a syntax error, a missing file). */
function whyFailed(stdout: string, stderr: string): string {
  if (stdout.trim()) return stdout.trim();
  const error = /^(\w*Error\b.*)$/m.exec(stderr)?.[1];
  const where = /^(\/.*:\d+)$/m.exec(stderr)?.[1];
  if (error) return `does not load: ${error}${where ? ` (${where})` : ''}`;
  return `failed: ${excerptOf(stderr)}`;
}

const excerptOf = (text: string) => JSON.stringify(text.trim().slice(0, 300));
