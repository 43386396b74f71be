// prom-client registries on baton's exposition. Baton's own metrics are the
// ones summed over worker threads and carried across generations; a
// prom-client Registry lives in one thread of one process, so what it is
// good for here is what is per process anyway (collectDefaultMetrics: CPU,
// memory, event loop lag) and metrics an application already has. Its text
// is appended to baton's, so one scrape of the admin listener sees both.
// prom-client is not a dependency: anything with its Registry's shape fits.

import { invalidArgument } from '../errors';
import { PROMETHEUS_CONTENT_TYPE } from './exposition';

/** What baton uses of a prom-client `Registry`. */
export interface PromClientRegistry {
  metrics(): Promise<string>;
  readonly contentType: string;
}

export function checkPromClientRegistry(registry: PromClientRegistry): PromClientRegistry {
  if (typeof registry !== 'object' || registry === null || typeof registry.metrics !== 'function') {
    throw invalidArgument('expected a prom-client Registry (an object with metrics())');
  }
  if (registry.contentType !== PROMETHEUS_CONTENT_TYPE) {
    throw invalidArgument(`the prom-client Registry must use Prometheus text format 0.0.4 (Registry.PROMETHEUS_CONTENT_TYPE), not ${registry.contentType}`);
  }
  return registry;
}

/**
 * The registry's exposition without the families named in `taken`: a name
 * exposed twice would make the whole scrape invalid, and baton's series of
 * a name are the process-wide ones.
 */
export async function promClientText(registry: PromClientRegistry, taken: ReadonlySet<string>): Promise<string> {
  const kept: string[] = [];
  let family = '';
  for (const line of (await registry.metrics()).split('\n')) {
    const meta = /^# (?:HELP|TYPE) (\S+)/.exec(line);
    if (meta) family = meta[1]!;
    if (line !== '' && !taken.has(family)) kept.push(line);
  }
  return kept.length === 0 ? '' : `${kept.join('\n')}\n`;
}
