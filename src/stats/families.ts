// A table of metric families and their series' values, keyed by metric name
// and label values: the process-wide view is summed into one, and the values
// kept apart (folded from retired worker threads, inherited from the parent,
// the parent's gauges) are each one too.

import { compatible, slotsOf, type MetricDefinition } from './definition';

export interface SeriesValues {
  readonly labels: readonly string[];
  /** One value; a histogram's are its bucket counts (not cumulative, +Inf last) then its sum. */
  readonly values: number[];
}

export interface MetricFamily {
  readonly definition: MetricDefinition;
  readonly series: readonly SeriesValues[];
}

interface Family {
  definition: MetricDefinition;
  series: Map<string, SeriesValues>;
}

export class FamilyTable {
  private readonly families = new Map<string, Family>();

  /** Makes the family known even without series; false when the name has an incompatible definition here. */
  declare(definition: MetricDefinition): boolean {
    const family = this.families.get(definition.name);
    if (!family) this.families.set(definition.name, { definition, series: new Map() });
    return !family || compatible(family.definition, definition);
  }

  /** Adds `values` to the series; false, adding nothing, when the name has an incompatible definition here. */
  add(definition: MetricDefinition, labels: readonly string[], values: ArrayLike<number>): boolean {
    const series = this.series(definition, labels);
    if (!series) return false;
    for (let i = 0; i < series.values.length; i++) series.values[i]! += values[i]!;
    return true;
  }

  /**
   * Keeps the larger of each value: a counter or bucket count that arrives
   * again, or late, never lowers what is known. A histogram's sum, which
   * may go down with negative observations, takes the new value.
   */
  raise(definition: MetricDefinition, labels: readonly string[], values: ArrayLike<number>): boolean {
    const series = this.series(definition, labels);
    if (!series) return false;
    const last = series.values.length - 1;
    for (let i = 0; i < series.values.length; i++) {
      series.values[i] = definition.type === 'histogram' && i === last ? values[i]! : Math.max(series.values[i]!, values[i]!);
    }
    return true;
  }

  definition(name: string): MetricDefinition | undefined {
    return this.families.get(name)?.definition;
  }

  /** The values of every series of `name`. */
  seriesOf(name: string): readonly SeriesValues[] {
    return [...(this.families.get(name)?.series.values() ?? [])];
  }

  /** Every family, by name. */
  list(): MetricFamily[] {
    return [...this.families.values()]
      .sort((a, b) => (a.definition.name < b.definition.name ? -1 : 1))
      .map((f) => ({ definition: f.definition, series: [...f.series.values()] }));
  }

  private series(definition: MetricDefinition, labels: readonly string[]): SeriesValues | undefined {
    if (!this.declare(definition)) return undefined;
    const family = this.families.get(definition.name)!;
    const key = JSON.stringify(labels);
    let series = family.series.get(key);
    if (!series) {
      series = { labels, values: new Array<number>(slotsOf(definition)).fill(0) };
      family.series.set(key, series);
    }
    return series;
  }
}
