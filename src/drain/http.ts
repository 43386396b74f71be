// Drains an http or https server the way HTTP/1.1 expects: a response the
// controller decides on carries `Connection: close` (Node then closes the
// connection once it is sent), requests in flight finish, and keep-alive
// connections that stay idle are closed. The decision is taken when a
// request arrives, and again for unanswered requests when the drain starts
// and at its deadline. An idle connection is asked at every check (keeping
// its draw, see DrainController.shouldClose) and closed only after a whole
// check interval without a request, so a client that just got an answer
// and sends its next request is not cut off; one that sends exactly as the
// server closes can still race it (HTTP/1.1 leaves retrying to the client).
// Upgraded connections (WebSocket) belong to the application.

import * as http from 'node:http';
import * as https from 'node:https';
import type * as net from 'node:net';
import { invalidArgument } from '../errors';
import { checkController, checkMsOf, checkWhileDraining, connectionEvent, type DrainAdapter, type DrainAdapterOptions } from './adapter';
import type { DrainController } from './controller';

interface Connection {
  /** Responses not finished yet. */
  responses: Set<http.ServerResponse>;
  requests: number;
  /** The request count when a check last found the connection idle; -1 if it was busy. */
  idleAt: number;
}

/** Attach before the server accepts: connections accepted earlier are not tracked. */
export function drainHttp(server: http.Server | https.Server, controller: DrainController, options: DrainAdapterOptions = {}): DrainAdapter {
  if (!((server as unknown) instanceof http.Server || (server as unknown) instanceof https.Server)) throw invalidArgument('server must be an http.Server or https.Server');
  checkController(controller);
  const checkMs = checkMsOf(options);
  const connections = new Map<net.Socket, Connection>();

  const closeAfter = (res: http.ServerResponse): void => {
    if (!res.headersSent && controller.shouldClose()) res.setHeader('connection', 'close');
  };
  const onConnection = (socket: net.Socket): void => {
    connections.set(socket, { responses: new Set(), requests: 0, idleAt: -1 });
    socket.once('close', () => connections.delete(socket));
    controller.track(socket);
  };
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const connection = connections.get(req.socket);
    if (connection) {
      connection.requests++;
      connection.responses.add(res);
      res.once('close', () => connection.responses.delete(res));
    }
    closeAfter(res);
  };
  const onUpgrade = (req: http.IncomingMessage): void => void connections.delete(req.socket);
  const answerInFlight = (): void => {
    for (const { responses } of connections.values()) responses.forEach(closeAfter);
  };
  const closeIdle = (): void => {
    for (const [socket, connection] of connections) {
      if (connection.responses.size > 0) connection.idleAt = -1;
      else if (connection.idleAt === connection.requests && controller.shouldClose(socket)) socket.destroy();
      else connection.idleAt = connection.requests;
    }
  };

  const event = connectionEvent(server);
  server.on(event, onConnection);
  server.prependListener('request', onRequest);
  server.on('upgrade', onUpgrade);
  controller.on('start', answerInFlight);
  controller.on('deadline', answerInFlight);
  const stopChecking = checkWhileDraining(controller, checkMs, closeIdle);
  return {
    detach() {
      stopChecking();
      server.off(event, onConnection);
      server.off('request', onRequest);
      server.off('upgrade', onUpgrade);
      controller.off('start', answerInFlight);
      controller.off('deadline', answerInFlight);
    },
  };
}
