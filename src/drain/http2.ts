// Drains an http2 server the way HTTP/2 expects: a session the controller
// decides on is closed gracefully (session.close(): GOAWAY naming the last
// stream the server took, those streams finish, the client opens new
// streams on a new connection). Sessions are asked when a stream arrives
// and at every check while draining; at the deadline every one goes away.

import * as net from 'node:net';
import type * as http2 from 'node:http2';
import { invalidArgument } from '../errors';
import { checkController, checkMsOf, checkWhileDraining, type DrainAdapter, type DrainAdapterOptions } from './adapter';
import type { DrainController } from './controller';

/** Attach before the server accepts: sessions opened earlier are not tracked. */
export function drainHttp2(server: http2.Http2Server | http2.Http2SecureServer, controller: DrainController, options: DrainAdapterOptions = {}): DrainAdapter {
  if (!(server instanceof net.Server)) throw invalidArgument('server must be an http2 server');
  checkController(controller);
  const checkMs = checkMsOf(options);
  const sessions = new Set<http2.ServerHttp2Session>();

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
  const check = (): void => sessions.forEach(goAway);

  // Both event signatures differ between the two server types; the listeners fit either.
  const s = server as http2.Http2Server;
  s.on('session', onSession);
  s.on('stream', onStream);
  const stopChecking = checkWhileDraining(controller, checkMs, check);
  return {
    detach() {
      stopChecking();
      s.off('session', onSession);
      s.off('stream', onStream);
    },
  };
}
