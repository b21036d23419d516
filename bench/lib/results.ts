/**
 * The record of one benchmark run, as written to results.json, and the
 * figures derived from it (memory per key, ratios to RocksDB and to fio).
 * Derived figures are computed from the measured ones here, in one place, so
 * the markdown, the charts and the JSON cannot disagree.
 */

import type { EngineId } from '../engines/registry'
import type { CgroupUsage } from './cgroup'
import type { BenchConfig } from './config'
import type { FioResults } from './fio'
import type { MachineDescription } from './machine'
import type { MemoryStatus } from './procstats'
import type { PhaseResult, Snapshot } from './protocol'

export const RESULTS_SCHEMA_VERSION = 1

export interface StageResult {
  records: number
  load: PhaseResult
  /** False when the load stage hit --load-seconds before reaching `records`. */
  loadComplete: boolean
  flushSeconds: number
  afterLoad: Snapshot
  /** A short uniform read-only phase, for serving memory; null if the stage did not finish loading. */
  probe: PhaseResult | null
  /** Memory after the probe: the serving RSS at this record count. */
  serving: Snapshot | null
  /**
   * What the memory cgroup charged the engine after the probe (its anonymous
   * memory and the page cache it brought in), or null without a cgroup. Unlike
   * RSS it leaves out shared file pages charged to others, such as Node's own
   * code, and counts page cache the engine reads through but does not map.
   */
  servingChargedBytes: number | null
}

export type RunStatus = 'completed' | 'incomplete' | 'skipped' | 'failed'

export interface EngineRun {
  engine: EngineId
  label: string
  valueSize: number
  status: RunStatus
  /** Why the run was skipped, failed or is incomplete; null when completed. */
  reason: string | null
  version: string | null
  options: Record<string, unknown> | null
  notes: string[]
  baseline: MemoryStatus | null
  stages: StageResult[]
  workloads: PhaseResult[]
  cgroup: CgroupUsage | null
}

export interface Isolation {
  memoryCgroup: boolean
  /** Why there is no memory cgroup, when there is none. */
  memoryCgroupUnavailable: string | null
  memoryLimitBytes: number | null
  /** Whether the limit also held while loading (otherwise it starts after each load). */
  limitDuringLoads: boolean
  dropCaches: boolean
}

export interface BenchmarkResults {
  schema: number
  label: string
  /** True unless every configured engine completed every stage and workload. */
  partial: boolean
  startedAt: string
  finishedAt: string
  command: string
  config: BenchConfig
  dataDirectory: string
  isolation: Isolation
  machine: MachineDescription
  device: FioResults | null
  /** Why the device was not measured, when it was not. */
  deviceSkipped: string | null
  runs: EngineRun[]
  notApplicable: ReadonlyArray<{ id: string; title: string; reason: string }>
}

export interface MemoryPerKey {
  /** Least-squares slope of serving RSS against record count, bytes per key. */
  residentBytesPerKey: number
  /** The same for anonymous memory only (leaves out mapped file pages). */
  anonymousBytesPerKey: number
  points: number
}

/** Least-squares slope of y on x. REQUIRES: at least two distinct x. */
export function slope(points: ReadonlyArray<readonly [number, number]>): number {
  const count = points.length
  const meanX = points.reduce((sum, [x]) => sum + x, 0) / count
  const meanY = points.reduce((sum, [, y]) => sum + y, 0) / count
  let numerator = 0
  let denominator = 0
  for (const [x, y] of points) {
    numerator += (x - meanX) * (y - meanY)
    denominator += (x - meanX) * (x - meanX)
  }
  if (denominator === 0) throw new RangeError('a slope needs at least two distinct x values')
  return numerator / denominator
}

export function memoryPerKey(run: EngineRun): MemoryPerKey | null {
  const served = run.stages.filter((stage): stage is StageResult & { serving: Snapshot } => stage.serving !== null)
  if (served.length < 2) return null
  return {
    residentBytesPerKey: slope(served.map((stage) => [stage.records, stage.serving.memory.residentBytes] as const)),
    anonymousBytesPerKey: slope(served.map((stage) => [stage.records, stage.serving.memory.residentAnonymousBytes] as const)),
    points: served.length,
  }
}

export function workloadKey(phase: PhaseResult): string {
  return phase.distribution === undefined ? phase.phase : `${phase.phase}-${phase.distribution}`
}

export function findWorkload(run: EngineRun | undefined, key: string): PhaseResult | undefined {
  return run?.workloads.find((phase) => workloadKey(phase) === key)
}

export function findRun(results: BenchmarkResults, engine: EngineId, valueSize: number): EngineRun | undefined {
  return results.runs.find((run) => run.engine === engine && run.valueSize === valueSize)
}

/** The random-read IOPS fio measured, or null. */
export function deviceReadIops(results: BenchmarkResults): number | null {
  return results.device?.jobs.find((job) => job.pattern === 'randread')?.iops ?? null
}

/** The stage with the most records that has a serving snapshot. */
export function lastServedStage(run: EngineRun): StageResult | undefined {
  return [...run.stages].reverse().find((stage) => stage.serving !== null)
}
