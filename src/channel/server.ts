// The listening end of the control channel. It accepts on readiness and
// hands each connection on with its peer's credentials (SO_PEERCRED); who
// is let in is the restart state machine's decision, not this file's.

import { EventEmitter } from 'node:events';
import { unlinkSync } from 'node:fs';
import * as native from '../binding';
import type { Credentials, PollHandle } from '../binding';
import { Channel } from './channel';
import { removeIfStale, type ControlAddress } from './address';
import { BatonError, ErrorCodes, isSystemError, type SystemError } from '../errors';

/** How long accepting pauses when the process is out of fds or socket memory. */
const ACCEPT_RETRY_MS = 200;
/** accept4() errors that mean the process (or the system) is out of fds or socket memory. */
const OUT_OF_RESOURCES = ['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM'];

export interface ControlServerEvents {
  connection: [channel: Channel, peer: Credentials];
  error: [error: Error];
}

export class ControlServer extends EventEmitter<ControlServerEvents> {
  private readonly poll: PollHandle;
  private closed = false;
  private retry?: NodeJS.Timeout;

  private constructor(
    readonly address: ControlAddress,
    private readonly fd: number,
  ) {
    super();
    this.poll = new native.Poll(fd, (error) => (error ? this.emit('error', error) : this.acceptAll()));
    this.poll.start(true, false);
  }

  /**
   * Binds and listens; a filesystem path gets `mode` before any peer can
   * connect. A name held by a live process is a clear BASE_ID_IN_USE.
   */
  static listen(address: ControlAddress, mode: number): ControlServer {
    removeIfStale(address);
    try {
      return new ControlServer(address, native.unixListen(address.path, address.abstract, mode, 16));
    } catch (error) {
      if (!isSystemError(error, 'EADDRINUSE')) throw error;
      throw new BatonError(
        ErrorCodes.BASE_ID_IN_USE,
        `control socket ${address.display} is in use by another baton instance; ` +
          'give this one another --base-id, or --use-dynamic-base-id',
        { cause: error },
      );
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retry);
    this.poll.close();
    native.close(this.fd);
    if (!this.address.abstract) {
      try {
        unlinkSync(this.address.path);
      } catch {
        // Already gone: nothing to clean.
      }
    }
  }

  private acceptAll(): void {
    while (!this.closed) {
      let fd: number;
      try {
        fd = native.accept(this.fd);
      } catch (error) {
        if (isSystemError(error) && OUT_OF_RESOURCES.includes(error.code)) return this.pause(error);
        this.emit('error', error as Error);
        return;
      }
      if (fd < 0) return;
      let peer: Credentials;
      try {
        peer = native.peerCredentials(fd);
      } catch (error) {
        native.close(fd);
        this.emit('error', error as Error);
        continue;
      }
      this.emit('connection', new Channel(fd), peer);
    }
  }

  /** The connection stays queued and the listener readable: stop polling, or every loop turn fails again. */
  private pause(cause: SystemError): void {
    this.poll.stop();
    this.retry = setTimeout(() => this.poll.start(true, false), ACCEPT_RETRY_MS).unref();
    this.emit(
      'error',
      new BatonError(
        ErrorCodes.CAPACITY,
        `control socket ${this.address.display} cannot accept a connection (${cause.code}: out of fds or socket memory); ` +
          `accepting resumes in ${ACCEPT_RETRY_MS} ms`,
        { cause },
      ),
    );
  }
}
