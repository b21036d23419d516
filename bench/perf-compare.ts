/**
 * Before/after comparison for the performance work (issue 8): runs
 * bench/perf.ts for two or more builds in the same run, interleaved (the
 * order alternates every repetition), so that load from other work on the
 * shared machine hits every build alike; reports the median of each figure
 * and the median of the per-repetition ratios to the first build.
 *
 *   node dist-test/bench/perf-compare.js --builds before=/tmp/tree-a,after=/work/wt/perf
 *        --suite get|write|stall [--reps 5] [--seconds 8] [--keys 1000000]
 *        [--compression lz4,none] [--directory DIR]
 *
 * A build is a tree with a compiled dist/ (npm run build:ts). The `get`
 * suite loads one store per compression mode with the first build (kept in
 * --directory for later runs) and adds to every repetition fio 4 KiB random
 * reads at the same queue depths on the same store file, over the span of it
 * that holds data (allocatedSpan: the reads of a GET land there; the holes
 * of the rest of a sparse image would flatter fio), and
 * reports each build's GET throughput as a ratio to fio's. The `write` suite loads
 * 300K keys from empty, then runs YCSB A and F on the result; `stall` loads
 * while 32 readers GET (see bench/perf.ts).
 */

import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { ensureFio } from './lib/fio'
import { runFio } from './shim/fio'

interface Build {
  name: string
  lib: string
}

