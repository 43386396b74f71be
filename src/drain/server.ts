// The drain a server's protocol calls for, picked from the server itself:
// what worker.serve() and serveOnMainThread() apply on their own.

import * as http from 'node:http';
import type * as http2 from 'node:http2';
import * as https from 'node:https';
import type * as net from 'node:net';
import type { DrainAdapter } from './adapter';
import type { DrainController } from './controller';
import { drainHttp } from './http';
import { drainHttp2 } from './http2';

/** drainHttp for http and https servers, drainHttp2 for http2 ones; nothing for others (their own, or drainNet). */
export function drainByProtocol(server: net.Server, controller: DrainController): DrainAdapter | undefined {
  if (isHttp1Server(server)) return drainHttp(server, controller);
  if (isHttp2Server(server)) return drainHttp2(server, controller);
  return undefined;
}

export function isHttp1Server(server: net.Server): server is http.Server | https.Server {
  return server instanceof http.Server || server instanceof https.Server;
}

/** http2.createServer and createSecureServer make these; Node exports no class to test against. */
function isHttp2Server(server: net.Server): server is http2.Http2Server {
  return server.constructor.name === 'Http2Server' || server.constructor.name === 'Http2SecureServer';
}
