// One interface for the process of a generation, whichever image of the
// supervisor started it: a ChildProcess this image spawned (libuv reaps it),
// or an AdoptedProcess, spawned by the image before an upgrade's exec, that
// this image watches through a pidfd and reaps itself (libuv reaps only the
// processes it spawned, by pid).

import { EventEmitter } from 'node:events';
import * as native from '../binding';
import type { PollHandle } from '../binding';
import { isSystemError } from '../errors';

export type ExitListener = (code: number | null, signal: NodeJS.Signals | null) => void;

export interface GenerationProcess {
  /** Undefined only for a command that could not be spawned. */
  readonly pid?: number;
  kill(signal: NodeJS.Signals): unknown;
  on(event: 'exit', listener: ExitListener): unknown;
}

export class AdoptedProcess extends EventEmitter<{ exit: Parameters<ExitListener> }> implements GenerationProcess {
  private poll?: PollHandle;
  private pidfd?: number;
  private exited = false;

  /**
   * Watches `pid`, a child of this process; one that exited meanwhile (a
   * zombie) is reaped and reported at once, as is one whose exit the image
   * before already reaped (`exited`).
   */
  constructor(
    readonly pid: number,
    exited?: { code: number | null; signal: NodeJS.Signals | null },
  ) {
    super();
    if (exited) {
      process.nextTick(() => this.exit(exited));
      return;
    }
    try {
      this.pidfd = native.pidfdOpen(pid);
    } catch (error) {
      // Reaped already: by nobody of ours, so its status is lost; it is reported as gone.
      if (!isSystemError(error, 'ESRCH')) throw error;
      process.nextTick(() => this.exit({ code: null, signal: null }));
      return;
    }
    this.poll = new native.Poll(this.pidfd, () => this.reap());
    this.poll.start(true, false);
    process.nextTick(() => this.reap()); // a zombie's pidfd is readable too, but its listeners are added after this returns
  }

  /** No signal once reaped: the pid may be another process's by then. */
  kill(signal: NodeJS.Signals): boolean {
    if (this.exited) return false;
    process.kill(this.pid, signal);
    return true;
  }

  private reap(): void {
    if (this.exited) return;
    let status;
    try {
      status = native.waitpid(this.pid);
    } catch (error) {
      if (!isSystemError(error, 'ECHILD')) throw error;
      status = { code: null, signal: null }; // not ours to reap after all
    }
    if (status) this.exit(status);
  }

  private exit(status: { code: number | null; signal: NodeJS.Signals | null }): void {
    this.exited = true;
    this.poll?.close();
    if (this.pidfd !== undefined) native.close(this.pidfd);
    this.emit('exit', status.code, status.signal);
  }
}
