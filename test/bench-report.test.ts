// The benchmark's writers: results.md, results.json, SVG charts and the quick run's table,
// fed a hand-made results record (a test fixture, not a measurement).
import test from 'ava'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { EngineId } from '../bench/engines/registry'
import { FULL_RUN_DEFAULTS } from '../bench/lib/config'
import type { PhaseResult, Snapshot } from '../bench/lib/protocol'
import { renderMarkdown, renderSideBySide, targetRows, writeResults } from '../bench/lib/report'
import { memoryPerKey, slope, type BenchmarkResults, type EngineRun, type StageResult } from '../bench/lib/results'
import { groupedBarChart, niceCeiling } from '../bench/lib/svg'

const MiB = 1048576

function phase(name: string, operationsPerSecond: number, extra: Partial<PhaseResult> = {}): PhaseResult {
  const [workload, distribution] = name.split('-')
  const result: PhaseResult = {
    phase: workload as string,
    operations: 1000,
    seconds: 1000 / operationsPerSecond,
    operationsPerSecond,
    stoppedByTime: false,
    latency: { count: 1000, meanMicros: 100, p50Micros: 90, p99Micros: 400, p999Micros: 900, maxMicros: 1200 },
    latencyByKind: {},
    cpuMicrosPerOperation: 12.5,
    cpuUserMicros: 10_000,
    cpuSystemMicros: 2500,
    gets: 1000,
    notFound: 0,
    wrongValue: 0,
    deviceReads: null,
    io: { readBytes: 4096 * 1500, writeBytes: 0, readCalls: 1000, writeCalls: 0 },
    readsPerGet: 1.5,
    readsPerGetSource: 'proc-io',
    kibReadPerGet: 6,
    residentMaxBytes: 100 * MiB,
    memoryAtEnd: { residentBytes: 100 * MiB, residentPeakBytes: 120 * MiB, residentAnonymousBytes: 80 * MiB, residentFileBytes: 20 * MiB },
    recordsAfter: 3000,
    ...extra,
  }
  if (workload !== 'load' && workload !== 'probe') result.workload = workload as PhaseResult['workload']
  if (distribution !== undefined) result.distribution = distribution as PhaseResult['distribution']
  return result
}

function snapshot(residentMiB: number, diskBytes: number): Snapshot {
  return {
    memory: { residentBytes: residentMiB * MiB, residentPeakBytes: (residentMiB + 5) * MiB, residentAnonymousBytes: (residentMiB - 10) * MiB, residentFileBytes: 10 * MiB },
    disk: { allocatedBytes: diskBytes, apparentBytes: diskBytes, files: 3 },
    counters: {},
  }
}

/** Serving RSS grows by `bytesPerKey` per record from a 50 MiB base. */
function stages(bytesPerKey: number): StageResult[] {
  return [1000, 2000, 3000].map((records) => ({
    records,
    load: phase('load', 50_000, { gets: 0, readsPerGet: null, kibReadPerGet: null, recordsAfter: records }),
    loadComplete: true,
    flushSeconds: 0.1,
    afterLoad: snapshot(50 + (records * bytesPerKey) / MiB, records * 140),
    probe: phase('probe-uniform', 80_000),
    serving: snapshot(50 + (records * bytesPerKey) / MiB, records * 140),
    servingChargedBytes: 60 * MiB,
  }))
}

function run(engine: EngineId, label: string, throughput: Record<string, number>, bytesPerKey: number, engineReads: boolean): EngineRun {
  return {
    engine,
    label,
    valueSize: 100,
    status: 'completed',
    reason: null,
    version: '1.0.0',
    options: {},
    notes: [],
    baseline: null,
    stages: stages(bytesPerKey),
    workloads: Object.entries(throughput).map(([name, rate]) =>
      phase(name, rate, engineReads ? { deviceReads: 1010, readsPerGet: 1.01, readsPerGetSource: 'engine' } : {}),
    ),
    cgroup: null,
  }
}

function fixture(): BenchmarkResults {
  return {
    schema: 1,
    label: 'writer test fixture',
    partial: true,
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T01:00:00.000Z',
    command: 'npm run bench -- --records 1000,2000,3000',
    config: { ...FULL_RUN_DEFAULTS, recordStages: [1000, 2000, 3000], valueSizes: [100] },
    dataDirectory: '/var/tmp/bench',
    isolation: { memoryCgroup: true, memoryCgroupUnavailable: null, memoryLimitBytes: 512 * MiB, limitDuringLoads: false, dropCaches: true },
    machine: {
      cpuModel: 'Test CPU',
      logicalCores: 2,
      memoryBytes: 24 * 1024 * MiB,
      kernel: 'Linux 6.1',
      distribution: null,
      nodeVersion: 'v20.0.0',
      disk: { mount: null, blockDevice: '/dev/vda', sizeBytes: null, rotational: false, model: null, scheduler: null, readAheadKiB: 128 },
      packages: { cubbydb: '0.1.0' },
      cubbydbCommit: null,
      fioVersion: 'fio-3.33',
      loadAverage: [0.5, 0.4, 0.3],
    },
    device: {
      version: 'fio-3.33',
      target: '/var/tmp/bench/fio',
      spanBytes: 1024 * MiB,
      jobs: [
        { pattern: 'randread', queueDepth: 32, blockSizeBytes: 4096, ioEngine: 'io_uring', iops: 100_000, bandwidthBytesPerSecond: 400 * MiB, p50Micros: 300, p99Micros: 900, p999Micros: 2000, meanMicros: 320, seconds: 10 },
      ],
    },
    deviceSkipped: null,
    runs: [
      run('cubbydb-lz4', 'CubbyDB lz4', { 'C-uniform': 85_000, 'C-zipfian': 90_000, 'F-uniform': 40_000 }, 0, true),
      run('rocksdb', 'RocksDB', { 'C-uniform': 34_000, 'C-zipfian': 60_000, 'F-uniform': 20_000 }, 100, false),
      { ...run('lmdb', 'LMDB', {}, 0, false), status: 'skipped', reason: 'package lmdb does not load', stages: [] },
    ],
    notApplicable: [{ id: 'E', title: 'short ranges', reason: 'no key order' }],
  }
}

