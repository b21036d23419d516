// A strict reader of the text exposition formats, for tests: OpenMetrics 1.0
// (application/openmetrics-text) and Prometheus text 0.0.4 (which, unlike
// OpenMetrics, allows empty lines: prom-client writes them). It throws on
// anything the specifications forbid that a scraper would trip over: a sample
// before its family's TYPE, interleaved families, a counter sample without
// _total, histogram buckets out of order or not cumulative, a missing +Inf
// bucket or _count, a UNIT that is not the name's suffix, a missing or
// misplaced `# EOF`, bad escapes, duplicate series.

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface Family {
  name: string
  type: string
  help: string | undefined
  unit: string | undefined
  samples: Sample[]
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf|inf|NaN|nan)$/

function parseNumber(text: string, line: string): number {
  if (!NUMBER.test(text)) throw new Error(`bad number ${JSON.stringify(text)} in: ${line}`)
  if (/^\+?inf$/i.test(text)) return Infinity
  if (/^-inf$/i.test(text)) return -Infinity
  return Number(text)
}

/** Parses `{a="x",b="y"} rest` from `text` at `at`; returns the labels and the index after the closing brace. */
function parseLabels(text: string, at: number, line: string): [Record<string, string>, number] {
  const labels: Record<string, string> = {}
  let position = at + 1
  while (text[position] !== '}') {
    const equals = text.indexOf('=', position)
    if (equals < 0) throw new Error(`bad labels in: ${line}`)
    const name = text.slice(position, equals)
    if (!LABEL_NAME.test(name)) throw new Error(`bad label name ${JSON.stringify(name)} in: ${line}`)
    if (name in labels) throw new Error(`label ${name} twice in: ${line}`)
    if (text[equals + 1] !== '"') throw new Error(`label value not quoted in: ${line}`)
    let value = ''
    position = equals + 2
    for (;;) {
      const character = text[position]
      if (character === undefined) throw new Error(`unterminated label value in: ${line}`)
      if (character === '"') break
      if (character === '\\') {
        const escaped = text[position + 1]
        if (escaped === 'n') value += '\n'
        else if (escaped === '"' || escaped === '\\') value += escaped
        else throw new Error(`bad escape \\${escaped} in: ${line}`)
        position += 2
        continue
      }
      value += character
      position++
    }
    labels[name] = value
    position++
    if (text[position] === ',') position++
    else if (text[position] !== '}') throw new Error(`expected , or } in: ${line}`)
  }
  return [labels, position + 1]
}

/** The suffixes a sample of a family of `type` may carry, per format. */
function allowedSampleNames(family: Family, format: 'openmetrics' | 'prometheus'): string[] {
  const name = family.name
  switch (family.type) {
    case 'counter':
      return format === 'openmetrics' ? [`${name}_total`, `${name}_created`] : [name]
    case 'histogram':
      return [`${name}_bucket`, `${name}_count`, `${name}_sum`, `${name}_created`]
    case 'info':
      return [`${name}_info`]
    default:
      return [name]
  }
}

