// What the bench measured, as a table on stdout and as JSON: every figure
// under a dotted name, with its unit, the alternative it is compared to and,
// where the project set one, its target and whether this run met it.

export class Results {
  entries = [];

  /**
   * `baseline` names another figure; its value is looked up when the results
   * are written, so a figure may name one measured later in the run.
   * `target` is { text, met }.
   */
  add(name, value, unit, { baseline, target } = {}) {
    this.entries.push({ name, value, unit, baseline, target });
  }

  valueOf(name) {
    return this.entries.find((e) => e.name === name)?.value;
  }

  toJSON() {
    return this.entries.map(({ name, value, unit, baseline, target }) => ({
      name,
      value: significant(value),
      unit,
      baseline: baseline === undefined ? null : { name: baseline, value: significant(this.valueOf(baseline)) },
      ...(target ? { target } : {}),
    }));
  }
}

/** Six significant digits are more than any figure here can claim. */
const significant = (value) => (value === undefined ? null : Number(value.toPrecision(6)));

/** 3 significant digits, thousands separated: 1,234,567 / 12.3 / 0.0123. */
export function formatNumber(value) {
  if (value === undefined || value === null) return '-';
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 100 || Number.isInteger(value)) return Math.round(value).toLocaleString('en-US');
  return value.toPrecision(3);
}

/** How many times better `value` is than `baseline`: higher is better for rates, lower for times and counts. */
export function timesBetter(value, unit, baseline) {
  if (!baseline || !value) return undefined;
  return unit.endsWith('/s') ? value / baseline : baseline / value;
}

export function targetText(target) {
  return target ? `${target.met ? 'met' : 'MISSED'}: ${target.text}` : '';
}

/** A plain-text table: a title, a header row and right-aligned figures. */
export function printTable(title, headers, rows) {
  const cells = [headers, ...rows].map((row) => row.map((cell) => String(cell ?? '')));
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => row[i].length)));
  const line = (row) => row.map((cell, i) => (i === 0 || i === row.length - 1 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ').trimEnd();
  console.log(`\n${title}\n${line(cells[0])}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const row of cells.slice(1)) console.log(line(row));
}

/** Figures added from index `since` on (one section's), each beside its baseline. */
export function printFigures(title, results, since) {
  const rows = results.entries
    .slice(since)
    .map((e) => {
      const base = e.baseline === undefined ? undefined : results.valueOf(e.baseline);
      const better = timesBetter(e.value, e.unit, base);
      return [
        e.name,
        formatNumber(e.value),
        e.unit,
        e.baseline ? `${e.baseline} ${formatNumber(base)}` : '',
        better === undefined ? '' : `${better.toFixed(1)}x`,
        targetText(e.target),
      ];
    });
  printTable(title, ['figure', 'value', 'unit', 'baseline', 'vs baseline', 'target'], rows);
}
