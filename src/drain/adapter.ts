// What every drain adapter shares: the handle it returns, its options, and
// the periodic check of open connections while a drain lasts.

import * as tls from 'node:tls';
import * as net from 'node:net';
import { invalidArgument } from '../errors';
import { integerIn } from '../validate';
import { DrainController } from './controller';

/** What a drain adapter (drainHttp, drainHttp2, drainDgram) returns. */
export interface DrainAdapter {
  /** Stops following the drain and the server (listeners removed, timers cleared). */
  detach(): void;
}

/** drainHttp()'s and drainHttp2()'s options. */
export interface DrainAdapterOptions {
  /** How often open connections are checked while draining, in ms. Default 1000. */
  checkMs?: number;
}

export function checkMsOf(options: DrainAdapterOptions): number {
  if (typeof options !== 'object' || options === null) throw invalidArgument('options must be an object');
  const { checkMs = 1000 } = options;
  return integerIn(checkMs, 'checkMs', 1, 60_000);
}

export function checkController(controller: DrainController): void {
  if (!(controller instanceof DrainController)) throw invalidArgument('controller must be a DrainController');
}

/** The event that hands over an accepted connection: the TLS socket once its handshake is done, for TLS servers. */
export function connectionEvent(server: net.Server): 'connection' | 'secureConnection' {
  return server instanceof tls.Server ? 'secureConnection' : 'connection';
}

/**
 * Stops accepting. Unlike http.Server.close(), idle keep-alive connections
 * stay open: closing them at once races clients that are reusing them
 * ("socket hang up"); the drain closes them the way HTTP expects.
 */
export function stopListening(server: net.Server): void {
  if (server.listening) net.Server.prototype.close.call(server);
}

/**
 * Runs `check` when the drain starts, every `checkMs` while it lasts, and
 * at its deadline; returns what undoes it.
 */
export function checkWhileDraining(controller: DrainController, checkMs: number, check: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  const begin = (): void => {
    check();
    timer = setInterval(check, checkMs).unref();
  };
  const end = (): void => clearInterval(timer);
  controller.on('start', begin);
  controller.on('deadline', check);
  controller.on('stop', end);
  if (controller.draining) begin();
  return () => {
    end();
    controller.off('start', begin);
    controller.off('deadline', check);
    controller.off('stop', end);
  };
}
