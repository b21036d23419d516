/**
 * The messages between the benchmark's parent process and an engine's child
 * process, and the result records both sides share.
 *
 * The parent sends one request at a time, each with an id; the child answers
 * it with the same id. Requests run in the order sent, one after another.
 * Everything here is plain JSON data (it crosses the IPC channel).
 */

import type { EngineConfig, EngineCounters } from '../engines/adapter'
import type { DiskUsage, IoCounters, MemoryStatus } from './procstats'
import type { KeyDistribution, OperationKind, WorkloadId } from './workloads'

export interface RunSettings {
  seed: number
  concurrency: number
  keySize: number
  valueSize: number
  theta: number
}

export type Request =
  | { kind: 'open'; config: EngineConfig; settings: RunSettings }
  | { kind: 'load'; fromKey: number; toKey: number; maxSeconds: number }
  | { kind: 'flush' }
  | { kind: 'snapshot' }
  | {
      kind: 'run'
      workload: WorkloadId
      distribution: KeyDistribution
      existingRecords: number
      warmupOperations: number
      operations: number
      maxSeconds: number
      /** Names the operation stream; equal names give equal operations. */
      streamName: string
    }
  | { kind: 'close' }

export interface RequestEnvelope {
  id: number
  request: Request
}

export type ResponseEnvelope =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: string; unavailable: boolean }

/** Latency percentiles in microseconds (nearest rank, see histogram.ts). */
export interface LatencySummary {
  count: number
  meanMicros: number | null
  p50Micros: number | null
  p99Micros: number | null
  p999Micros: number | null
  maxMicros: number | null
}

export type ReadsPerGetSource = 'engine' | 'proc-io'

export interface PhaseResult {
  /** "load", "probe", or the workload id. */
  phase: string
  workload?: WorkloadId
  distribution?: KeyDistribution
  operations: number
  seconds: number
  operationsPerSecond: number
  /** True when the time limit ended the phase before its operation count. */
  stoppedByTime: boolean
  latency: LatencySummary
  latencyByKind: Partial<Record<OperationKind, LatencySummary>>
  /** Process CPU time (user + system, all threads) per operation. */
  cpuMicrosPerOperation: number
  cpuUserMicros: number
  cpuSystemMicros: number
  gets: number
  notFound: number
  wrongValue: number
  /** Engine-counted device reads during the phase, when the engine counts them. */
  deviceReads: number | null
  /** /proc/self/io deltas over the phase. */
  io: IoCounters
  /** Device reads per GET: engine-counted, or read_bytes / 4096 / gets from /proc. */
  readsPerGet: number | null
  readsPerGetSource: ReadsPerGetSource
  /** Bytes fetched from the block layer per GET, from /proc/self/io (every engine). */
  kibReadPerGet: number | null
  residentMaxBytes: number
  memoryAtEnd: MemoryStatus
  /** Keys that exist after the phase (inserts included). */
  recordsAfter: number
}

export interface Snapshot {
  memory: MemoryStatus
  /** Disk use of the engine's directory (or image file); null on a block device. */
  disk: DiskUsage | null
  counters: EngineCounters
}

export interface OpenResult {
  options: Record<string, unknown>
  notes: string[]
  /** The child's memory before the engine was loaded: Node itself and the harness. */
  baseline: MemoryStatus
}
