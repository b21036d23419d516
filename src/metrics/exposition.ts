/**
 * The text exposition of metrics, in either of the two formats scrapers read:
 *
 *  - OpenMetrics 1.0 (`application/openmetrics-text; version=1.0.0`): per
 *    family `# TYPE`, `# UNIT` (when it has one), `# HELP`; counters are
 *    named without `_total` in the metadata and with it on the sample; info
 *    families end in `_info`; the exposition ends with `# EOF`.
 *  - Prometheus text 0.0.4 (`text/plain; version=0.0.4`): `# HELP` and
 *    `# TYPE` named like the samples (`_total` included), no UNIT lines, info
 *    families as gauges, no `# EOF`, so it can be appended to another
 *    registry's output (prom-client's, for one).
 *
 * Samples of a family are written together and families never interleave
 * (the specification forbids both). Label values are escaped (`\\`, `\"`,
 * `\n`); histogram `le` values use the canonical rendering the OpenMetrics
 * specification asks for (Go's %g with ".0" added to bare integers), so
 * `le="0.001"`, `le="1e-05"` and `le="1.0"` are stable across versions.
 *
 * Called by ./collect.ts; knows nothing about CubbyDB.
 */

import type { Histogram } from './histogram'

/** The text formats metrics() writes: OpenMetrics 1.0 (default) or Prometheus text 0.0.4. */
export type MetricsFormat = 'openmetrics' | 'prometheus'

/** The HTTP Content-Type of each format, for a `/metrics` handler. */
export const METRICS_CONTENT_TYPES: Readonly<Record<MetricsFormat, string>> = Object.freeze({
  openmetrics: 'application/openmetrics-text; version=1.0.0; charset=utf-8',
  prometheus: 'text/plain; version=0.0.4; charset=utf-8',
})

export type FamilyType = 'counter' | 'gauge' | 'histogram' | 'info'

/** Label name syntax shared by both formats. */
export const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

/** A label value escaped for either format. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

/** `name="value",…` for the pairs given, values escaped (no braces). */
export function renderLabels(pairs: Readonly<Record<string, string>>): string {
  return Object.entries(pairs)
    .map(([name, value]) => `${name}="${escapeLabelValue(value)}"`)
    .join(',')
}

/** A sample value: integers without a decimal point, infinities as ±Inf. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN'
  if (value === Infinity) return '+Inf'
  if (value === -Infinity) return '-Inf'
  return String(value)
}

/** The canonical rendering of an `le` bound: Go's %g, with ".0" appended when it has neither point nor exponent. */
export function canonicalBound(value: number): string {
  if (value === Infinity) return '+Inf'
  if (value === 0) return '0.0'
  const [mantissa, exponentText] = value.toExponential().split('e') as [string, string]
  const exponent = Number(exponentText)
  if (exponent < -4 || exponent >= 6) {
    const magnitude = String(Math.abs(exponent)).padStart(2, '0')
    return `${mantissa}e${exponent < 0 ? '-' : '+'}${magnitude}`
  }
  const plain = String(value)
  return plain.includes('.') ? plain : `${plain}.0`
}

export class Exposition {
  private readonly lines: string[] = []
  private readonly seen = new Set<string>()

  /** `constantLabels`: rendered pairs (see renderLabels) added to every sample, or ''. */
  constructor(
    private readonly format: MetricsFormat,
    private readonly constantLabels: string,
  ) {}

  /**
   * Starts a family. `name` is the family's name as OpenMetrics has it: no
   * `_total` or `_info`; when `unit` is given the name ends in `_<unit>`.
   */
  family(name: string, type: FamilyType, help: string, unit?: string): void {
    if (this.seen.has(name)) throw new Error(`metric family ${name} written twice`)
    if (unit !== undefined && !name.endsWith(`_${unit}`)) throw new Error(`metric family ${name} must end in _${unit}`)
    this.seen.add(name)
    const escapedHelp = help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
    if (this.format === 'openmetrics') {
      this.lines.push(`# TYPE ${name} ${type}`)
      if (unit !== undefined) this.lines.push(`# UNIT ${name} ${unit}`)
      this.lines.push(`# HELP ${name} ${escapedHelp}`)
    } else {
      const sampleName = type === 'counter' ? `${name}_total` : type === 'info' ? `${name}_info` : name
      this.lines.push(`# HELP ${sampleName} ${escapedHelp}`)
      this.lines.push(`# TYPE ${sampleName} ${type === 'info' ? 'gauge' : type}`)
    }
  }

  /** One sample line: `name{labels} value`, with the constant labels first. */
  sample(name: string, labels: string, value: number): void {
    const all = this.constantLabels === '' ? labels : labels === '' ? this.constantLabels : `${this.constantLabels},${labels}`
    this.lines.push(`${name}${all === '' ? '' : `{${all}}`} ${formatValue(value)}`)
  }

  /** A family of one gauge sample. */
  gauge(name: string, help: string, value: number, unit?: string): void {
    this.family(name, 'gauge', help, unit)
    this.sample(name, '', value)
  }

  /** A family of one counter sample (`name_total`). */
  counter(name: string, help: string, value: number, unit?: string): void {
    this.family(name, 'counter', help, unit)
    this.sample(`${name}_total`, '', value)
  }

  /**
   * The samples of one histogram metric: cumulative `_bucket`s up to `+Inf`,
   * `_count` and `_sum`. `labels` are the metric's own (before `le`).
   */
  histogram(name: string, labels: string, histogram: Histogram): void {
    const prefix = labels === '' ? '' : `${labels},`
    let cumulative = 0
    for (let index = 0; index < histogram.counts.length; index++) {
      cumulative += histogram.counts[index]!
      const bound = index < histogram.bounds.length ? canonicalBound(histogram.bounds[index]!) : '+Inf'
      this.sample(`${name}_bucket`, `${prefix}le="${bound}"`, cumulative)
    }
    this.sample(`${name}_count`, labels, cumulative)
    this.sample(`${name}_sum`, labels, histogram.sum)
  }

  /** The finished exposition, newline-terminated (with `# EOF` in OpenMetrics). */
  text(): string {
    if (this.format === 'openmetrics') return `${this.lines.join('\n')}\n# EOF\n`
    return `${this.lines.join('\n')}\n`
  }
}
