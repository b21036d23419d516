/**
 * Hand-written SVG charts for the results: a grouped bar chart (throughput
 * per workload per engine) and a line chart (memory against key count).
 *
 * Both take plain series of numbers; a missing value (null) draws nothing,
 * so a skipped engine leaves a visible gap rather than a zero. Axes start at
 * zero and end at a "nice" round number above the largest value.
 */

export interface BarSeries {
  name: string
  values: ReadonlyArray<number | null>
  /** Index into the palette, so an engine keeps its colour across charts. */
  colorIndex?: number
}

export interface LineSeries {
  name: string
  points: ReadonlyArray<readonly [number, number]>
  colorIndex?: number
}

const palette = ['#1b6ca8', '#5fa8d3', '#d1495b', '#edae49', '#66a182', '#8d6a9f', '#6c757d']

function colorOf(series: { colorIndex?: number }, position: number): string {
  return palette[(series.colorIndex ?? position) % palette.length] as string
}
const font = 'font-family="Helvetica, Arial, sans-serif"'

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** A round axis maximum >= value: 1, 2, 2.5 or 5 times a power of ten. */
export function niceCeiling(value: number): number {
  if (!(value > 0)) return 1
  const power = Math.pow(10, Math.floor(Math.log10(value)))
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= value) return step * power
  }
  return 10 * power
}

/** Short tick labels: 1500 → "1.5k", 2000000 → "2M". */
export function shortNumber(value: number): string {
  const units: Array<[number, string]> = [
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ]
  for (const [size, suffix] of units) {
    if (Math.abs(value) >= size) return `${Number((value / size).toPrecision(3))}${suffix}`
  }
  return `${Number(value.toPrecision(3))}`
}

interface Frame {
  width: number
  height: number
  left: number
  right: number
  top: number
  bottom: number
}

function header(frame: Frame, title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${frame.width}" height="${frame.height}" viewBox="0 0 ${frame.width} ${frame.height}">`,
    `<rect width="${frame.width}" height="${frame.height}" fill="#ffffff"/>`,
    `<text x="${frame.width / 2}" y="22" text-anchor="middle" font-size="15" ${font}>${escapeXml(title)}</text>`,
  ]
}

function yAxis(frame: Frame, maximum: number, label: string): string[] {
  const parts: string[] = []
  const plotHeight = frame.height - frame.top - frame.bottom
  for (let tick = 0; tick <= 5; tick++) {
    const value = (maximum * tick) / 5
    const y = frame.height - frame.bottom - (plotHeight * tick) / 5
    parts.push(`<line x1="${frame.left}" x2="${frame.width - frame.right}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`)
    parts.push(`<text x="${frame.left - 6}" y="${y + 4}" text-anchor="end" font-size="11" ${font}>${shortNumber(value)}</text>`)
  }
  const middle = frame.top + plotHeight / 2
  parts.push(`<text x="16" y="${middle}" text-anchor="middle" font-size="12" transform="rotate(-90 16 ${middle})" ${font}>${escapeXml(label)}</text>`)
  return parts
}

const legendItemWidth = 130

function legend(frame: Frame, series: ReadonlyArray<{ name: string; colorIndex?: number }>): string[] {
  const perRow = Math.max(1, Math.floor((frame.width - frame.left) / legendItemWidth))
  const rows = Math.ceil(series.length / perRow)
  return series.flatMap(({ name, colorIndex }, index) => {
    const x = frame.left + (index % perRow) * legendItemWidth
    const y = frame.height - 14 - (rows - 1 - Math.floor(index / perRow)) * 18
    return [
      `<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${colorOf({ colorIndex }, index)}"/>`,
      `<text x="${x + 17}" y="${y}" font-size="12" ${font}>${escapeXml(name)}</text>`,
    ]
  })
}

