// The listening end of the control channel. It accepts on readiness and
// hands each connection on with its peer's credentials (SO_PEERCRED); who
// is let in is the restart state machine's decision, not this file's.

import { EventEmitter } from 'node:events';
import { unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import * as native from '../binding';
import type { Credentials, PollHandle } from '../binding';
import { Channel } from './channel';
import { holder, removeIfStale, type ControlAddress } from './address';
import { BatonError, ErrorCodes, isSystemError, type SystemError } from '../errors';
import { checkSocketDirectory } from '../files';

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
    /** The listening socket; kept across `baton upgrade`'s exec. */
    readonly fd: number,
  ) {
    super();
    this.poll = new native.Poll(fd, (error) => (error ? this.emit('error', error) : this.acceptAll()));
    this.poll.start(true, false);
  }

  /**
   * Binds and listens; a filesystem path gets `mode` as it is created, in a
   * directory checked first (checkSocketDirectory). A name held by a live
   * process is a clear BASE_ID_IN_USE naming who holds it.
   */
  static listen(address: ControlAddress, mode: number): ControlServer {
    if (!address.abstract) checkSocketDirectory(dirname(address.path));
    removeIfStale(address);
    try {
      return new ControlServer(address, native.unixListen(address.path, address.abstract, mode, 16));
    } catch (error) {
      if (!isSystemError(error, 'EADDRINUSE')) throw error;
      throw new BatonError(ErrorCodes.BASE_ID_IN_USE, inUse(address), { cause: error });
    }
  }

  /** A listening socket at `address` that this process already holds (an image before an exec bound it). */
  static adopt(address: ControlAddress, fd: number): ControlServer {
    return new ControlServer(address, fd);
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

/** Why a name is taken, and by whom when its listener answers. */
function inUse(address: ControlAddress): string {
  const peer = holder(address);
  const uid = process.getuid!();
  if (peer && peer.uid !== uid) {
    return (
      `control socket ${address.display} is held by pid ${peer.pid}, running as uid ${peer.uid}, not baton's uid ${uid}: ` +
      (address.abstract
        ? 'the abstract namespace has no permissions, so any local user can take a name there; give a filesystem --socket-path (the default is a directory only this uid can write)'
        : `remove it, or give a --socket-path in a directory only uid ${uid} can write`)
    );
  }
  if (!peer && address.abstract) {
    return (
      `control socket ${address.display} is bound by a process that does not answer, which may be another user's: the abstract namespace has ` +
      'no permissions, so any local user can take a name there; give a filesystem --socket-path (the default is a directory only this uid can ' +
      'write), another --base-id, or --use-dynamic-base-id'
    );
  }
  return (
    `control socket ${address.display} is in use by another baton instance${peer ? ` (pid ${peer.pid})` : ''}; ` +
    'give this one another --base-id, or --use-dynamic-base-id'
  );
}
