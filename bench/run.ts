/**
 * `npm run bench`: the full benchmark. YCSB load, A, B, C, F and D against
 * CubbyDB (lz4 and none), RocksDB, LMDB and LevelDB, each in its own process
 * and memory cgroup; the device's limit from fio in the same run; memory at
 * each record-count stage. Writes results.md, results.json and SVG charts to
 * bench/results/ (or --out). `npm run bench -- --help` lists the flags.
 */

import { FULL_RUN_DEFAULTS } from './lib/config'
import { log, runBenchmark } from './lib/main'
import { writeResults } from './lib/report'

async function main(): Promise<void> {
  const results = await runBenchmark(process.argv.slice(2), FULL_RUN_DEFAULTS, 'npm run bench --')
  if (results === null || results.config.outputDirectory === null) return
  for (const path of writeResults(results.config.outputDirectory, results)) log(`wrote ${path}`)
  if (results.partial) log('partial run: not every engine completed (see results.md)')
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exitCode = 1
})
