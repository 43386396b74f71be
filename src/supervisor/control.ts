// The supervisor's control socket, where `baton reload|status|rollback` ask.
// It is the generations' kind of socket (channel/), beside theirs under the
// same --socket-path and --base-id, and it lets in the same peers: those
// whose uid (SO_PEERCRED) is one of --allowed-uids. Each command is answered
// once, whenever its outcome is known; a client that went away meanwhile
// costs nothing.

import type { Credentials } from '../binding';
import type { ControlAddress } from '../channel/address';
import { Channel } from '../channel/channel';
import { closeAll } from '../channel/connection';
import { ControlServer } from '../channel/server';
import { ErrorCodes } from '../errors';
import { ProtocolError } from '../protocol/messages';
import {
  SUPERVISOR_PROTOCOL,
  decodeRecord,
  encodeRecord,
  isCommand,
  type CommandOutcome,
  type SupervisorReply,
  type SupervisorStatus,
} from './messages';

/** How long a refused peer's connection stays open for its command to arrive. */
const REFUSED_LINGER_MS = 1000;

export interface CommandHandler {
  reload(): Promise<CommandOutcome>;
  rollback(): Promise<CommandOutcome>;
  status(): SupervisorStatus;
  /** `answer`: the asking connection's fd and request id, answered by the new image once the exec took. */
  upgrade(answer: { fd: number; re: number }): Promise<CommandOutcome>;
}

export interface ControlOptions {
  socketMode: number;
  allowedUids: number[];
  warn(message: string): void;
}

export class SupervisorControl {
  private server?: ControlServer;
  private closed = false;
  private warned = false;

  constructor(
    private readonly handler: CommandHandler,
    private readonly options: ControlOptions,
  ) {}

  get address(): ControlAddress | undefined {
    return this.server?.address;
  }

  /** The listening socket's fd, if it listens. */
  get fd(): number | undefined {
    return this.server?.fd;
  }

  /** Listens on `fd`, the socket at `address` that the image before an upgrade listened on. */
  adopt(address: ControlAddress, fd: number): void {
    this.server = ControlServer.adopt(address, fd);
    this.watch(this.server);
  }

  /** Answers the `baton upgrade` that the image before this one received, on its connection (`fd`), and ends it. */
  answerCarried(answer: { fd: number; re: number }, outcome: CommandOutcome): void {
    const channel = new Channel(answer.fd);
    channel.on('message', (_data, fds) => closeAll(fds));
    this.reply(channel, { type: 'outcome', protocol: SUPERVISOR_PROTOCOL, re: answer.re, ...outcome });
    channel.end();
  }

  /** Listens at `address` unless it already does; a name another process holds is a warning (once), never a failure. */
  listen(address: ControlAddress): void {
    if (this.server || this.closed) return;
    try {
      this.server = ControlServer.listen(address, this.options.socketMode);
    } catch (error) {
      if (!this.warned) {
        this.options.warn(
          `no control socket at ${address.display}: ${(error as Error).message}; baton reload|status|rollback cannot reach ` +
            'this supervisor (SIGHUP still reloads); it tries again at each take-over',
        );
      }
      this.warned = true;
      return;
    }
    this.watch(this.server);
  }

  private watch(server: ControlServer): void {
    server.on('connection', (channel, peer) => this.accept(channel, peer));
    server.on('error', (error) => this.options.warn(`control socket: ${error.message}`));
  }

  /** No more connections; those open are still answered (a reload that fails as the supervisor stops says so). */
  close(): void {
    this.closed = true;
    this.server?.close();
  }

  private accept(channel: Channel, peer: Credentials): void {
    const { allowedUids } = this.options;
    if (!allowedUids.includes(peer.uid)) {
      const message = `pid ${peer.pid} runs as uid ${peer.uid}; this supervisor takes commands only from uid ${allowedUids.join(', ')} (--allowed-uids)`;
      this.options.warn(`refused a command: ${message}`);
      this.reply(channel, { type: 'error', protocol: SUPERVISOR_PROTOCOL, code: ErrorCodes.PEER_REFUSED, message });
      // Open until its command comes (for at most a second): closed earlier, its send would fail before it reads why.
      const timer = setTimeout(() => channel.close(), REFUSED_LINGER_MS);
      channel.on('close', () => clearTimeout(timer));
      channel.on('message', (_data, fds) => {
        closeAll(fds);
        channel.end();
      });
      return;
    }
    channel.on('message', (data, fds) => {
      closeAll(fds); // commands never carry fds
      void this.answer(channel, data);
    });
    channel.on('malformed', (reason) => this.refuse(channel, new ProtocolError(reason)));
  }

  private async answer(channel: Channel, data: Buffer): Promise<void> {
    let message;
    try {
      message = decodeRecord(data);
      if (!isCommand(message)) throw new ProtocolError(`a client does not send ${message.type}`);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      return this.refuse(channel, error);
    }
    const re = message.id;
    if (message.type === 'status') return this.reply(channel, { type: 'snapshot', protocol: SUPERVISOR_PROTOCOL, re, status: this.handler.status() });
    const outcome = await (message.type === 'reload'
      ? this.handler.reload()
      : message.type === 'upgrade'
        ? this.handler.upgrade({ fd: channel.fd, re })
        : this.handler.rollback());
    this.reply(channel, { type: 'outcome', protocol: SUPERVISOR_PROTOCOL, re, ...outcome });
  }

  private refuse(channel: Channel, error: ProtocolError): void {
    this.reply(channel, { type: 'error', protocol: SUPERVISOR_PROTOCOL, ...(error.re === undefined ? {} : { re: error.re }), code: error.code, message: error.message });
  }

  /** A reply that cannot be sent (over the size limit, say) ends the connection: the client then says so. */
  private reply(channel: Channel, reply: SupervisorReply): void {
    try {
      channel.send(encodeRecord(reply));
    } catch (error) {
      channel.close(error as Error);
    }
  }
}
