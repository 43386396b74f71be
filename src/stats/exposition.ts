// Prometheus text exposition format 0.0.4 of a view: HELP and TYPE lines,
// then the samples; histograms as cumulative `_bucket{le=...}` series with
// `_sum` and `_count`.

import type { MetricFamily } from './families';

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export function renderPrometheus(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const { definition: d, series } of families) {
    lines.push(`# HELP ${d.name} ${escapeHelp(d.help)}`, `# TYPE ${d.name} ${d.type}`);
    for (const { labels, values } of series) {
      const pairs = d.labelNames.map((name, i) => `${name}="${escapeLabelValue(labels[i]!)}"`);
      if (d.type !== 'histogram') {
        lines.push(sample(d.name, pairs, values[0]!));
        continue;
      }
      let count = 0;
      d.buckets.forEach((bound, i) => lines.push(sample(`${d.name}_bucket`, [...pairs, `le="${formatNumber(bound)}"`], (count += values[i]!))));
      count += values[d.buckets.length]!;
      lines.push(
        sample(`${d.name}_bucket`, [...pairs, 'le="+Inf"'], count),
        sample(`${d.name}_sum`, pairs, values[d.buckets.length + 1]!),
        sample(`${d.name}_count`, pairs, count),
      );
    }
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

function sample(name: string, pairs: readonly string[], value: number): string {
  return `${name}${pairs.length > 0 ? `{${pairs.join(',')}}` : ''} ${formatNumber(value)}`;
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function escapeLabelValue(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}
