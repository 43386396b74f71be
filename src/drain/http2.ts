// Drains an http2 server the way HTTP/2 expects (RFC 9113 §6.8): a session
// the controller decides on is first told that a shutdown is coming (GOAWAY
// naming stream 2^31-1: open no more streams), and once the client has had
// a round trip to act on it (a PING answered, or a timeout), it gets the
// final GOAWAY naming the last stream the server took (session.close());
// those streams finish, the client opens new ones on a new connection.
// Without the first step, streams the client sent before it saw the final
// GOAWAY are refused. Sessions are asked when a stream arrives and at every
// check while draining; at the deadline every one gets its final GOAWAY at
// once. The HTTP/1.1 connections a server with allowHTTP1 serves are
// drained as drainHttp drains them.
//
// Node has no call for that first GOAWAY: session.goaway() goes through
// nghttp2, which then ignores every stream that arrives after it (and stops
// reading once no stream is open, so the PING is never answered either).
// So the frame is written on the socket beside nghttp2: libuv sends writes
// in order and Node writes whole frames, so it lands between two frames.
// Only over cleartext (h2c): through TLS, a second writer beside Node's
// trips an assertion in its TLS layer, so TLS sessions get the final GOAWAY
// alone, as before (a client may see streams it sent at that moment
// refused, which is safe to retry).

import * as net from 'node:net';
import * as tls from 'node:tls';
import type * as http2 from 'node:http2';
import { invalidArgument } from '../errors';
import { checkController, checkMsOf, checkWhileDraining, type DrainAdapter, type DrainAdapterOptions } from './adapter';
import type { DrainController } from './controller';
import { followHttp1 } from './http';

/** GOAWAY (type 7) on stream 0: last stream 2^31-1, NO_ERROR, no debug data. */
const SHUTDOWN_NOTICE = Buffer.from([0, 0, 8, 7, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
/** How long the final GOAWAY waits for the PING to come back, at most (and never past the drain time). */
export const PING_TIMEOUT_MS = 1000;

/**
 * Drains an http2 server as HTTP/2 expects: sessions the controller picks
 * are told to open no more streams, then (after a round trip) get their
 * final GOAWAY, and their streams finish (with allowHTTP1, HTTP/1.1
 * connections are drained as drainHttp does). Attach before the server
 * accepts: sessions opened earlier are not tracked.
 */
export function drainHttp2(server: http2.Http2Server | http2.Http2SecureServer, controller: DrainController, options: DrainAdapterOptions = {}): DrainAdapter {
  if (!(server instanceof net.Server)) throw invalidArgument('server must be an http2 server');
  checkController(controller);
  const checkMs = checkMsOf(options);
  const sessions = new Set<http2.ServerHttp2Session>();
  const http1 = followHttp1(server, controller, checkMs);
  /** Cleartext sessions' sockets, to write the shutdown notice on. */
  const sockets = new WeakMap<http2.ServerHttp2Session, net.Socket>();
  /** Sessions told a shutdown is coming, and what sends their final GOAWAY. */
  const noticed = new Map<http2.ServerHttp2Session, () => void>();
  // Node's own 'connection' listener makes the session and emits 'session' at once: this one runs just before it.
  let accepting: net.Socket | undefined;

  const shutDown = (session: http2.ServerHttp2Session, socket: net.Socket): void => {
    const finish = (): void => {
      if (noticed.get(session) !== finish) return;
      noticed.delete(session);
      clearTimeout(timer);
      if (!session.closed && !session.destroyed) session.close();
    };
    noticed.set(session, finish);
    session.once('close', finish);
    const timer = setTimeout(finish, Math.min(PING_TIMEOUT_MS, controller.progress().remainingMs)).unref();
    socket.write(SHUTDOWN_NOTICE);
    // Answered after every frame the client sent before it saw the notice: those streams have all arrived.
    if (session.ping(finish) === false) finish();
  };
  const goAway = (session: http2.ServerHttp2Session): void => {
    if (session.closed || session.destroyed) return;
    const finish = noticed.get(session);
    if (finish !== undefined) {
      if (controller.overdue) finish();
      return;
    }
    if (!controller.shouldClose(session)) return;
    const socket = sockets.get(session);
    if (socket === undefined || socket.destroyed || controller.overdue) session.close();
    else shutDown(session, socket);
  };
  const onConnection = (socket: net.Socket): void => void (accepting = socket);
  const onSession = (session: http2.ServerHttp2Session): void => {
    if (accepting !== undefined) sockets.set(session, accepting);
    accepting = undefined;
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    controller.track(session);
  };
  const onStream = (stream: http2.ServerHttp2Stream): void => {
    if (stream.session) goAway(stream.session as http2.ServerHttp2Session);
  };
  // A TLS connection that did not choose h2 is served (allowHTTP1) or dropped by Node as HTTP/1.
  const onSecureConnection = (socket: tls.TLSSocket): void => {
    if (socket.alpnProtocol !== 'h2') http1.track(socket);
  };
  const check = (): void => sessions.forEach(goAway);

  // Both event signatures differ between the two server types; the listeners fit either.
  const s = server as http2.Http2Server;
  s.on('session', onSession);
  s.on('stream', onStream);
  if (server instanceof tls.Server) server.on('secureConnection', onSecureConnection);
  else server.prependListener('connection', onConnection);
  const stopChecking = checkWhileDraining(controller, checkMs, check);
  return {
    detach() {
      stopChecking();
      http1.detach();
      s.off('session', onSession);
      s.off('stream', onStream);
      server.off('secureConnection', onSecureConnection);
      server.off('connection', onConnection);
      // No timer left behind: the sessions told a shutdown is coming get their final GOAWAY now.
      noticed.forEach((finish) => finish());
    },
  };
}
