'use strict'
// Writes the README's comparison table (between the bench-table markers)
// from bench/results/results.json, so the README shows the committed run:
//
//   npm run readme:bench            rewrite the table in README.md
//   npm run readme:bench -- --check exit 1 if README.md does not match (a test runs this)
//
// One table per value size: per engine, at the largest key count loaded,
// load throughput, YCSB A/B/C/F (uniform) and D (latest) throughput, serving
// RSS, disk (allocated bytes of its files) and device reads per GET of C
// uniform. Every figure is read from results.json (schema 1); the full
// tables, latencies and charts are bench/results/results.md.
const fs = require('node:fs')
const path = require('node:path')

const ROOT = path.join(__dirname, '..')
const README = path.join(ROOT, 'README.md')
const RESULTS = path.join(ROOT, 'bench', 'results', 'results.json')
const BEGIN = '<!-- bench-table:begin (npm run readme:bench writes this from bench/results/results.json) -->'
const END = '<!-- bench-table:end -->'
const WORKLOADS = [
  ['A', 'uniform'],
  ['B', 'uniform'],
  ['C', 'uniform'],
  ['F', 'uniform'],
  ['D', 'latest'],
]

const integer = (value) => (value === null || value === undefined ? '—' : Math.round(value).toLocaleString('en-US'))
const mebibytes = (bytes) => (bytes === null || bytes === undefined ? '—' : (bytes / 1024 / 1024).toFixed(1))

function renderTable(results, valueSize) {
  const runs = results.runs.filter((run) => run.valueSize === valueSize)
  const header = ['engine', 'keys', 'load ops/s', ...WORKLOADS.map(([id, distribution]) => `${id} ${distribution} ops/s`), 'serving RSS MiB', 'disk MiB', 'reads/GET (C)']
  const lines = [`| ${header.join(' | ')} |`, `| --- | ${header.slice(1).map(() => '---:').join(' | ')} |`]
  for (const run of runs) {
    if (run.status !== 'completed' || run.stages.length === 0) {
      lines.push(`| ${run.label} | ${run.status}: ${(run.reason ?? '').replace(/\|/g, '/')} |${' |'.repeat(header.length - 2)}`)
      continue
    }
    const stage = run.stages[run.stages.length - 1]
    const phase = (id, distribution) => run.workloads.find((workload) => workload.workload === id && workload.distribution === distribution)
    const reads = phase('C', 'uniform')?.readsPerGet
    const estimated = phase('C', 'uniform')?.readsPerGetSource === 'proc-io' ? '≈' : ''
    lines.push(
      `| ${[
        run.label,
        integer(stage.records),
        integer(stage.load.operationsPerSecond),
        ...WORKLOADS.map(([id, distribution]) => integer(phase(id, distribution)?.operationsPerSecond)),
        mebibytes(stage.serving?.memory.residentBytes),
        mebibytes(stage.serving?.disk.allocatedBytes),
        reads === null || reads === undefined ? '—' : `${estimated}${reads.toFixed(2)}`,
      ].join(' | ')} |`,
    )
  }
  return lines.join('\n')
}

function render(results) {
  const sizes = [...new Set(results.runs.map((run) => run.valueSize))]
  const status = results.partial ? '**A partial run: not every engine completed.** ' : ''
  const parts = [`${status}From the committed run of ${results.startedAt.slice(0, 10)}, "${results.label}"; the machine, the command and every measurement are in [bench/results/results.md](bench/results/results.md).`]
  for (const size of sizes) parts.push(`${size}-byte values:\n\n${renderTable(results, size)}`)
  return parts.join('\n\n')
}

function main() {
  const results = JSON.parse(fs.readFileSync(RESULTS, 'utf8'))
  const readme = fs.readFileSync(README, 'utf8')
  const begin = readme.indexOf(BEGIN)
  const end = readme.indexOf(END)
  if (begin < 0 || end < begin) throw new Error(`README.md has no ${BEGIN} … ${END} section`)
  const updated = `${readme.slice(0, begin + BEGIN.length)}\n${render(results)}\n${readme.slice(end)}`
  if (process.argv.includes('--check')) {
    if (updated !== readme) {
      process.stderr.write('README.md\'s benchmark table does not match bench/results/results.json: run npm run readme:bench\n')
      process.exitCode = 1
    }
    return
  }
  fs.writeFileSync(README, updated)
}

main()