function argument(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`)
  return index >= 0 && process.argv[index + 1] !== undefined ? process.argv[index + 1]! : fallback
}

const perfScript = path.join(__dirname, 'perf.js')

function child(build: Build | undefined, args: string[]): Record<string, unknown> {
  const output = execFileSync(process.execPath, [perfScript, ...args, ...(build === undefined ? [] : ['--lib', build.lib])], {
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const line = output.trim().split('\n').pop()!
  return JSON.parse(line) as Record<string, unknown>
}

function median(values: number[]): number {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((left, right) => left - right)
  if (sorted.length === 0) return Number.NaN
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** results[case][build] = one record per repetition. */
type Results = Map<string, Map<string, Array<Record<string, unknown>>>>

function record(results: Results, label: string, build: string, result: Record<string, unknown>): void {
  if (!results.has(label)) results.set(label, new Map())
  const byBuild = results.get(label)!
  if (!byBuild.has(build)) byBuild.set(build, [])
  byBuild.get(build)!.push(result)
  process.stderr.write(`${label} ${build}: ${JSON.stringify(result)}\n`)
}

function report(results: Results, builds: string[], fields: string[]): void {
  for (const [label, byBuild] of results) {
    console.log(`\n${label}`)
    console.log(`  ${'figure'.padEnd(22)}${builds.map((build) => build.padStart(14)).join('')}${builds.slice(1).map((build) => `${build}/${builds[0]}`.padStart(16)).join('')}`)
    const first = byBuild.get(builds[0]!) ?? []
    for (const field of fields) {
      if (first.length === 0 || typeof first[0]![field] !== 'number') continue
      const medians = builds.map((build) => median((byBuild.get(build) ?? []).map((result) => result[field] as number)))
      const ratios = builds.slice(1).map((build) => {
        const other = byBuild.get(build) ?? []
        return median(first.map((result, index) => (other[index]?.[field] as number) / (result[field] as number)))
      })
      console.log(`  ${field.padEnd(22)}${medians.map((value) => value.toFixed(value >= 100 ? 0 : 2).padStart(14)).join('')}${ratios.map((value) => value.toFixed(3).padStart(16)).join('')}`)
    }
  }
}

/**
 * The span of `file` that holds its data: its allocated extents (filefrag)
 * grouped into clusters separated by holes of more than 128 MiB, and of
 * those the one with the most allocated bytes, from its first to its last
 * block. A store image is sparse: its buckets or segments form one such
 * cluster, while a few metadata blocks may sit far away at its end.
 */
function allocatedSpan(file: string): { offset: number; bytes: number } {
  const output = execFileSync('filefrag', ['-e', '-b4096', file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  const extents: Array<[number, number]> = []
  for (const line of output.split('\n')) {
    const match = /^\s*\d+:\s+(\d+)\.\.\s*(\d+):/.exec(line)
    if (match !== null) extents.push([Number(match[1]), Number(match[2])])
  }
  if (extents.length === 0) throw new Error(`${file} has no allocated extent`)
  extents.sort((left, right) => left[0] - right[0])
  const gapBlocks = (128 * 1024 * 1024) / 4096
  let best = { first: 0, last: -1, allocated: -1 }
  let current = { first: extents[0]![0], last: extents[0]![1], allocated: 0 }
  for (const [first, last] of extents) {
    if (first - current.last > gapBlocks) {
      if (current.allocated > best.allocated) best = current
      current = { first, last, allocated: 0 }
    }
    current.last = Math.max(current.last, last)
    current.allocated += last - first + 1
  }
  if (current.allocated > best.allocated) best = current
  return { offset: best.first * 4096, bytes: (best.last + 1 - best.first) * 4096 }
}

function orderFor(builds: Build[], repetition: number): Build[] {
  return repetition % 2 === 0 ? builds : [...builds].reverse()
}

function main(): void {
  const builds: Build[] = argument('builds', `this=${path.resolve(__dirname, '..', '..')}`)
    .split(',')
    .map((spec) => {
      const [name, tree] = spec.split('=') as [string, string]
      return { name, lib: path.join(path.resolve(tree), 'dist', 'index.js') }
    })
  for (const build of builds) if (!fs.existsSync(build.lib)) throw new Error(`${build.lib} does not exist: build ${build.name} first (npm run build:ts)`)
  const suite = argument('suite', 'get')
  const reps = Number(argument('reps', '5'))
  const seconds = argument('seconds', '8')
  const compressions = argument('compression', 'lz4,none').split(',')
  const directory = argument('directory', path.join(os.tmpdir(), 'cubbydb-perf'))
  fs.mkdirSync(directory, { recursive: true })
  const names = builds.map((build) => build.name)
  const results: Results = new Map()
  console.log(`${os.cpus().length} CPUs, load average ${os.loadavg().map((value) => value.toFixed(2)).join(' ')} at start; ${reps} repetitions, medians`)

  if (suite === 'get') {
    const keys = argument('keys', '1000000')
    const fio = ensureFio((line) => console.log(line))
    const queueDepths = argument('queue-depth', '32,1').split(',')
    const spans = new Map<string, { offset: number; bytes: number }>()
    for (const compression of compressions) {
      const file = path.join(directory, `get-${compression}-${keys}.img`)
      if (!fs.existsSync(file)) console.log(`loading ${file}: ${JSON.stringify(child(builds[0], ['load', '--file', file, '--compression', compression, '--keys', keys]))}`)
      const span = allocatedSpan(file)
      spans.set(compression, span)
      console.log(`${file}: fio reads the span that holds its data, ${Math.round(span.bytes / 2 ** 20)} MiB from byte ${span.offset}`)
    }
    const cases: Array<{ compression: string; cache: string; queueDepth: string }> = []
    for (const compression of compressions) {
      for (const cache of argument('cache', `0,${64 * 1024 * 1024}`).split(',')) {
        for (const queueDepth of queueDepths) cases.push({ compression, cache, queueDepth })
      }
    }
    const fioLabel = (compression: string, queueDepth: string): string => `fio randread, ${compression} store file, QD${queueDepth}`
    const getLabel = (compression: string, cache: string, queueDepth: string): string => `get ${compression} cache ${Number(cache) >> 20} MiB QD${queueDepth}`
    for (let repetition = 0; repetition < reps; repetition++) {
      for (const compression of compressions) {
        const file = path.join(directory, `get-${compression}-${keys}.img`)
        const span = spans.get(compression)!
        if ('version' in fio) {
          for (const queueDepth of queueDepths) {
            const measured = runFio(file, span.bytes, { operation: 'read', queueDepth: Number(queueDepth) }, Number(seconds) / 2, span.offset)
            record(results, fioLabel(compression, queueDepth), names[0]!, { opsPerSecond: Math.round(measured.iops), p50Us: measured.latencyP50Microseconds, p99Us: measured.latencyP99Microseconds })
          }
        }
        for (const { cache, queueDepth } of cases.filter((each) => each.compression === compression)) {
          for (const build of orderFor(builds, repetition)) {
            record(results, getLabel(compression, cache, queueDepth), build.name, child(build, ['get', '--file', file, '--cache', cache, '--queue-depth', queueDepth, '--seconds', seconds]))
          }
        }
      }
    }
    report(results, names, ['opsPerSecond', 'cpuMicrosPerOp', 'userMicrosPerOp', 'systemMicrosPerOp', 'p50Us', 'p99Us', 'readsPerGet', 'cacheHitRate', 'loopDelayMaxMs'])
    if ('version' in fio) {
      console.log('\nGET throughput / fio random-read IOPS on the same file, same repetition (median of the per-repetition ratios)')
      for (const { compression, cache, queueDepth } of cases) {
        const fioRuns = results.get(fioLabel(compression, queueDepth))!.get(names[0]!)!
        const byBuild = results.get(getLabel(compression, cache, queueDepth))!
        const ratios = names.map((name) => median((byBuild.get(name) ?? []).map((result, index) => (result.opsPerSecond as number) / (fioRuns[index]!.opsPerSecond as number))))
        console.log(`  ${getLabel(compression, cache, queueDepth).padEnd(32)}${ratios.map((ratio, index) => `${names[index]} ${ratio.toFixed(3)}`.padStart(18)).join('')}`)
      }
    }
  } else if (suite === 'write') {
    const keys = argument('keys', '300000')
    for (let repetition = 0; repetition < reps; repetition++) {
      for (const compression of compressions) {
        for (const build of orderFor(builds, repetition)) {
          const file = path.join(directory, `write-${compression}-${build.name}.img`)
          record(results, `load ${compression} ${keys} keys`, build.name, child(build, ['load', '--file', file, '--compression', compression, '--keys', keys]))
          for (const workload of ['A', 'F']) {
            record(results, `YCSB ${workload} ${compression}`, build.name, child(build, ['mixed', '--file', file, '--workload', workload, '--seconds', seconds]))
          }
          fs.rmSync(file, { force: true })
        }
      }
    }
    report(results, names, ['opsPerSecond', 'cpuMicrosPerOp', 'userMicrosPerOp', 'systemMicrosPerOp', 'blockWritesPerPut', 'blockReadsPerPut', 'flushSteps', 'putP99Ms', 'putMaxMs', 'p99Us', 'getP99Us', 'putP99Us', 'loopDelayP99Ms', 'loopDelayMaxMs'])
  } else if (suite === 'stall') {
    const keys = argument('keys', '300000')
    for (let repetition = 0; repetition < reps; repetition++) {
      for (const compression of compressions) {
        for (const build of orderFor(builds, repetition)) {
          const file = path.join(directory, `stall-${compression}-${build.name}.img`)
          record(results, `GETs during a load, ${compression}`, build.name, child(build, ['stall', '--file', file, '--compression', compression, '--keys', keys, '--seconds', seconds]))
          fs.rmSync(file, { force: true })
        }
      }
    }
    report(results, names, ['opsPerSecond', 'cpuMicrosPerOp', 'putsPerSecond', 'getP50Us', 'getP99Us', 'getP999Us', 'getMaxMs', 'flushSteps', 'loopDelayP99Ms', 'loopDelayMaxMs'])
  } else {
    throw new Error(`unknown suite ${suite}: get, write or stall`)
  }
  console.log(`\nload average ${os.loadavg().map((value) => value.toFixed(2)).join(' ')} at the end`)
}

main()
