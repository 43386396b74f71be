// Drains HTTP/1.1 the way it expects: a response the controller decides on
// carries `Connection: close` (Node then closes the connection once it is
// sent), requests in flight finish, and keep-alive connections that stay
// idle are closed. The decision is taken when a request arrives, and again
// for unanswered requests when the drain starts and at its deadline. An
// idle connection is asked at every check (keeping its draw, see
// DrainController.shouldClose) and closed only after a whole check interval
// without a request, so a client that just got an answer and sends its next
// request is not cut off; one that sends exactly as the server closes can
// still race it (HTTP/1.1 leaves retrying to the client). Once the drain
// time is over no interval is owed: idle connections close at that check.
// Upgraded connections (WebSocket) belong to the application.

import * as diagnosticsChannel from 'node:diagnostics_channel';
import * as http from 'node:http';
import * as https from 'node:https';
import type * as net from 'node:net';
import { invalidArgument } from '../errors';
import { checkController, checkMsOf, checkWhileDraining, connectionEvent, type DrainAdapter, type DrainAdapterOptions } from './adapter';
import type { DrainController } from './controller';

/**
 * Published by Node for every HTTP/1 request, before it emits 'request',
 * 'checkContinue' or 'checkExpectation' (a 'request' listener misses the
 * last two, and listening for them changes how Node answers Expect), and
 * also for the HTTP/1 requests of an http2 server with allowHTTP1.
 */
const REQUEST_START = 'http.server.request.start';
/** Published by Node as each of those responses finishes: one subscriber instead of a listener per response. */
const RESPONSE_FINISH = 'http.server.response.finish';

/** What both channels publish. */
interface RequestStart {
  request: http.IncomingMessage;
  response: http.ServerResponse;
  socket: net.Socket;
  server: net.Server;
}

interface Connection {
  /** Responses not finished yet, oldest first (HTTP/1 answers in order). */
  responses: http.ServerResponse[];
  requests: number;
  /** The request count when a check last found the connection idle; -1 if it was busy. */
  idleAt: number;
}

/** The HTTP/1 connections of a server, drained as above. */
export interface Http1Follower {
  /** Follows (and counts) an HTTP/1 connection; one not tracked is followed from its next request. */
  track(socket: net.Socket): void;
  detach(): void;
}

/** What drainHttp and drainHttp2 (for allowHTTP1) share: arguments are checked by them. */
export function followHttp1(server: net.Server, controller: DrainController, checkMs: number): Http1Follower {
  const connections = new Map<net.Socket, Connection>();
  // Every connection's one close listener (`this` is the socket): no closure per connection.
  function forget(this: net.Socket): void {
    connections.delete(this);
  }

  const track = (socket: net.Socket): Connection => {
    let connection = connections.get(socket);
    if (connection === undefined) {
      connection = { responses: [], requests: 0, idleAt: -1 };
      connections.set(socket, connection);
      socket.on('close', forget);
      controller.track(socket);
    }
    return connection;
  };
  const closeAfter = (res: http.ServerResponse): void => {
    if (!res.headersSent && controller.shouldClose()) res.setHeader('connection', 'close');
  };
  const onRequestStart = (message: unknown): void => {
    const { server: from, socket, response } = message as RequestStart;
    if (from !== server) return;
    const connection = track(socket);
    connection.requests++;
    connection.responses.push(response);
    closeAfter(response);
  };
  const onResponseFinish = (message: unknown): void => {
    const { server: from, socket, response } = message as RequestStart;
    if (from !== server) return;
    const responses = connections.get(socket)?.responses;
    const index = responses?.indexOf(response) ?? -1;
    // The oldest, always in HTTP/1: shift() costs a fraction of what splice() does.
    if (index === 0) responses!.shift();
    else if (index > 0) responses!.splice(index, 1);
  };
  const onUpgrade = (req: http.IncomingMessage): void => void connections.delete(req.socket);
  const answerInFlight = (): void => {
    for (const { responses } of connections.values()) responses.forEach(closeAfter);
  };
  const closeIdle = (): void => {
    for (const [socket, connection] of connections) {
      if (connection.responses.length > 0) connection.idleAt = -1;
      else if (controller.overdue || (connection.idleAt === connection.requests && controller.shouldClose(socket))) socket.destroy();
      else connection.idleAt = connection.requests;
    }
  };

  diagnosticsChannel.subscribe(REQUEST_START, onRequestStart);
  diagnosticsChannel.subscribe(RESPONSE_FINISH, onResponseFinish);
  server.on('upgrade', onUpgrade);
  controller.on('start', answerInFlight);
  controller.on('deadline', answerInFlight);
  const stopChecking = checkWhileDraining(controller, checkMs, closeIdle);
  return {
    track,
    detach() {
      stopChecking();
      diagnosticsChannel.unsubscribe(REQUEST_START, onRequestStart);
      diagnosticsChannel.unsubscribe(RESPONSE_FINISH, onResponseFinish);
      server.off('upgrade', onUpgrade);
      controller.off('start', answerInFlight);
      controller.off('deadline', answerInFlight);
    },
  };
}

/**
 * Drains an http or https server as HTTP/1.1 expects: responses the
 * controller picks carry `Connection: close`, requests in flight finish,
 * idle keep-alive connections are closed. Attach before the server accepts:
 * a connection accepted earlier is followed from its next request.
 */
export function drainHttp(server: http.Server | https.Server, controller: DrainController, options: DrainAdapterOptions = {}): DrainAdapter {
  if (!((server as unknown) instanceof http.Server || (server as unknown) instanceof https.Server)) throw invalidArgument('server must be an http.Server or https.Server');
  checkController(controller);
  const http1 = followHttp1(server, controller, checkMsOf(options));
  const event = connectionEvent(server);
  server.on(event, http1.track);
  return {
    detach() {
      http1.detach();
      server.off(event, http1.track);
    },
  };
}
