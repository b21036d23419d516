/**
 * Turns a run's results into what people read: results.md (tables), results.json
 * (everything measured, as measured) and SVG charts, and the quick run's
 * side-by-side table for the terminal.
 *
 * Only measured figures and figures derived from them (results.ts) appear; an
 * engine that did not run shows its status and reason, never a number. Reads
 * per GET estimated from /proc/self/io rather than counted by the engine are
 * marked with "≈".
 */

import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ENGINE_ORDER, type EngineId } from '../engines/registry'
import type { PhaseResult } from './protocol'
import {
  deviceReadIops,
  findRun,
  findWorkload,
  lastServedStage,
  memoryPerKey,
  workloadKey,
  type BenchmarkResults,
  type EngineRun,
} from './results'
import { groupedBarChart, lineChart } from './svg'

const MiB = 1048576

export function formatInteger(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—'
  return Math.round(value).toLocaleString('en-US')
}

/** Microseconds: one decimal below 100, whole numbers above. */
export function formatMicros(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—'
  return value < 100 ? value.toFixed(1) : formatInteger(value)
}

export function formatMiB(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '—'
  return (bytes / MiB).toFixed(1)
}

export function formatRatio(value: number | null | undefined, digits = 2): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—'
  return value.toFixed(digits)
}

function formatReadsPerGet(phase: PhaseResult | undefined): string {
  if (phase === undefined || phase.readsPerGet === null) return '—'
  return `${phase.readsPerGetSource === 'engine' ? '' : '≈'}${phase.readsPerGet.toFixed(2)}`
}

