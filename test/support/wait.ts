// Waiting in the tests and the bench: for a condition, never for a guessed
// time, so that a slow or busy machine makes a run slower, not red. Every
// wait has a timeout whose failure names what was awaited.

import { createServer } from 'node:net';

export const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

export interface WaitOptions {
  /** Default 5000. */
  timeoutMs?: number;
  /** What is awaited, for the failure ('epoch 1 serving'); a function is read at the timeout, to say where things stood. */
  what?: string | (() => string);
  /** Between two checks; default 10. */
  intervalMs?: number;
}

type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

/**
 * Calls `check` until it returns something truthy, and returns that. A
 * check that throws ends the wait with its error (a process that died
 * cannot print the line awaited).
 */
export async function waitFor<T>(check: () => T | PromiseLike<T>, { timeoutMs = 5000, what = 'the condition', intervalMs = 10 }: WaitOptions = {}): Promise<Truthy<Awaited<T>>> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as Truthy<Awaited<T>>;
    if (performance.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
    await sleep(intervalMs);
  }
}

/**
 * The value `read` settles on: once it has not changed for `steadyMs`
 * (a process's fd count once it has opened what it keeps).
 */
export async function steady<T>(read: () => T, { steadyMs = 200, ...options }: WaitOptions & { steadyMs?: number } = {}): Promise<T> {
  let last = read();
  let since = performance.now();
  const settled = await waitFor(() => {
    const now = read();
    if (now !== last) [last, since] = [now, performance.now()];
    return performance.now() - since >= steadyMs && { value: now };
  }, { ...options, what: options.what ?? `a value steady for ${steadyMs} ms` });
  return settled.value;
}

/** A TCP port that was free a moment ago on 127.0.0.1 (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}
