// Drains a dgram socket. UDP has no connections to close, so the drain
// counts none for it; at the deadline the socket stops reading (it is
// closed), so that every datagram goes to the next generation, which holds
// the same kernel socket. A generation that serves again after that (its
// child went away) needs a new dgram socket on its fd: a closed one cannot
// bind again.

import * as dgram from 'node:dgram';
import { invalidArgument } from '../errors';
import { checkController, type DrainAdapter } from './adapter';
import type { DrainController } from './controller';

/**
 * Drains a dgram socket: UDP has no connections, so it serves on until the
 * deadline, then closes (stops reading), and every datagram goes to the
 * next generation, which holds the same kernel socket.
 */
export function drainDgram(socket: dgram.Socket, controller: DrainController): DrainAdapter {
  if (!(socket instanceof dgram.Socket)) throw invalidArgument('socket must be a dgram.Socket');
  checkController(controller);
  let closed = false;
  const onClose = (): void => void (closed = true);
  const stopReading = (): void => {
    if (!closed) socket.close();
  };
  socket.once('close', onClose);
  controller.on('deadline', stopReading);
  return {
    detach() {
      socket.off('close', onClose);
      controller.off('deadline', stopReading);
    },
  };
}
