// The restarts the bench runs under load: baton's, then each alternative's,
// with the worker count changing the same way. A scenario's key names its
// figures (restart.<key>.lost ...); baton's rows name the alternative they
// are compared to.

import { coldRestart, clusterRolling } from '../alternatives/cluster.mjs';
import { haproxy } from '../alternatives/haproxy.mjs';
import { nginx } from '../alternatives/nginx.mjs';
import { pm2 } from '../alternatives/pm2.mjs';
import { baton } from '../servers/baton.mjs';

const DIRECTIONS = [
  { direction: 'decrease', from: 4, to: 2, baseline: 'decrease.envoy-like' },
  { direction: 'increase', from: 2, to: 4, baseline: 'increase.cluster' },
];

const ALTERNATIVES = { cold: coldRestart, cluster: clusterRolling, nginx, haproxy, pm2 };

/** In run order; --quick keeps the decrease, where restarts lose connections. */
export function scenarios({ quick }) {
  return DIRECTIONS.filter(({ direction }) => !quick || direction === 'decrease').flatMap(({ direction, from, to, baseline }) => [
    { key: direction, name: `baton ${from}->${to}`, server: baton, from, to, ours: true, baseline },
    ...(direction === 'decrease'
      ? [{ key: `${direction}.envoy-like`, name: `baton --surplus-sockets close ${from}->${to} (Envoy-like)`, server: baton, flags: ['--surplus-sockets', 'close'], from, to }]
      : []),
    ...Object.entries(ALTERNATIVES).map(([key, server]) => ({ key: `${direction}.${key}`, name: `${server.name} ${from}->${to}`, server, from, to })),
  ]);
}

/** The keep-alive population's servers: baton (figures restart.keepalive.*), then each reload it is compared to. */
export function keepAliveScenarios() {
  const reloads = { nginx, haproxy, cluster: clusterRolling, pm2 };
  return [
    { key: 'baton', name: 'baton', server: baton, ours: true, baseline: 'nginx' },
    ...Object.entries(reloads).map(([key, server]) => ({ key, name: server.name, server })),
  ];
}
