// benchmark.js, promised: runs cases in turn and resolves with each one's
// rate and its relative margin of error.

import Benchmark from 'benchmark';

/**
 * `cases`: [{ name, fn, defer }] (a deferred fn gets a Deferred to resolve).
 * Resolves with { [name]: { hz, rme, samples } }; rejects if a case throws.
 */
export function runSuite(cases, { maxTime }) {
  return new Promise((resolve, reject) => {
    const suite = new Benchmark.Suite();
    for (const { name, fn, defer = false } of cases) suite.add(name, fn, { defer, maxTime, minSamples: 5 });
    const measured = {};
    suite.on('cycle', ({ target }) => {
      measured[target.name] = { hz: target.hz, rme: target.stats.rme, samples: target.stats.sample.length };
    });
    suite.on('error', ({ target }) => reject(target.error));
    suite.on('complete', () => resolve(measured));
    suite.run({ async: true });
  });
}
