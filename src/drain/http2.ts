// Drains an http2 server the way HTTP/2 expects (RFC 9113 §6.8): a session
// the controller decides on first gets a GOAWAY naming stream 2^31-1 (no
// stream refused; the client opens no new ones), then, one round trip later
// (a PING answered, or a timeout), the final GOAWAY naming the last stream
// the server took (session.close()); those streams finish, and the client
// opens new streams on a new connection. A single GOAWAY with the last
// stream would refuse the streams the client sent while it was on its way.
// Sessions are asked when a stream arrives and at every check while
// draining; at the deadline every one goes away. The HTTP/1.1 connections a
// server with allowHTTP1 serves are drained as drainHttp drains them.
//
// Node has no way to send the first GOAWAY: session.goaway() makes nghttp2
// itself refuse new streams. So its 17 bytes go straight onto the socket's
// fd, only at a frame boundary: with nothing queued in Node or in the kernel
// (checked in the same tick, so nghttp2 cannot write in between). Over TLS
// no bytes can be added to the encrypted stream: those sessions get the
// single GOAWAY of session.close(), and a stream the client sends as it
// comes can be refused.

import * as net from 'node:net';
import * as tls from 'node:tls';
import type * as http2 from 'node:http2';
import { sendWhole } from '../binding';
import { invalidArgument } from '../errors';
import { integerIn } from '../validate';
import { checkController, checkMsOf, checkWhileDraining, type DrainAdapter, type DrainAdapterOptions } from './adapter';
import type { DrainController } from './controller';
import { followHttp1 } from './http';

const FRAME_HEADER_BYTES = 9;
const GOAWAY_TYPE = 0x7;
const MAX_STREAM_ID = 2 ** 31 - 1;
const NO_ERROR = 0;

/** A GOAWAY frame (RFC 9113 §6.8) on stream 0, without debug data. */
export function goawayFrame(lastStreamId: number, errorCode: number): Buffer {
  integerIn(lastStreamId, 'lastStreamId', 0, MAX_STREAM_ID);
  integerIn(errorCode, 'errorCode', 0, 2 ** 32 - 1);
  const frame = Buffer.alloc(FRAME_HEADER_BYTES + 8);
  frame.writeUIntBE(8, 0, 3); // payload length; flags and stream id stay 0
  frame[3] = GOAWAY_TYPE;
  frame.writeUInt32BE(lastStreamId, FRAME_HEADER_BYTES);
  frame.writeUInt32BE(errorCode, FRAME_HEADER_BYTES + 4);
  return frame;
}

/** The first GOAWAY of a graceful shutdown: every stream the client sent may still come. */
const NOTICE = goawayFrame(MAX_STREAM_ID, NO_ERROR);
/** How often a session waits for a frame boundary to send the first GOAWAY, and for how long before it closes without it. */
const NOTICE_RETRY_MS = 5;
const NOTICE_TIMEOUT_MS = 1000;
/** How long the PING after the first GOAWAY may go unanswered. */
const PING_TIMEOUT_MS = 1000;

/**
 * A session's way out: 'open' (serving; it may be waiting for a frame
 * boundary), 'noticed' (first GOAWAY sent), 'pinged' (its PING out: the
 * client has seen the GOAWAY when it answers), 'closing' (final GOAWAY).
 */
type GoawayState = 'open' | 'noticed' | 'pinged' | 'closing';

/** What Node keeps under a plain TCP socket (TCPWrap); not part of its typed API. */
interface StreamHandle {
  fd?: number;
  writeQueueSize?: number;
}

/** The fd of a plain TCP session's socket, if bytes can be added to it: none over TLS. */
function socketOf(session: http2.ServerHttp2Session): { socket: net.Socket; handle: StreamHandle } | undefined {
  if (session.encrypted) return undefined;
  const socket = session.socket as net.Socket;
  const handle = (socket as unknown as { _handle?: StreamHandle })._handle;
  return typeof handle?.fd === 'number' && handle.fd >= 0 ? { socket, handle } : undefined;
}

/** Sends the first GOAWAY if it goes whole at a frame boundary now; false to try again later. */
function notice(session: http2.ServerHttp2Session): boolean {
  const found = socketOf(session);
  if (found === undefined) return false;
  const { socket, handle } = found;
  // Not before the peer has acknowledged our SETTINGS: a connection's first frame must be SETTINGS.
  if (session.pendingSettingsAck || socket.writableLength !== 0 || handle.writeQueueSize !== 0) return false;
  return sendWhole(handle.fd!, NOTICE);
}