function table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>, rightAligned = true): string {
  const align = headers.map((_, index) => (index === 0 || !rightAligned ? '---' : '---:'))
  return [`| ${headers.join(' | ')} |`, `| ${align.join(' | ')} |`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n')
}

function phaseLabel(phase: PhaseResult): string {
  return phase.distribution === undefined ? phase.phase : `${phase.phase} ${phase.distribution}`
}

function runsFor(results: BenchmarkResults, valueSize: number): EngineRun[] {
  return results.runs.filter((run) => run.valueSize === valueSize)
}

function machineSection(results: BenchmarkResults): string {
  const machine = results.machine
  const disk = machine.disk
  const diskText = [
    disk.blockDevice ?? 'unknown device',
    disk.model,
    disk.mount === null ? null : `${disk.mount.fileSystem} at ${disk.mount.mountPoint}`,
    disk.sizeBytes === null ? null : `${(disk.sizeBytes / 1024 / MiB).toFixed(0)} GiB`,
    disk.rotational === null ? null : disk.rotational ? 'rotational' : 'non-rotational',
    disk.scheduler === null ? null : `scheduler ${disk.scheduler}`,
    disk.readAheadKiB === null ? null : `read-ahead ${disk.readAheadKiB} KiB`,
  ]
    .filter((part) => part !== null)
    .join(', ')
  const packages = Object.entries(machine.packages)
    .map(([name, version]) => `${name} ${version ?? 'not installed'}`)
    .join(', ')
  const rows = [
    ['CPU', `${machine.cpuModel}, ${machine.logicalCores} logical cores; load average ${machine.loadAverage.map((load) => load.toFixed(1)).join(', ')} when the run began`],
    ['Memory', `${(machine.memoryBytes / 1024 / MiB).toFixed(1)} GiB`],
    ['Kernel', `${machine.kernel}${machine.distribution === null ? '' : ` (${machine.distribution})`}`],
    ['Disk', diskText],
    ['Node', machine.nodeVersion],
    ['Packages', packages],
    ['CubbyDB commit', machine.cubbydbCommit ?? 'unknown'],
    ['fio', machine.fioVersion ?? 'not used'],
  ]
  return `## Machine\n\n${table(['', ''], rows, false)}\n`
}

function settingsSection(results: BenchmarkResults): string {
  const config = results.config
  const isolation = results.isolation
  const lines = [
    `- Keys ${config.keySize} B ("user" + digits); values ${config.valueSizes.join(' and ')} B of random bytes`,
    `- Record counts loaded in turn: ${config.recordStages.map(formatInteger).join(', ')}; workloads run at the last`,
    `- Per workload: ${formatInteger(config.warmupOperations)} warm-up then ${formatInteger(config.operations)} measured operations (at most ${config.phaseSeconds} s), ${config.concurrency} outstanding; seed ${config.seed}; zipfian θ ${config.theta}`,
    `- Memory budget for every engine that has the setting: cache ${formatMiB(config.cacheSizeBytes)} MiB, write buffer ${formatMiB(config.writeBufferSizeBytes)} MiB; writes ${config.sync ? 'durable before acknowledged (sync)' : 'not synced (sync off, for every engine)'}`,
    isolation.memoryCgroup
      ? `- Each engine in its own memory cgroup limited to ${formatMiB(isolation.memoryLimitBytes)} MiB (page cache included), ${isolation.limitDuringLoads ? 'loads included' : 'from the end of each load on (loads run unlimited)'}`
      : `- No memory cgroup (${isolation.memoryCgroupUnavailable}): engines may serve reads from the OS page cache`,
    `- Page cache ${isolation.dropCaches ? 'dropped before every read phase' : 'not dropped between phases'}; data in ${results.dataDirectory}`,
  ]
  return `## Settings\n\n${lines.join('\n')}\n`
}

function deviceSection(results: BenchmarkResults): string {
  if (results.device === null) return `## The device's limit\n\nNot measured: ${results.deviceSkipped ?? 'unknown reason'}.\n`
  const rows = results.device.jobs.map((job) => [
    job.pattern === 'randread' ? 'random read' : 'random write',
    String(job.queueDepth),
    formatInteger(job.iops),
    (job.bandwidthBytesPerSecond / MiB).toFixed(1),
    formatMicros(job.p50Micros),
    formatMicros(job.p99Micros),
    formatMicros(job.p999Micros),
    job.ioEngine,
  ])
  const heading = `## The device's limit\n\nfio ${results.device.version}, 4 KiB blocks, O_DIRECT, on ${results.device.target}.\n\n`
  return heading + table(['pattern', 'queue depth', 'IOPS', 'MiB/s', 'p50 µs', 'p99 µs', 'p99.9 µs', 'I/O engine'], rows) + '\n'
}

function enginesSection(results: BenchmarkResults): string {
  const rows = results.runs.map((run) => [
    run.label,
    `${run.valueSize} B`,
    run.status,
    run.version ?? '—',
    run.reason ?? '',
  ])
  return `## Engines\n\n${table(['engine', 'values', 'status', 'version', 'reason'], rows, false)}\n`
}

function workloadSection(results: BenchmarkResults, valueSize: number): string {
  const rows: string[][] = []
  for (const run of runsFor(results, valueSize)) {
    const lastLoad = run.stages[run.stages.length - 1]?.load
    const phases = [...(lastLoad === undefined ? [] : [lastLoad]), ...run.workloads]
    for (const phase of phases) {
      rows.push([
        run.label,
        phase.phase === 'load' ? `load to ${formatInteger(phase.recordsAfter)}` : phaseLabel(phase),
        formatInteger(phase.operationsPerSecond),
        formatMicros(phase.latency.p50Micros),
        formatMicros(phase.latency.p99Micros),
        formatMicros(phase.latency.p999Micros),
        formatMicros(phase.cpuMicrosPerOperation),
        formatReadsPerGet(phase),
        phase.kibReadPerGet === null ? '—' : phase.kibReadPerGet.toFixed(2),
        formatInteger(phase.notFound + phase.wrongValue),
        phase.stoppedByTime ? `${formatInteger(phase.operations)} (time limit)` : formatInteger(phase.operations),
      ])
    }
  }
  if (rows.length === 0) return `### Workloads, ${valueSize}-byte values\n\nNo engine ran.\n`
  const headers = ['engine', 'workload', 'ops/s', 'p50 µs', 'p99 µs', 'p99.9 µs', 'CPU µs/op', 'reads/GET', 'KiB read/GET', 'bad reads', 'operations']
  return `### Workloads, ${valueSize}-byte values\n\n${table(headers, rows)}\n\n![throughput, ${valueSize}-byte values](throughput-${valueSize}B.svg)\n`
}

function memorySection(results: BenchmarkResults, valueSize: number): string {
  const rows: string[][] = []
  for (const run of runsFor(results, valueSize)) {
    for (const stage of run.stages) {
      const disk = stage.afterLoad.disk?.allocatedBytes ?? stage.afterLoad.counters.physicalBytes ?? null
      const logical = stage.afterLoad.counters.logicalBytes ?? stage.afterLoad.disk?.apparentBytes ?? null
      rows.push([
        run.label,
        formatInteger(stage.records),
        formatInteger(stage.load.operationsPerSecond),
        formatMiB(stage.afterLoad.memory.residentBytes),
        formatMiB(stage.serving?.memory.residentBytes),
        formatMiB(stage.serving?.memory.residentAnonymousBytes),
        formatMiB(stage.servingChargedBytes),
        formatMiB(stage.serving?.memory.residentPeakBytes),
        formatMiB(logical),
        formatMiB(disk),
        disk === null ? '—' : formatRatio(disk / (stage.records * (results.config.keySize + valueSize))),
        formatInteger(stage.probe?.operationsPerSecond),
        formatReadsPerGet(stage.probe ?? undefined),
      ])
    }
  }
  if (rows.length === 0) return ''
  const headers = ['engine', 'records', 'load ops/s', 'RSS after load MiB', 'serving RSS MiB', 'serving anon MiB', 'charged MiB', 'peak RSS MiB', 'logical MiB', 'disk MiB', 'disk ÷ data', 'probe GET/s', 'reads/GET']
  return `### Memory and disk, ${valueSize}-byte values\n\n${table(headers, rows)}\n\n![memory, ${valueSize}-byte values](memory-${valueSize}B.svg)\n`
}

function memoryPerKeySection(results: BenchmarkResults): string {
  const rows: string[][] = []
  for (const run of results.runs) {
    const perKey = memoryPerKey(run)
    if (perKey === null) continue
    rows.push([run.label, `${run.valueSize} B`, formatRatio(perKey.residentBytesPerKey), formatRatio(perKey.anonymousBytesPerKey), String(perKey.points)])
  }
  if (rows.length === 0) return '## Memory per extra key\n\nNeeds at least two record-count stages with serving memory.\n'
  return `## Memory per extra key\n\nLeast-squares slope of serving memory against record count.\n\n${table(['engine', 'values', 'RSS bytes/key', 'anon bytes/key', 'stages'], rows)}\n`
}

interface TargetRow {
  figure: string
  value: number | null
  target: string
}

/** The design's targets (DESIGN.md "Where the bar is"), each computed from this run. */
export function targetRows(results: BenchmarkResults, valueSize: number, cubby: EngineId = 'cubbydb-lz4'): TargetRow[] {
  const cubbyRun = findRun(results, cubby, valueSize)
  const rocksRun = findRun(results, 'rocksdb', valueSize)
  const ratio = (key: string): number | null => {
    const ours = findWorkload(cubbyRun, key)?.operationsPerSecond
    const theirs = findWorkload(rocksRun, key)?.operationsPerSecond
    return ours !== undefined && theirs !== undefined && theirs > 0 ? ours / theirs : null
  }
  const readIops = deviceReadIops(results)
  const cUniform = findWorkload(cubbyRun, 'C-uniform')
  const ourStage = cubbyRun === undefined ? undefined : lastServedStage(cubbyRun)
  const theirStage = rocksRun === undefined ? undefined : lastServedStage(rocksRun)
  const sameStage = ourStage !== undefined && theirStage !== undefined && ourStage.records === theirStage.records
  const ourPerKey = cubbyRun === undefined ? null : memoryPerKey(cubbyRun)
  const theirPerKey = rocksRun === undefined ? null : memoryPerKey(rocksRun)
  const ourDisk = ourStage?.afterLoad.disk?.allocatedBytes ?? ourStage?.afterLoad.counters.physicalBytes ?? null
  return [
    { figure: 'GET/s (C uniform) ÷ fio random-read IOPS', value: cUniform !== undefined && readIops !== null ? cUniform.operationsPerSecond / readIops : null, target: '≥ 0.8' },
    { figure: 'C uniform throughput ÷ RocksDB', value: ratio('C-uniform'), target: '≥ 2' },
    { figure: 'C zipfian throughput ÷ RocksDB', value: ratio('C-zipfian'), target: '≥ 2' },
    { figure: 'F uniform throughput ÷ RocksDB', value: ratio('F-uniform'), target: '≥ 2' },
    { figure: 'F zipfian throughput ÷ RocksDB', value: ratio('F-zipfian'), target: '≥ 2' },
    { figure: 'CPU µs per GET (C uniform)', value: cUniform?.cpuMicrosPerOperation ?? null, target: '≤ 10' },
    {
      figure: `serving RSS ÷ RocksDB's${sameStage ? ` at ${formatInteger(ourStage.records)} keys` : ''}`,
      value: sameStage ? (ourStage.serving?.memory.residentBytes ?? 0) / (theirStage.serving?.memory.residentBytes ?? Number.NaN) : null,
      target: '≤ 0.25',
    },
    {
      figure: 'memory per extra key ÷ RocksDB\'s',
      value: ourPerKey !== null && theirPerKey !== null && theirPerKey.residentBytesPerKey > 0 ? ourPerKey.residentBytesPerKey / theirPerKey.residentBytesPerKey : null,
      target: '≤ 0.1',
    },
    { figure: 'memory per extra key, bytes', value: ourPerKey?.residentBytesPerKey ?? null, target: '≤ 0.1' },
    {
      figure: 'disk ÷ key+value bytes',
      value: ourDisk !== null && ourStage !== undefined ? ourDisk / (ourStage.records * (results.config.keySize + valueSize)) : null,
      target: '≤ 1.15',
    },
  ]
}

function targetsSection(results: BenchmarkResults): string {
  const parts = ['## Against the targets\n', 'CubbyDB against the goals of DESIGN.md, computed from this run; "—" where a figure was not measured.\n']
  for (const valueSize of results.config.valueSizes) {
    const compressed = targetRows(results, valueSize, 'cubbydb-lz4')
    const raw = targetRows(results, valueSize, 'cubbydb-none')
    const rows = compressed.map((row, index) => [row.figure, formatRatio(row.value), formatRatio(raw[index]?.value), row.target])
    parts.push(`### ${valueSize}-byte values\n\n${table(['figure', 'CubbyDB lz4', 'CubbyDB none', 'target'], rows)}\n`)
  }
  return parts.join('\n')
}

const columnNotes = `## What the columns mean

- **ops/s**: operations completed ÷ wall time of the measured phase (warm-up excluded).
- **p50 / p99 / p99.9 µs**: latency of one operation, from issue to completion, at the stated concurrency (log-bucketed histogram, within 1 % of exact). A read-modify-write counts as one operation.
- **CPU µs/op**: user + system CPU time of the engine's whole process (all threads, the load generator included) ÷ operations.
- **reads/GET**: device reads ÷ GETs in the phase. CubbyDB counts its own (\`stats().device.reads\`); for the others "≈" marks an estimate, block-layer bytes read (\`read_bytes\` of /proc/self/io) ÷ 4096 ÷ GETs, which readahead and larger reads blur. In mixed workloads, reads done by writes and background work count too.
- **KiB read/GET**: block-layer bytes read per GET from /proc/self/io, the same measure for every engine.
- **bad reads**: GETs of existing keys that found nothing or another key's value; anything but 0 is a bug.
- **RSS after load / serving RSS / serving anon / peak RSS**: VmRSS after loading and flushing; VmRSS, RssAnon after a short uniform read phase (the probe); VmHWM. RSS includes mapped file pages (LMDB's and LevelDB's data, and Node's own code, shared with other processes); anon does not.
- **charged MiB**: what the kernel charges the engine's memory cgroup after the probe: its anonymous memory plus the page cache it brought in, mapped or not (bounded by the limit).
- **logical MiB**: the size of the engine's files (st_size), or the logical bytes CubbyDB reports; a sparse image file is larger logically than on disk.
- **disk MiB**: allocated bytes (st_blocks × 512, du-style) of the engine's files, or CubbyDB's physical bytes on a device; **disk ÷ data** divides it by records × (key + value size).
- **memory per extra key**: slope of serving memory against record count across the stages.
`

export function renderMarkdown(results: BenchmarkResults): string {
  const sections: string[] = [`# CubbyDB benchmark: ${results.label}\n`]
  if (results.partial) {
    const missing = results.runs.filter((run) => run.status !== 'completed').map((run) => `${run.label} (${run.valueSize} B): ${run.status}${run.reason === null ? '' : `, ${run.reason}`}`)
    sections.push(`> **Partial run.** Not every engine completed:\n${missing.map((line) => `> - ${line}`).join('\n')}\n`)
  }
  sections.push(`Run from ${results.startedAt} to ${results.finishedAt} with \`${results.command}\`.\n`)
  sections.push(machineSection(results), settingsSection(results), deviceSection(results), enginesSection(results))
  sections.push('## Results\n')
  for (const valueSize of results.config.valueSizes) sections.push(workloadSection(results, valueSize), memorySection(results, valueSize))
  sections.push(memoryPerKeySection(results), targetsSection(results))
  sections.push(`## Not run\n\n${results.notApplicable.map((workload) => `- Workload ${workload.id}, ${workload.title}: ${workload.reason}.`).join('\n')}\n`)
  sections.push(columnNotes)
  return sections.filter((section) => section !== '').join('\n')
}

export interface Chart {
  file: string
  svg: string
}

export function renderCharts(results: BenchmarkResults): Chart[] {
  const charts: Chart[] = []
  for (const valueSize of results.config.valueSizes) {
    const runs = runsFor(results, valueSize).filter((run) => run.stages.length > 0)
    if (runs.length === 0) continue
    const groups: string[] = ['load']
    for (const run of runs) for (const phase of run.workloads) if (!groups.includes(workloadKey(phase))) groups.push(workloadKey(phase))
    charts.push({
      file: `throughput-${valueSize}B.svg`,
      svg: groupedBarChart({
        title: `Throughput, ${valueSize}-byte values, ${formatInteger(results.config.recordStages[results.config.recordStages.length - 1])} records`,
        yLabel: 'operations per second',
        groups,
        series: runs.map((run) => ({
          name: run.label,
          colorIndex: ENGINE_ORDER.indexOf(run.engine),
          values: groups.map((group) =>
            group === 'load' ? (run.stages[run.stages.length - 1]?.load.operationsPerSecond ?? null) : (findWorkload(run, group)?.operationsPerSecond ?? null),
          ),
        })),
      }),
    })
    charts.push({
      file: `memory-${valueSize}B.svg`,
      svg: lineChart({
        title: `Serving memory against key count, ${valueSize}-byte values`,
        xLabel: 'keys',
        yLabel: 'serving RSS, MiB',
        series: runs.map((run) => ({
          name: run.label,
          colorIndex: ENGINE_ORDER.indexOf(run.engine),
          points: run.stages.flatMap((stage) => (stage.serving === null ? [] : [[stage.records, stage.serving.memory.residentBytes / MiB] as const])),
        })),
      }),
    })
  }
  return charts
}

/** Write results.json, results.md and the charts into `directory`; returns the paths written. */
export function writeResults(directory: string, results: BenchmarkResults): string[] {
  mkdirSync(directory, { recursive: true })
  const written: string[] = []
  const write = (file: string, text: string): void => {
    const path = join(directory, file)
    writeFileSync(path, text)
    written.push(path)
  }
  write('results.json', JSON.stringify(results, null, 2) + '\n')
  write('results.md', renderMarkdown(results))
  for (const chart of renderCharts(results)) write(chart.file, chart.svg)
  return written
}

/** The quick run's side-by-side table: one column per engine. */
export function renderSideBySide(results: BenchmarkResults, valueSize: number): string {
  const runs = runsFor(results, valueSize)
  const completed = runs.filter((run) => run.stages.length > 0)
  const lines: string[] = []
  for (const run of runs) {
    if (run.status !== 'completed') lines.push(`${run.label}: ${run.status}${run.reason === null ? '' : ` (${run.reason})`}`)
  }
  if (completed.length === 0) return lines.join('\n') + '\n'
  if (lines.length > 0) {
    lines.push(`Shown: ${completed.map((run) => run.label).join(' and ')} ${completed.length === 1 ? 'alone' : 'only'}.`, '')
  }
  const stageOf = (run: EngineRun) => run.stages[run.stages.length - 1]
  const metric = (name: string, value: (run: EngineRun) => string): string[] => [name, ...completed.map(value)]
  const rows: string[][] = [
    metric('keys loaded', (run) => formatInteger(stageOf(run)?.records)),
    metric('load, ops/s', (run) => formatInteger(stageOf(run)?.load.operationsPerSecond)),
    metric('RSS after load, MiB', (run) => formatMiB(stageOf(run)?.afterLoad.memory.residentBytes)),
    metric('serving RSS, MiB', (run) => formatMiB(stageOf(run)?.serving?.memory.residentBytes)),
    metric('serving anon, MiB', (run) => formatMiB(stageOf(run)?.serving?.memory.residentAnonymousBytes)),
    metric('charged to its cgroup, MiB', (run) => formatMiB(stageOf(run)?.servingChargedBytes)),
    metric('peak RSS, MiB', (run) => formatMiB(stageOf(run)?.serving?.memory.residentPeakBytes)),
    metric('disk, MiB', (run) => formatMiB(stageOf(run)?.afterLoad.disk?.allocatedBytes ?? stageOf(run)?.afterLoad.counters.physicalBytes)),
  ]
  for (const key of ['C-uniform', 'C-zipfian']) {
    if (!completed.some((run) => findWorkload(run, key) !== undefined)) continue
    const label = key.replace('-', ' ')
    rows.push(metric(`${label}: GET/s`, (run) => formatInteger(findWorkload(run, key)?.operationsPerSecond)))
    rows.push(metric(`${label}: p99 µs`, (run) => formatMicros(findWorkload(run, key)?.latency.p99Micros)))
    rows.push(metric(`${label}: CPU µs/GET`, (run) => formatMicros(findWorkload(run, key)?.cpuMicrosPerOperation)))
    rows.push(metric(`${label}: reads/GET`, (run) => formatReadsPerGet(findWorkload(run, key))))
  }
  lines.push(table(['', ...completed.map((run) => run.label)], rows))
  if (completed.some((run) => run.workloads.some((phase) => phase.readsPerGetSource === 'proc-io'))) {
    lines.push('≈: estimated from /proc/self/io read_bytes ÷ 4096 (the engine does not count its device reads)')
  }
  return lines.join('\n') + '\n'
}
