// Drains an http2 server the way HTTP/2 expects: a session the controller
// decides on is closed gracefully (session.close(): GOAWAY naming the last
// stream the server took, those streams finish, the client opens new
// streams on a new connection). Sessions are asked when a stream arrives
// and at every check while draining; at the deadline every one goes away.
// The HTTP/1.1 connections a server with allowHTTP1 serves are drained as
// drainHttp drains them.

import * as net from 'node:net';
import * as tls from 'node:tls';
import type * as http2 from 'node:http2';
import { invalidArgument } from '../errors';
import { checkController, checkMsOf, checkWhileDraining, type DrainAdapter, type DrainAdapterOptions } from './adapter';
import type { DrainController } from './controller';
import { followHttp1 } from './http';

/**
 * Drains an http2 server as HTTP/2 expects: sessions the controller picks
 * get GOAWAY and their streams finish (with allowHTTP1, HTTP/1.1
 * connections are drained as drainHttp does). Attach before the server
 * accepts: sessions opened earlier are not tracked.
 */
export function drainHttp2(server: http2.Http2Server | http2.Http2SecureServer, controller: DrainController, options: DrainAdapterOptions = {}): DrainAdapter {
  if (!(server instanceof net.Server)) throw invalidArgument('server must be an http2 server');
  checkController(controller);
  const checkMs = checkMsOf(options);
  const sessions = new Set<http2.ServerHttp2Session>();
  const http1 = followHttp1(server, controller, checkMs);

  const goAway = (session: http2.ServerHttp2Session): void => {
    if (!session.closed && !session.destroyed && controller.shouldClose(session)) session.close();
  };
  const onSession = (session: http2.ServerHttp2Session): void => {
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
  const stopChecking = checkWhileDraining(controller, checkMs, check);
  return {
    detach() {
      stopChecking();
      http1.detach();
      s.off('session', onSession);
      s.off('stream', onStream);
      server.off('secureConnection', onSecureConnection);
    },
  };
}