/** One session's graceful shutdown. */
class Goaway {
  state: GoawayState = 'open';
  private timer: NodeJS.Timeout | undefined;
  private since = 0;

  constructor(private readonly session: http2.ServerHttp2Session) {}

  /** Starts the shutdown: the first GOAWAY now or at a frame boundary soon, else (TLS, or none came in time) the final one alone. */
  begin(): void {
    if (this.state !== 'open' || this.timer !== undefined) return;
    if (socketOf(this.session) === undefined) return this.close();
    this.since = performance.now();
    this.tryNotice();
  }

  private tryNotice(): void {
    this.timer = undefined;
    if (this.session.closed || this.session.destroyed) return;
    let sent: boolean;
    try {
      sent = notice(this.session);
    } catch (error) {
      // The socket is broken (the peer left, or the frame went in part): nothing graceful is left to do.
      this.session.destroy(error as Error);
      return;
    }
    if (sent) return this.ping();
    if (performance.now() - this.since >= NOTICE_TIMEOUT_MS) return this.close();
    this.timer = setTimeout(() => this.tryNotice(), NOTICE_RETRY_MS).unref();
  }

  private ping(): void {
    this.state = 'noticed';
    this.timer = setTimeout(() => this.close(), PING_TIMEOUT_MS).unref();
    // The callback comes with the answer, or with an error once the session is gone (close() is then a no-op).
    if (this.session.ping(() => this.close())) this.state = 'pinged';
  }

  /** The final GOAWAY, naming the last stream taken; those streams finish. */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.state = 'closing';
    if (!this.session.closed && !this.session.destroyed) this.session.close();
  }

  /** Stops its timers (the session closed, or the adapter detached); one already told it goes away closes now. */
  end(): void {
    if (this.state === 'noticed' || this.state === 'pinged') this.close();
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/**
 * Drains an http2 server as HTTP/2 expects: sessions the controller picks
 * get a graceful GOAWAY (RFC 9113 §6.8; over TLS a single one) and their
 * streams finish (with allowHTTP1, HTTP/1.1 connections are drained as
 * drainHttp does). Attach before the server accepts: sessions opened
 * earlier are not tracked.
 */
export function drainHttp2(server: http2.Http2Server | http2.Http2SecureServer, controller: DrainController, options: DrainAdapterOptions = {}): DrainAdapter {
  if (!(server instanceof net.Server)) throw invalidArgument('server must be an http2 server');
  checkController(controller);
  const checkMs = checkMsOf(options);
  const sessions = new Map<http2.ServerHttp2Session, Goaway>();
  const http1 = followHttp1(server, controller, checkMs);

  const goAway = (session: http2.ServerHttp2Session): void => {
    const goaway = sessions.get(session);
    if (goaway?.state === 'open' && !session.closed && !session.destroyed && controller.shouldClose(session)) goaway.begin();
  };
  const onSession = (session: http2.ServerHttp2Session): void => {
    const goaway = new Goaway(session);
    sessions.set(session, goaway);
    session.once('close', () => {
      goaway.end();
      sessions.delete(session);
    });
    controller.track(session);
  };
  const onStream = (stream: http2.ServerHttp2Stream): void => {
    if (stream.session) goAway(stream.session as http2.ServerHttp2Session);
  };
  // A TLS connection that did not choose h2 is served (allowHTTP1) or dropped by Node as HTTP/1.
  const onSecureConnection = (socket: tls.TLSSocket): void => {
    if (socket.alpnProtocol !== 'h2') http1.track(socket);
  };
  const check = (): void => sessions.forEach((_, session) => goAway(session));

  // Both event signatures differ between the two server types; the listeners fit either.
  const s = server as http2.Http2Server;
  s.on('session', onSession);
  s.on('stream', onStream);
  if (server instanceof tls.Server) server.on('secureConnection', onSecureConnection);
  const stopChecking = checkWhileDraining(controller, checkMs, check);
  return {
    detach() {
      stopChecking();
      http1.detach();
      s.off('session', onSession);
      s.off('stream', onStream);
      server.off('secureConnection', onSecureConnection);
      sessions.forEach((goaway) => goaway.end());
    },
  };
}
