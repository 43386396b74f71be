// The admin listener of a generation: GET /metrics, served from the main
// thread on the socket handed over like any other (one socket, index 0), so
// no scrape is lost at a restart. It follows the generation as the worker
// pool does: serve, stop (unless kept), retire, close.

import * as http from 'node:http';
import { stopListening } from '../drain/adapter';
import type { ListenerSet, SocketEntry } from '../listeners/listener-set';
import type { Listener } from '../listeners/spec';

export class AdminListener {
  private readonly servers = new Map<SocketEntry, http.Server>();
  private stopped = false;

  constructor(
    private readonly sockets: ListenerSet,
    private readonly handler: http.RequestListener,
    private readonly epoch: number,
    /** An error of the admin server (accepting, listening) is reported, never thrown at the process. */
    private readonly warn: (message: string) => void,
  ) {}

  /** Accepts on every admin socket not accepted on yet. */
  serve(): void {
    this.stopped = false;
    for (const entry of this.sockets.entries()) {
      if (entry.listener.role !== 'admin') continue;
      let server = this.servers.get(entry);
      if (!server) {
        server = http.createServer((req, res) => this.answer(req, res));
        server.on('error', (error) => this.warn(`admin listener ${entry.listener.name}: ${error.message}`));
        this.servers.set(entry, server);
      }
      if (!server.listening) server.listen({ fd: this.sockets.dup(entry.listener.index, entry.index) }, entry.listener.backlog);
    }
  }

  /** Stops accepting (requests in flight finish), except on a listener kept by a child that dropped it. */
  stop(keep: Listener[] = []): void {
    this.stopped = true;
    for (const [entry, server] of this.servers) if (!keep.includes(entry.listener)) stopListening(server);
  }

  retire(entry: SocketEntry): void {
    const server = this.servers.get(entry);
    if (server) stopListening(server); // its kept-alive connections are the drain's to close
    this.servers.delete(entry);
  }

  close(): void {
    for (const server of this.servers.values()) {
      server.close();
      server.closeAllConnections();
    }
    this.servers.clear();
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
