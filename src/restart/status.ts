// How a generation tells its supervisor what it is doing: one JSON object per
// line on the pipe whose fd is in BATON_STATUS_FD. Without a supervisor the
// reports go nowhere. Writes never block the loop and a supervisor that went
// away costs nothing.

import { createWriteStream, type WriteStream } from 'node:fs';
import * as native from '../binding';

export const STATUS_FD_ENV = 'BATON_STATUS_FD';

export type StatusReport =
  | { event: 'transition'; machine: string; from: string; to: string; atMs: number; inStateMs: number; reason?: string }
  | { event: 'baseId'; baseId: number }
  | {
      event: 'takenOver';
      /** When this process started (Unix ms), and when it reached each step on its way here, in ms since then (src/timeline.ts); not sent by a baton before 0.1.0's take-over timeline. */
      timeline?: { startedAt: number; marks: Record<string, number> };
      epoch: number;
      ms: number;
      inherited: number;
      created: number;
      /** The parent's sockets past our worker count, served until retired. */
      surplus: number;
      /** net.ipv4.tcp_migrate_req: whether the kernel also moves a closing listener's queue (never relied on). */
      tcpMigrateReq: number | null;
      /** Its worker threads, and each listener with the sockets it serves (for `baton status` and `baton reload`). */
      workers: number;
      listeners: Array<{ name: string; sockets: number }>;
    }
  | { event: 'retired'; listener: string; index: number; waitedMs: number }
  /** We accept again: our child went away during our drain (it died, or handed back to us). */
  | { event: 'resumed'; reason: string }
  /** Every second, and at take-over: connections our servers have open. */
  | { event: 'load'; connections: number }
  | { event: 'released'; listeners: string[] }
  /** `stack`: the error's own, printed by the supervisor with `--log details` (and in its JSON log). */
  | { event: 'failed'; code: string; message: string; stack?: string }
  | { event: 'warning'; message: string };

/** This process's pipe to its supervisor: one per process, as the fd in the environment is taken once. */
export function statusPipe(): StatusPipe {
  shared ??= new StatusPipe();
  return shared;
}
let shared: StatusPipe | undefined;

export class StatusPipe {
  private readonly stream?: WriteStream;
  /** A 'failed' report went out: this generation's start-up is over, and the supervisor knows why. */
  failed = false;

  constructor(env: NodeJS.ProcessEnv = process.env) {
    const raw = env[STATUS_FD_ENV];
    if (!raw || !/^\d+$/.test(raw)) return;
    // Our own CLOEXEC copy, so processes the application spawns do not hold the pipe open.
    let fd: number;
    try {
      fd = native.dup(Number(raw));
      native.close(Number(raw));
    } catch {
      return; // no such fd: started by hand with a stale environment
    }
    delete env[STATUS_FD_ENV];
    this.stream = createWriteStream('', { fd, autoClose: true });
    this.stream.on('error', () => undefined);
  }

  report(report: StatusReport): void {
    if (report.event === 'failed') this.failed = true;
    this.stream?.write(`${JSON.stringify(report)}\n`);
  }

  /** Why this generation's start-up failed: the error's code (its errno name, say) or `fallbackCode`, its message and stack. */
  reportFailure(error: unknown, fallbackCode: string): void {
    const code = (error as { code?: unknown } | null)?.code;
    const message = error instanceof Error ? error.message : String(error);
    const stack = error instanceof Error ? error.stack : undefined;
    this.report({ event: 'failed', code: typeof code === 'string' ? code : fallbackCode, message, ...(stack ? { stack } : {}) });
  }

  /** Flushes what was reported (for at most a second: a stalled supervisor must not hold us). */
  close(): Promise<void> {
    const stream = this.stream;
    if (!stream || stream.closed) return Promise.resolve();
    return new Promise((resolve) => {
      setTimeout(resolve, 1000).unref();
      stream.end(resolve);
    });
  }
}