export function groupedBarChart(options: { title: string; yLabel: string; groups: readonly string[]; series: readonly BarSeries[] }): string {
  const frame: Frame = { width: Math.max(640, 90 + options.groups.length * (24 + options.series.length * 14)), height: 380, left: 70, right: 20, top: 40, bottom: 80 }
  const values = options.series.flatMap((series) => series.values.filter((value): value is number => value !== null))
  const maximum = niceCeiling(Math.max(0, ...values))
  const plotWidth = frame.width - frame.left - frame.right
  const plotHeight = frame.height - frame.top - frame.bottom
  const groupWidth = plotWidth / Math.max(1, options.groups.length)
  const barWidth = (groupWidth * 0.8) / Math.max(1, options.series.length)
  const parts = [...header(frame, options.title), ...yAxis(frame, maximum, options.yLabel)]
  options.groups.forEach((group, groupIndex) => {
    const groupX = frame.left + groupIndex * groupWidth + groupWidth * 0.1
    options.series.forEach((series, seriesIndex) => {
      const value = series.values[groupIndex]
      if (value === null || value === undefined) return
      const barHeight = (plotHeight * value) / maximum
      const x = groupX + seriesIndex * barWidth
      const y = frame.height - frame.bottom - barHeight
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(barWidth * 0.92).toFixed(1)}" height="${barHeight.toFixed(1)}" fill="${colorOf(series, seriesIndex)}"><title>${escapeXml(`${series.name} ${group}: ${shortNumber(value)}`)}</title></rect>`,
      )
    })
    const labelX = frame.left + groupIndex * groupWidth + groupWidth / 2
    parts.push(`<text x="${labelX}" y="${frame.height - frame.bottom + 16}" text-anchor="middle" font-size="11" ${font}>${escapeXml(group)}</text>`)
  })
  parts.push(...legend(frame, options.series), '</svg>')
  return parts.join('\n') + '\n'
}

export function lineChart(options: { title: string; xLabel: string; yLabel: string; series: readonly LineSeries[] }): string {
  const frame: Frame = { width: 640, height: 380, left: 70, right: 30, top: 40, bottom: 80 }
  const xs = options.series.flatMap((series) => series.points.map(([x]) => x))
  const ys = options.series.flatMap((series) => series.points.map(([, y]) => y))
  const xMaximum = niceCeiling(Math.max(0, ...xs))
  const yMaximum = niceCeiling(Math.max(0, ...ys))
  const plotWidth = frame.width - frame.left - frame.right
  const plotHeight = frame.height - frame.top - frame.bottom
  const toX = (x: number): number => frame.left + (plotWidth * x) / xMaximum
  const toY = (y: number): number => frame.height - frame.bottom - (plotHeight * y) / yMaximum
  const parts = [...header(frame, options.title), ...yAxis(frame, yMaximum, options.yLabel)]
  for (let tick = 0; tick <= 5; tick++) {
    const value = (xMaximum * tick) / 5
    parts.push(`<text x="${toX(value)}" y="${frame.height - frame.bottom + 16}" text-anchor="middle" font-size="11" ${font}>${shortNumber(value)}</text>`)
  }
  parts.push(`<text x="${frame.left + plotWidth / 2}" y="${frame.height - frame.bottom + 34}" text-anchor="middle" font-size="12" ${font}>${escapeXml(options.xLabel)}</text>`)
  options.series.forEach((series, index) => {
    const color = colorOf(series, index)
    const points = series.points.map(([x, y]) => `${toX(x).toFixed(1)},${toY(y).toFixed(1)}`)
    if (points.length > 1) parts.push(`<polyline points="${points.join(' ')}" fill="none" stroke="${color}" stroke-width="2"/>`)
    for (const [x, y] of series.points) {
      parts.push(
        `<circle cx="${toX(x).toFixed(1)}" cy="${toY(y).toFixed(1)}" r="4" fill="${color}"><title>${escapeXml(`${series.name}: ${shortNumber(y)} at ${shortNumber(x)}`)}</title></circle>`,
      )
    }
  })
  parts.push(...legend(frame, options.series), '</svg>')
  return parts.join('\n') + '\n'
}
