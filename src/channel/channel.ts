// A connected SEQPACKET control socket driven by the event loop: records go
// out in order (queued while the socket buffer is full) and come in through
// a uv_poll callback, never a blocking call or a polling timer.

import { EventEmitter } from 'node:events';
import * as native from '../binding';
import type { PollHandle, ReceivedMessage } from '../binding';
import { BatonError, ErrorCodes, isSystemError } from '../errors';
import { MAX_MESSAGE_BYTES } from '../protocol/messages';

/** Records read per readiness callback, so a flooding peer cannot starve the loop. */
const READS_PER_WAKEUP = 64;
/** Records waiting for a peer that does not read: past this it is cut off rather than growing our memory. */
const MAX_QUEUED = 1024;

export interface ChannelEvents {
  /** One record. The listener owns `fds` from here on. */
  message: [data: Buffer, fds: number[]];
  /** A record that could not be read whole (MSG_TRUNC / MSG_CTRUNC) or was empty; its fds were already closed. */
  malformed: [reason: string];
  /** The channel is closed; error is set when a syscall failed rather than the peer closing. */
  close: [error?: Error];
}

interface Outgoing {
  data: Buffer;
  fds: number[];
}

export class Channel extends EventEmitter<ChannelEvents> {
  readonly fd: number;
  private readonly poll: PollHandle;
  private readonly queue: Outgoing[] = [];
  private closed = false;
  private ending?: NodeJS.Timeout;

  /** Takes ownership of `fd`, a connected SEQPACKET socket. */
  constructor(fd: number) {
    super();
    this.fd = fd;
    this.poll = new native.Poll(fd, (error, readable, writable, disconnect) =>
      this.onReady(error, readable, writable, disconnect),
    );
    this.poll.start(true, false);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Sends one record. The fds are not taken: the caller keeps them open until
   * the channel closes, since a full socket buffer delays the sendmsg().
   */
  send(data: Buffer, fds: number[] = []): void {
    if (this.closed) return;
    if (data.length > MAX_MESSAGE_BYTES || fds.length > native.SCM_MAX_FD) {
      throw new BatonError(
        ErrorCodes.PROTOCOL,
        `a record of ${data.length} bytes and ${fds.length} fds is over the limit of ${MAX_MESSAGE_BYTES} bytes and ${native.SCM_MAX_FD} fds`,
      );
    }
    if (this.queue.length >= MAX_QUEUED) {
      return this.close(new BatonError(ErrorCodes.PROTOCOL, `the peer has not read ${MAX_QUEUED} records: cut off`));
    }
    this.queue.push({ data, fds });
    if (this.queue.length === 1) this.flush();
  }

  /** Closes once every queued record is sent (a refusal, a last ack), or after `timeoutMs` at the latest. */
  end(timeoutMs = 1000): void {
    if (this.queue.length === 0) return this.close();
    this.ending = setTimeout(() => this.close(), timeoutMs);
    this.ending.unref();
  }

  close(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.ending);
    this.queue.length = 0;
    this.poll.close();
    native.close(this.fd);
    this.emit('close', error);
  }

  private flush(): void {
    try {
      while (this.queue.length > 0) {
        const next = this.queue[0];
        if (!native.sendMessage(this.fd, next.data, next.fds)) break;
        this.queue.shift();
      }
    } catch (error) {
      this.close(error as Error);
      return;
    }
    if (this.ending && this.queue.length === 0) return this.close();
    if (!this.closed) this.poll.start(true, this.queue.length > 0);
  }

  private onReady(error: Error | null, readable: boolean, writable: boolean, disconnect: boolean): void {
    if (this.closed) return;
    if (error) {
      // libuv reports a pending socket error (a peer that reset us) as a poll error and stops
      // polling: read what is still queued, then close.
      this.read();
      return this.close(error);
    }
    if (writable) this.flush();
    if (readable || disconnect) this.read();
  }

  private read(): void {
    for (let i = 0; i < READS_PER_WAKEUP && !this.closed; i++) {
      let record;
      try {
        record = native.receiveMessage(this.fd, MAX_MESSAGE_BYTES + 1, native.SCM_MAX_FD);
      } catch (error) {
        // A peer that closed with our records unread resets the connection, but what it sent
        // before closing (a refusal, say) is still queued behind the error: read on to EOF.
        if (isSystemError(error, 'ECONNRESET')) continue;
        return this.close(error as Error);
      }
      if (record === null) return;
      if (record.eof) return this.close();
      const reason = unreadable(record);
      if (reason) {
        for (const fd of record.fds) native.close(fd);
        this.emit('malformed', reason);
        continue;
      }
      this.emit('message', record.data, record.fds);
    }
  }
}

/** Why a record cannot be handed on, if it cannot. */
function unreadable({ data, truncated, controlTruncated }: ReceivedMessage): string | undefined {
  if (controlTruncated) return `a record carried more than ${native.SCM_MAX_FD} fds`;
  if (truncated || data.length > MAX_MESSAGE_BYTES) return `a record was over ${MAX_MESSAGE_BYTES} bytes`;
  if (data.length === 0) return 'a record was empty';
  return undefined;
}
