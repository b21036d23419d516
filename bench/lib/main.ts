/**
 * What the two entry points (run.ts, quick.ts) share: parse flags, run the
 * orchestrator with cleanup on SIGINT/SIGTERM, and report usage errors
 * plainly.
 */

import { join, resolve } from 'node:path'
import { parseArguments, USAGE, UsageError, type BenchConfig } from './config'
import { Orchestrator } from './orchestrator'
import { packageRoot } from './paths'
import type { BenchmarkResults } from './results'

const log = (line: string): void => {
  process.stderr.write(`${line}\n`)
}

/** Parse argv over `defaults` and run; null when only usage was printed or the flags were bad. */
export async function runBenchmark(argv: readonly string[], defaults: BenchConfig, commandName: string): Promise<BenchmarkResults | null> {
  let config: BenchConfig | null
  try {
    config = parseArguments(argv, defaults)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    process.stderr.write(`${error.message}\n\n${USAGE}`)
    process.exitCode = 2
    return null
  }
  if (config === null) {
    process.stdout.write(USAGE)
    return null
  }
  if (config.outputDirectory !== null) config.outputDirectory = resolve(packageRoot(), config.outputDirectory)
  const orchestrator = new Orchestrator({ config, log, enginesDirectory: join(__dirname, '..', 'engines') })
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${signal}: stopping the engine and removing its data and cgroup`)
    void orchestrator.interrupt().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    return await orchestrator.run([commandName, ...argv].join(' '))
  } finally {
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
  }
}

export { log }
