// The admin listener of a generation: GET /metrics, served from the main
// thread on the socket handed over like any other (one socket, index 0), so
// no scrape is lost at a restart. A main-thread server like any other, which
// answers 503 once its generation stopped accepting.

import * as http from 'node:http';
import type { ListenerSet, SocketEntry } from '../listeners/listener-set';
import type { Listener } from '../listeners/spec';
import type { Follower } from './follower';
import { MainThreadServer } from './main-thread-server';

export class AdminListener implements Follower {
  private readonly server: MainThreadServer;
  private stopped = false;

  constructor(
    sockets: ListenerSet,
    private readonly handler: http.RequestListener,
    private readonly epoch: number,
    /** An error of the admin server (accepting, listening) is reported, never thrown at the process. */
    warn: (message: string) => void,
  ) {
    const admin = sockets.listeners.find((l) => l.role === 'admin')!;
    const target = http.createServer((req, res) => this.answer(req, res));
    target.on('error', (error) => warn(`admin listener ${admin.name}: ${error.message}`));
    this.server = new MainThreadServer(sockets, target, { listener: admin.name }, (message) => warn(`admin listener ${message}`));
  }

  /** Accepts on the admin socket. */
  resumeAccepting(): void {
    this.stopped = false;
    this.server.resumeAccepting();
  }

  /** Stops accepting (requests in flight finish), except on a listener kept by a child that dropped it. */
  stopAccepting(keep: readonly Listener[]): void {
    this.stopped = true;
    this.server.stopAccepting(keep);
  }

  retire(entry: SocketEntry): void {
    this.server.retire(entry);
  }

  terminate(): void {
    this.server.terminate();
  }

  /**
   * Once our child serves, a scrape that reaches us on a kept-alive
   * connection gets 503 and the connection closes: answering it with our
   * view, which lacks the child's counts, would show counters going back.
   */
  private answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (!this.stopped) return void this.handler(req, res);
    res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', connection: 'close', 'retry-after': '0' });
    res.end(`generation ${this.epoch} is draining: the next one serves the metrics, ask again\n`);
  }
}
