/**
 * How `cubby` prints: numbers and sizes for people, aligned label/value
 * tables, JSON for scripts, and a progress bar for long work.
 *
 * Results go to stdout, messages and progress to stderr. The progress bar is
 * drawn only when stderr is a terminal, redrawn at most ten times a second
 * (checked against the clock on each update; no timer keeps the process
 * alive), and erased when the work ends, so pipes and logs never see it.
 */

export function formatCount(value: number): string {
  return value.toLocaleString('en-US')
}

/** 1 key, 2 keys, 1,000 pairs. */
export function plural(count: number, noun: string): string {
  return `${formatCount(count)} ${noun}${count === 1 ? '' : 's'}`
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']

/** 0 B, 512 B, 4.0 KiB, 1.5 MiB, 118 GiB. */
export function formatBytes(bytes: number): string {
  let value = bytes
  let unit = 0
  while (Math.abs(value) >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024
    unit++
  }
  if (unit === 0) return `${value} B`
  return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)} ${BYTE_UNITS[unit]}`
}

/** 10.4×, 1.00×, 0.37×. */
export function formatRatio(value: number): string {
  return `${value >= 10 ? value.toFixed(1) : value.toFixed(2)}×`
}

/** A fraction as a percentage: 0.0123 → 1.23%. */
export function formatPercent(fraction: number): string {
  const percent = fraction * 100
  if (percent === 0) return '0%'
  if (percent < 0.01) return `${percent.toExponential(1)}%`
  return `${percent < 10 ? percent.toFixed(2) : percent.toFixed(1)}%`
}

/** Rows of `label  value`, labels padded to one column. */
export function formatTable(rows: ReadonlyArray<readonly [string, string]>, indent = '  '): string {
  const width = Math.max(...rows.map(([label]) => label.length))
  return rows.map(([label, value]) => `${indent}${label.padEnd(width)}  ${value}`).join('\n')
}

/** Pretty JSON, newline-terminated. */
export function formatJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`
}

/** What a progress bar counts: pairs, bytes, or steps of some work (no noun). */
export type ProgressUnit = 'pairs' | 'bytes' | 'steps'

/** One line of the progress bar for `done` of `total` (total 0: unknown) after `elapsedMs`, fitted to `columns`. */
export function renderProgress(label: string, done: number, total: number, unit: ProgressUnit, elapsedMs: number, columns: number): string {
  const amount = (value: number): string => (unit === 'bytes' ? formatBytes(value) : formatCount(value))
  const rate = elapsedMs > 0 ? (done * 1000) / elapsedMs : 0
  const noun = unit === 'pairs' ? ' pairs' : ''
  const rateText = unit === 'bytes' ? `${formatBytes(rate)}/s` : `${formatCount(Math.round(rate))}${noun}/s`
  const known = total > 0
  const fraction = known ? Math.min(1, done / total) : 0
  const counts = known ? `${amount(done)} of ${amount(total)}${noun}` : `${amount(done)}${noun}`
  let eta = ''
  if (known && rate > 0 && done < total) eta = `  ETA ${formatDuration(((total - done) / rate) * 1000)}`
  const tail = `${known ? ` ${(fraction * 100).toFixed(0).padStart(3)}%` : ''}  ${counts}  ${rateText}${eta}`
  const barWidth = Math.max(0, Math.min(30, columns - label.length - tail.length - 4))
  const bar = known && barWidth >= 10 ? ` [${'#'.repeat(Math.round(fraction * barWidth)).padEnd(barWidth, '.')}]` : ''
  return `${label}${bar}${tail}`.slice(0, Math.max(1, columns - 1))
}

/** 45s, 3m 12s, 2h 05m. */
export function formatDuration(milliseconds: number): string {
  const seconds = Math.round(milliseconds / 1000)
  if (seconds < 60) return `${seconds}s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes}m ${String(seconds % 60).padStart(2, '0')}s`
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, '0')}m`
}

const REDRAW_INTERVAL_MS = 100

/** A progress bar on a terminal; every method does nothing when the stream is not one. */
export class Progress {
  private readonly startedMs = Date.now()
  private lastDrawMs = 0
  private drawn = false

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly label: string,
    private readonly unit: ProgressUnit,
  ) {}

  private get active(): boolean {
    return this.stream.isTTY === true
  }

  update(done: number, total: number): void {
    if (!this.active) return
    const now = Date.now()
    if (now - this.lastDrawMs < REDRAW_INTERVAL_MS) return
    this.lastDrawMs = now
    this.stream.write(`\r\x1b[K${renderProgress(this.label, done, total, this.unit, now - this.startedMs, this.stream.columns > 0 ? this.stream.columns : 80)}`)
    this.drawn = true
  }

  /** Erases the bar. */
  finish(): void {
    if (this.drawn) this.stream.write('\r\x1b[K')
    this.drawn = false
  }
}
