/**
 * `npm run bench:render -- [results.json]`: rewrite results.md and the SVG
 * charts from a results.json that a run wrote (by default
 * bench/results/results.json), next to it. Nothing is measured or changed:
 * the tables and charts are derived again from the same measurements, e.g.
 * after the report's layout has changed.
 */

import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { log } from './lib/main'
import { packageRoot } from './lib/paths'
import { writeResults } from './lib/report'
import { RESULTS_SCHEMA_VERSION, type BenchmarkResults } from './lib/results'

function main(): void {
  const path = resolve(process.argv[2] ?? resolve(packageRoot(), 'bench', 'results', 'results.json'))
  const results = JSON.parse(readFileSync(path, 'utf8')) as BenchmarkResults
  if (results.schema !== RESULTS_SCHEMA_VERSION) {
    throw new Error(`${path} has results schema ${results.schema}; this report reads schema ${RESULTS_SCHEMA_VERSION}`)
  }
  for (const written of writeResults(dirname(path), results)) log(`wrote ${written}`)
}

main()
