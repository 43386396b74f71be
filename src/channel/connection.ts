// Requests and replies over a Channel, matched by id, so any number can be in
// flight and nobody blocks on an answer. Every request has a deadline. A
// record that fails validation is answered with an error and dropped, with its
// fds closed: bad input costs the sender that record and nothing else.

import { EventEmitter } from 'node:events';
import * as native from '../binding';
import { BatonError, ErrorCodes, errorCodeOf } from '../errors';
import type { Channel } from './channel';
import {
  decode,
  encode,
  ProtocolError,
  type Message,
  type Reply,
  type Request,
  type SocketRef,
  type Sockets,
  type Stats,
} from '../protocol/messages';

/** A reply as the requester sees it: a multi-record `sockets` answer is joined into one. */
export interface Answer {
  reply: Reply;
  /** Owned by the requester from here on. */
  fds: number[];
  /** Every record of a multi-record answer (`sockets`, `stats`), in order. */
  parts: Reply[];
}

type Multipart = Sockets | Stats;

interface Pending {
  /** The reply type that answers it (or an error). */
  expect: Reply['type'];
  resolve(answer: Answer): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
  /** Parts of a multi-record answer received so far. */
  parts: Multipart[];
  fds: number[];
}

const EXPECTED: Record<Request['type'], Reply['type']> = {
  getSockets: 'sockets',
  getStats: 'stats',
  drain: 'ack',
  terminate: 'ack',
  accepting: 'ack',
  retired: 'ack',
};

type Unsent<T> = T extends { id: number } ? Omit<T, 'id'> : never;

export interface ConnectionEvents {
  /** A record that is not a reply: hello, welcome, refused or a request. */
  message: [message: Message, fds: number[]];
  /** A record from the peer that was refused; already answered. */
  protocolError: [error: ProtocolError];
  close: [error?: Error];
}

export class Connection extends EventEmitter<ConnectionEvents> {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(readonly channel: Channel) {
    super();
    channel.on('message', (data, fds) => this.onRecord(data, fds));
    channel.on('malformed', (reason) => this.refuseRecord(new ProtocolError(reason)));
    channel.on('close', (error) => this.onClose(error));
  }

  get isClosed(): boolean {
    return this.channel.isClosed;
  }

  send(message: Message, fds: number[] = []): void {
    this.channel.send(encode(message), fds);
  }

  /** Sends a request; getSockets is answered by sockets, getStats by stats, everything else by ack (or an error). */
  request(message: Unsent<Request>, timeoutMs: number): Promise<Answer> {
    if (this.isClosed) {
      return Promise.reject(new BatonError(ErrorCodes.CHANNEL_CLOSED, `cannot send ${message.type}: the control channel is closed`));
    }
    const id = this.nextId++;
    return new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.drop(id);
        reject(new BatonError(ErrorCodes.TIMEOUT, `no answer to ${message.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { expect: EXPECTED[message.type], resolve, reject, timer, parts: [], fds: [] });
      this.send({ ...message, id } as Request);
    });
  }

  close(error?: Error): void {
    this.channel.close(error);
  }

  /** Closes once what was sent has left (see Channel.end). */
  end(): void {
    this.channel.end();
  }

  private onRecord(data: Buffer, fds: number[]): void {
    let message: Message;
    try {
      message = decode(data, fds.length);
    } catch (error) {
      closeAll(fds);
      if (!(error instanceof ProtocolError)) throw error;
      // An answer we cannot read fails its request now (with the fds of its earlier parts), not at its timeout.
      const pending = error.answers === undefined ? undefined : this.pending.get(error.answers);
      if (pending) {
        this.drop(error.answers!);
        pending.reject(error);
      }
      return this.refuseRecord(error);
    }
    if ('re' in message && message.re !== undefined) return this.onReply(message as Reply, fds);
    this.emit('message', message, fds);
  }

  private refuseRecord(error: ProtocolError): void {
    this.emit('protocolError', error);
    try {
      this.send({ type: 'error', ...(error.re === undefined ? {} : { re: error.re }), code: error.code, message: error.message });
    } catch (failure) {
      // Whatever the peer sent, it must never take this process down: a peer we cannot answer is cut off.
      this.close(failure as Error);
    }
  }

  private onReply(reply: Reply, fds: number[]): void {
    const pending = this.pending.get(reply.re!);
    if (!pending) return closeAll(fds); // timed out earlier: nobody owns these
    if (reply.type !== pending.expect && reply.type !== 'error') {
      closeAll(fds);
      this.drop(reply.re!);
      return pending.reject(new ProtocolError(`a ${reply.type} answered a request that expects ${pending.expect}`));
    }
    if (reply.type === 'sockets' || reply.type === 'stats') {
      if (reply.part !== pending.parts.length) {
        closeAll(fds);
        this.drop(reply.re!);
        return pending.reject(new ProtocolError(`${reply.type} part ${reply.part} came when part ${pending.parts.length} was due`));
      }
      pending.parts.push(reply);
      pending.fds.push(...fds);
      if (pending.parts.length < reply.parts) return;
    }
    if (reply.type === 'error') {
      this.drop(reply.re!); // with the fds of any parts that came before it
      return pending.reject(new BatonError(errorCodeOf(reply.code), `the peer refused the request: ${reply.message}`));
    }
    this.drop(reply.re!, false);
    if (reply.type === 'sockets') return pending.resolve({ reply: joinSockets(pending.parts as Sockets[]), fds: pending.fds, parts: pending.parts });
    pending.resolve({ reply, fds, parts: pending.parts.length > 0 ? pending.parts : [reply] });
  }

  /** Forgets a request; its partial fds are closed unless they are being handed out. */
  private drop(id: number, closeFds = true): void {
    const pending = this.pending.get(id);
    if (!pending) return;
    clearTimeout(pending.timer);
    this.pending.delete(id);
    if (closeFds) closeAll(pending.fds);
  }

  private onClose(error?: Error): void {
    for (const [id, pending] of [...this.pending]) {
      this.drop(id);
      pending.reject(
        new BatonError(ErrorCodes.CHANNEL_CLOSED, 'the control channel closed before the answer came', { cause: error }),
      );
    }
    this.emit('close', error);
  }
}

/** Parts arrive in order (SEQPACKET keeps it), and so do their fds. */
function joinSockets(parts: Sockets[]): Sockets {
  const sockets: SocketRef[] = parts.flatMap((p) => p.sockets);
  return { ...parts[0], parts: 1, sockets };
}

export function closeAll(fds: number[]): void {
  for (const fd of fds) native.close(fd);
}
