// What the demos (examples/demo.mjs, examples/upgrade-demo.mjs) share around
// their story: a free loopback port, and the run itself: exit 0 only if it
// lost nothing, 1 with why if it failed, the supervisor stopped and the
// temporary directory removed whatever happened.

import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((done) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => done(port));
    });
  });
}

/** Runs `story`, which resolves true when nothing was lost; then stops `supervisor` and removes `dir`. */
export async function runDemo(supervisor: ChildProcess, dir: string, story: () => Promise<boolean>): Promise<void> {
  try {
    process.exitCode = (await story()) ? 0 : 1;
  } catch (error) {
    console.error(`demo failed: ${(error as Error).message}`);
    process.exitCode = 1;
  } finally {
    const exited = once(supervisor, 'exit');
    supervisor.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
}