/** Parses an exposition; throws on any violation. Families in order of appearance. */
export function parseExposition(text: string, format: 'openmetrics' | 'prometheus'): Family[] {
  if (text.includes('\r')) throw new Error('carriage return in exposition')
  if (!text.endsWith('\n')) throw new Error('exposition does not end with a newline')
  const lines = text.slice(0, -1).split('\n')
  if (format === 'openmetrics') {
    if (lines[lines.length - 1] !== '# EOF') throw new Error('OpenMetrics exposition does not end with # EOF')
    lines.pop()
  } else if (lines.includes('# EOF')) {
    throw new Error('# EOF in a Prometheus 0.0.4 exposition')
  }
  const families: Family[] = []
  const closed = new Set<string>()
  const series = new Set<string>()
  let current: Family | undefined
  const startFamily = (name: string): Family => {
    if (current?.name === name) return current
    if (closed.has(name)) throw new Error(`family ${name} interleaved with another`)
    if (current !== undefined) closed.add(current.name)
    current = { name, type: 'unknown', help: undefined, unit: undefined, samples: [] }
    families.push(current)
    return current
  }
  for (const line of lines) {
    if (line === '') {
      if (format === 'openmetrics') throw new Error('empty line in an OpenMetrics exposition')
      continue
    }
    if (line.startsWith('#')) {
      const match = /^# (TYPE|HELP|UNIT) (\S+)(?: (.*))?$/.exec(line)
      if (match === null) throw new Error(`bad comment line: ${line}`)
      const [, keyword, name, rest = ''] = match as unknown as [string, string, string, string | undefined]
      if (!METRIC_NAME.test(name)) throw new Error(`bad metric name in: ${line}`)
      if (format === 'prometheus' && keyword === 'UNIT') throw new Error('UNIT line in a Prometheus 0.0.4 exposition')
      const family = startFamily(name)
      if (family.samples.length > 0) throw new Error(`metadata after samples of ${name}`)
      if (keyword === 'TYPE') {
        if (family.type !== 'unknown') throw new Error(`two TYPE lines for ${name}`)
        const types = format === 'openmetrics' ? ['counter', 'gauge', 'histogram', 'gaugehistogram', 'stateset', 'info', 'summary', 'unknown'] : ['counter', 'gauge', 'histogram', 'summary', 'untyped']
        if (!types.includes(rest)) throw new Error(`bad type in: ${line}`)
        family.type = rest
        if (format === 'prometheus' && rest === 'counter' && !name.endsWith('_total')) throw new Error(`counter ${name} should end in _total`)
      } else if (keyword === 'HELP') {
        if (family.help !== undefined) throw new Error(`two HELP lines for ${name}`)
        family.help = rest
      } else {
        if (family.unit !== undefined) throw new Error(`two UNIT lines for ${name}`)
        if (!name.endsWith(`_${rest}`)) throw new Error(`UNIT ${rest} is not the suffix of ${name}`)
        family.unit = rest
      }
      continue
    }
    const nameEnd = line.search(/[{ ]/)
    if (nameEnd <= 0) throw new Error(`bad sample line: ${line}`)
    const name = line.slice(0, nameEnd)
    if (!METRIC_NAME.test(name)) throw new Error(`bad metric name in: ${line}`)
    let labels: Record<string, string> = {}
    let position = nameEnd
    if (line[position] === '{') [labels, position] = parseLabels(line, position, line)
    if (line[position] !== ' ') throw new Error(`expected a space before the value in: ${line}`)
    const parts = line.slice(position + 1).split(' ')
    if (parts.length > 2) throw new Error(`trailing fields in: ${line}`)
    const value = parseNumber(parts[0]!, line)
    if (current === undefined || !allowedSampleNames(current, format).includes(name)) {
      throw new Error(`sample ${name} does not belong to the family before it (${current?.name ?? 'none'}, ${current?.type ?? ''})`)
    }
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`
    if (series.has(key)) throw new Error(`series ${key} twice`)
    series.add(key)
    if (current.type === 'counter' && !(value >= 0)) throw new Error(`negative or NaN counter in: ${line}`)
    if (current.type === 'info' && value !== 1) throw new Error(`info sample not 1 in: ${line}`)
    current.samples.push({ name, labels, value })
  }
  for (const family of families) {
    if (family.type === 'unknown' || family.type === 'untyped') throw new Error(`family ${family.name} has no TYPE`)
    if (family.type === 'histogram') checkHistogram(family)
  }
  return families
}

function checkHistogram(family: Family): void {
  const groups = new Map<string, Sample[]>()
  for (const sample of family.samples) {
    const { le: _le, ...rest } = sample.labels
    const key = JSON.stringify(Object.entries(rest).sort())
    groups.set(key, [...(groups.get(key) ?? []), sample])
  }
  for (const [key, samples] of groups) {
    const buckets = samples.filter((sample) => sample.name.endsWith('_bucket'))
    if (buckets.length === 0) throw new Error(`histogram ${family.name}${key} has no buckets`)
    let previousBound = -Infinity
    let previousCount = 0
    for (const bucket of buckets) {
      const le = bucket.labels.le
      if (le === undefined) throw new Error(`bucket of ${family.name} without le`)
      const bound = le === '+Inf' ? Infinity : Number(le)
      if (Number.isNaN(bound) || !(bound > previousBound)) throw new Error(`buckets of ${family.name} not in increasing le order at ${le}`)
      if (bucket.value < previousCount) throw new Error(`buckets of ${family.name} not cumulative at le=${le}`)
      previousBound = bound
      previousCount = bucket.value
    }
    if (previousBound !== Infinity) throw new Error(`histogram ${family.name}${key} has no +Inf bucket`)
    const count = samples.find((sample) => sample.name.endsWith('_count'))
    const sum = samples.find((sample) => sample.name.endsWith('_sum'))
    if (count === undefined || sum === undefined) throw new Error(`histogram ${family.name}${key} lacks _count or _sum`)
    if (count.value !== previousCount) throw new Error(`histogram ${family.name}${key}: _count ${count.value} is not the +Inf bucket ${previousCount}`)
  }
}

/** The value of the one sample of `families` named `name` whose labels include `labels`. */
export function sampleValue(families: Family[], name: string, labels: Record<string, string> = {}): number {
  const matches = families.flatMap((family) => family.samples).filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value))
  if (matches.length !== 1) throw new Error(`${matches.length} samples named ${name} with ${JSON.stringify(labels)}`)
  return matches[0]!.value
}