test('slope and memory per key recover a known linear growth', (t) => {
  t.is(slope([[1, 3], [2, 5], [3, 7]]), 2)
  t.throws(() => slope([[1, 1], [1, 2]]), { instanceOf: RangeError })
  const perKey = memoryPerKey(fixture().runs[1] as EngineRun)
  t.truthy(perKey)
  t.true(Math.abs((perKey?.residentBytesPerKey ?? 0) - 100) < 1e-6)
  t.is(memoryPerKey(fixture().runs[2] as EngineRun), null)
})

test('the targets are computed from the runs: ratios to RocksDB and to fio', (t) => {
  const rows = targetRows(fixture(), 100)
  const value = (figure: string) => rows.find((row) => row.figure.startsWith(figure))?.value
  t.is(value('GET/s (C uniform) ÷ fio'), 0.85)
  t.is(value('C uniform throughput ÷ RocksDB'), 2.5)
  t.is(value('C zipfian throughput ÷ RocksDB'), 1.5)
  t.is(value('F uniform throughput ÷ RocksDB'), 2)
  t.is(value('F zipfian throughput ÷ RocksDB'), null)
  t.is(value('CPU µs per GET'), 12.5)
  t.is(value('memory per extra key ÷'), 0)
  t.true(Math.abs((value('serving RSS ÷') ?? 0) - 50 / (50 + (3000 * 100) / MiB)) < 1e-12)
  t.true(Math.abs((value('disk ÷ key+value') ?? 0) - 140 / 124) < 1e-12)
})

test('results.md has the partial note, the rows with their figures, and marks estimated reads per GET', (t) => {
  const markdown = renderMarkdown(fixture())
  t.regex(markdown, /Partial run/)
  t.regex(markdown, /LMDB \(100 B\): skipped, package lmdb does not load/)
  t.regex(markdown, /\| CubbyDB lz4 \| C uniform \| 85,000 \| 90\.0 \| 400 \| 900 \| 12\.5 \| 1\.01 \|/)
  t.regex(markdown, /\| RocksDB \| C uniform \| 34,000 \| 90\.0 \| 400 \| 900 \| 12\.5 \| ≈1\.50 \|/)
  t.regex(markdown, /\| C uniform throughput ÷ RocksDB \| 2\.50 \| — \| ≥ 2 \|/)
  t.regex(markdown, /\| RocksDB \| 100 B \| 100\.00 \|/)
  t.regex(markdown, /\| random read \| 32 \| 100,000 \|/)
  t.regex(markdown, /Workload E/)
  t.notRegex(markdown, /NaN|undefined/)
})

test('results.json round-trips, and the charts are written as SVG with one bar per measured value', (t) => {
  const directory = mkdtempSync(join(tmpdir(), 'bench-report-'))
  try {
    const results = fixture()
    const written = writeResults(directory, results)
    t.deepEqual(written.map((path) => path.slice(directory.length + 1)).sort(), ['memory-100B.svg', 'results.json', 'results.md', 'throughput-100B.svg'])
    t.deepEqual(JSON.parse(readFileSync(join(directory, 'results.json'), 'utf8')), results)
    const bars = readFileSync(join(directory, 'throughput-100B.svg'), 'utf8')
    t.true(bars.startsWith('<svg') && bars.trimEnd().endsWith('</svg>'))
    t.is((bars.match(/<rect [^>]*><title>/g) ?? []).length, 2 * 4)
    const lines = readFileSync(join(directory, 'memory-100B.svg'), 'utf8')
    t.is((lines.match(/<circle /g) ?? []).length, 2 * 3)
  } finally {
    rmSync(directory, { recursive: true, force: true })
  }
})

test('a missing value draws no bar, and the axis ends on a round number above the largest', (t) => {
  const svg = groupedBarChart({ title: 'a < b', yLabel: 'ops', groups: ['x', 'y'], series: [{ name: 'e', values: [5, null] }] })
  t.is((svg.match(/<rect [^>]*><title>/g) ?? []).length, 1)
  t.regex(svg, /a &lt; b/)
  t.is(niceCeiling(73_685), 100_000)
  t.is(niceCeiling(120), 200)
  t.is(niceCeiling(2400), 2500)
})

test('the quick table puts engines side by side and says which were skipped', (t) => {
  const text = renderSideBySide(fixture(), 100)
  t.regex(text, /LMDB: skipped \(package lmdb does not load\)/)
  t.regex(text, /\|  \| CubbyDB lz4 \| RocksDB \|/)
  t.regex(text, /\| C uniform: GET\/s \| 85,000 \| 34,000 \|/)
  t.regex(text, /\| C uniform: reads\/GET \| 1\.01 \| ≈1\.50 \|/)
  t.regex(text, /\| charged to its cgroup, MiB \| 60\.0 \| 60\.0 \|/)
})
