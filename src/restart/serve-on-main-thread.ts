// The public way to serve a server on the main thread: a MainThreadServer
// that follows the generation, drained the way its protocol expects. Apart
// from main-thread-server.ts, which the generation's own admin listener uses.

import * as net from 'node:net';
import { drainByProtocol } from '../drain/server';
import type { Servable } from '../listeners/servers';
import type { Generation } from './generation';
import { MainThreadServer, type MainThreadServeOptions } from './main-thread-server';

/**
 * Serves `target` (an http, https, http2 or net server, or a dgram socket)
 * on the main thread, on the generation's sockets of one listener: from
 * takeOver() on (or at once if the generation already accepts), stopping
 * and draining with the generation (drainHttp or drainHttp2 for those
 * servers), letting go of retired sockets, closed at termination.
 */
export function serveOnMainThread(generation: Generation, target: Servable, options: MainThreadServeOptions = {}): MainThreadServer {
  const server = new MainThreadServer(generation.listenerSet, target, options, (message) => generation.warn(message));
  if (target instanceof net.Server) drainByProtocol(target, generation.drainController);
  generation.follow(server);
  return server;
}
