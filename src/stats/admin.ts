// The admin listener's request handler: GET /metrics answers the
// process-wide view in Prometheus text format, with any prom-client
// registries appended. Plain (req, res), so it fits http.createServer or an
// existing router.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { invalidArgument } from '../errors';
import { PROMETHEUS_CONTENT_TYPE, renderPrometheus } from './exposition';
import { checkPromClientRegistry, promClientText, type PromClientRegistry } from './prom-client';
import { StatsRegistry } from './registry';

/** metricsHandler()'s options. */
export interface MetricsHandlerOptions {
  /** prom-client registries whose metrics are appended (a name baton exposes is left out of theirs). */
  promClient?: readonly PromClientRegistry[];
  /** Default `/metrics`. */
  path?: string;
}

/**
 * A request handler for an http server or router of the application's own:
 * GET `path` answers `registry`'s process-wide view (generation.stats) in
 * Prometheus text, prom-client registries appended; other paths 404. The
 * admin listener (serve({ admin })) answers /metrics with it.
 */
export function metricsHandler(registry: StatsRegistry, options: MetricsHandlerOptions = {}): (req: IncomingMessage, res: ServerResponse) => void {
  if (!(registry instanceof StatsRegistry)) throw invalidArgument('registry must be the main thread\'s StatsRegistry');
  const { promClient = [], path = '/metrics' } = options;
  if (!Array.isArray(promClient)) throw invalidArgument('promClient must be an array of prom-client registries');
  promClient.forEach(checkPromClientRegistry);
  if (typeof path !== 'string' || !path.startsWith('/')) throw invalidArgument('path must start with /');

  const render = async (): Promise<string> => {
    const families = registry.collect();
    const taken = new Set(families.map((f) => f.definition.name));
    const theirs = await Promise.all(promClient.map((r) => promClientText(r, taken)));
    return renderPrometheus(families) + theirs.join('');
  };

  return (req, res) => {
    // The path as sent, without its query: `new URL()` would throw on a target such as `http://[`.
    if ((req.url ?? '/').split('?', 1)[0] !== path) return reply(res, 404, 'not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return reply(res, 405, 'method not allowed\n');
    }
    render().then(
      (text) => reply(res, 200, text, PROMETHEUS_CONTENT_TYPE, req.method === 'HEAD'),
      (error: Error) => reply(res, 500, `collecting metrics failed: ${error.message}\n`),
    );
  };
}

function reply(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8', headOnly = false): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(headOnly ? undefined : body);
}
