// Drains a raw net (or tls) server. Only the application knows where one
// exchange ends, so it says so: exchangeDone(socket) ends the connection if
// the controller decides it should close. At the deadline every connection
// still open is ended (a FIN: the peer reads what was sent, then sees the
// end).

import * as net from 'node:net';
import { invalidArgument } from '../errors';
import { checkController, connectionEvent, type DrainAdapter } from './adapter';
import type { DrainController } from './controller';

/** What drainNet() returns: the application says where each exchange ends. */
export interface NetDrainAdapter extends DrainAdapter {
  /** Call after answering one exchange on `socket`; ends it and answers true if it should close now. */
  exchangeDone(socket: net.Socket): boolean;
}

/**
 * Drains a net or tls server: call exchangeDone(socket) after each answer,
 * which ends the connection when the controller picks it; at the deadline
 * every connection still open is ended. Attach before the server accepts:
 * connections accepted earlier are not tracked.
 */
export function drainNet(server: net.Server, controller: DrainController): NetDrainAdapter {
  if (!(server instanceof net.Server)) throw invalidArgument('server must be a net.Server');
  checkController(controller);
  const sockets = new Set<net.Socket>();

  const onConnection = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    controller.track(socket);
  };
  const endAll = (): void => sockets.forEach((socket) => socket.end());

  const event = connectionEvent(server);
  server.on(event, onConnection);
  controller.on('deadline', endAll);
  return {
    exchangeDone(socket) {
      if (!(socket instanceof net.Socket)) throw invalidArgument('socket must be a net.Socket');
      if (!controller.shouldClose()) return false;
      socket.end();
      return true;
    },
    detach() {
      server.off(event, onConnection);
      controller.off('deadline', endAll);
    },
  };
}
