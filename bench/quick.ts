/**
 * `npm run bench:quick`: the quick version of the benchmark, a minute or two.
 * Loads 1M keys into CubbyDB (lz4) and RocksDB, each in its own process (and
 * memory cgroup when root), runs uniform and zipfian reads, and prints memory,
 * disk use, throughput and reads per GET side by side. When the CubbyDB
 * engine is not built it says so and runs RocksDB alone. Writes no files
 * unless --out names a directory (then results.md, results.json and charts,
 * as the full run does; `cubby bench --json` relies on it); takes the same
 * flags as the full run.
 */

import { FULL_RUN_DEFAULTS, type BenchConfig } from './lib/config'
import { log, runBenchmark } from './lib/main'
import { renderSideBySide, writeResults } from './lib/report'

const QUICK_DEFAULTS: BenchConfig = {
  ...FULL_RUN_DEFAULTS,
  engines: ['cubbydb-lz4', 'rocksdb'],
  recordStages: [1_000_000],
  valueSizes: [100],
  workloads: ['C'],
  operations: 200_000,
  warmupOperations: 20_000,
  probeOperations: 20_000,
  phaseSeconds: 20,
  loadSeconds: 300,
  fio: false,
  outputDirectory: null,
  label: 'quick run',
}

async function main(): Promise<void> {
  const results = await runBenchmark(process.argv.slice(2), QUICK_DEFAULTS, 'npm run bench:quick --')
  if (results === null) return
  for (const valueSize of results.config.valueSizes) {
    process.stdout.write(`\n${valueSize}-byte values, ${results.config.concurrency} operations outstanding\n\n${renderSideBySide(results, valueSize)}`)
  }
  if (results.config.outputDirectory !== null) for (const path of writeResults(results.config.outputDirectory, results)) log(`wrote ${path}`)
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exitCode = 1
})
