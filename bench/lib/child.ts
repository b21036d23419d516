/**
 * The engine side of the benchmark: the main loop of an engine's child
 * process.
 *
 * An engine runner (engines/<engine>.ts) calls `serveEngine` with its adapter.
 * The loop answers the parent's requests (lib/protocol.ts) one at a time:
 * open the engine, load a range of keys, run a workload, take a snapshot of
 * memory and disk, close. Each phase is measured here, inside the engine's
 * process: CPU time from process.cpuUsage (all threads), resident memory from
 * /proc/self/status sampled every 200 ms, I/O from /proc/self/io, and the
 * engine's own device-read counter where it has one.
 */

import { EngineUnavailable, type EngineAdapter, type EngineConfig } from '../engines/adapter'
import type { LogHistogram } from './histogram'
import { drive, limitOperations, type DriveOutcome, type OperationSource } from './driver'
import { ValueSource } from './keys'
import { diskUsage, readIoCounters, readMemoryStatus, subtractIo } from './procstats'
import type { LatencySummary, OpenResult, PhaseResult, Request, RequestEnvelope, ResponseEnvelope, RunSettings, Snapshot } from './protocol'
import { LoadStream, OPERATION_KINDS, OperationStream, WARMUP_SHARE_OF_PHASE_TIME, WORKLOADS } from './workloads'

const residentSampleMilliseconds = 200

export function summarizeLatency(histogram: LogHistogram): LatencySummary {
  const summary = histogram.summary()
  const micros = (nanoseconds: number): number | null => (Number.isFinite(nanoseconds) ? nanoseconds / 1000 : null)
  return {
    count: summary.count,
    meanMicros: micros(summary.mean),
    p50Micros: micros(summary.p50),
    p99Micros: micros(summary.p99),
    p999Micros: micros(summary.p999),
    maxMicros: micros(summary.maximum),
  }
}

class EngineSession {
  private readonly adapter: EngineAdapter
  private config: EngineConfig | undefined
  private settings: RunSettings | undefined
  private records = 0

  constructor(adapter: EngineAdapter) {
    this.adapter = adapter
  }

  private require(): { config: EngineConfig; settings: RunSettings } {
    if (this.config === undefined || this.settings === undefined) throw new Error('the engine is not open')
    return { config: this.config, settings: this.settings }
  }

  async handle(request: Request): Promise<unknown> {
    switch (request.kind) {
      case 'open': {
        const baseline = readMemoryStatus()
        const info = await this.adapter.open(request.config)
        this.config = request.config
        this.settings = request.settings
        const result: OpenResult = { ...info, baseline }
        return result
      }
      case 'load': {
        const { settings } = this.require()
        const source = new LoadStream(request.fromKey, request.toKey)
        const values = new ValueSource(settings.valueSize, settings.seed, `load/${request.fromKey}`)
        const result = await this.measure('load', undefined, () =>
          drive(this.adapter, source, { concurrency: settings.concurrency, maxSeconds: request.maxSeconds, keySize: settings.keySize, values }),
        )
        this.records = request.fromKey + result.operations
        result.recordsAfter = this.records
        return result
      }
      case 'flush': {
        const began = performance.now()
        await this.adapter.flush()
        return { seconds: (performance.now() - began) / 1000 }
      }
      case 'snapshot': {
        const { config } = this.require()
        const snapshot: Snapshot = {
          memory: readMemoryStatus(),
          disk: config.storeIsDevice ? null : diskUsage(config.directory),
          counters: this.adapter.counters(),
        }
        return snapshot
      }
      case 'run': {
        const { settings } = this.require()
        const spec = WORKLOADS[request.workload]
        const stream = new OperationStream({
          proportions: spec.proportions,
          distribution: request.distribution,
          existingRecords: request.existingRecords,
          seed: settings.seed,
          streamName: request.streamName,
          concurrency: settings.concurrency,
          theta: settings.theta,
        })
        const values = new ValueSource(settings.valueSize, settings.seed, `${request.streamName}/values`)
        const options = { concurrency: settings.concurrency, keySize: settings.keySize, values }
        if (request.warmupOperations > 0) {
          const warmup = limitOperations(stream, request.warmupOperations)
          await drive(this.adapter, warmup, { ...options, maxSeconds: request.maxSeconds * WARMUP_SHARE_OF_PHASE_TIME })
        }
        const measured: OperationSource = limitOperations(stream, request.operations)
        const result = await this.measure(request.workload, request.distribution, () =>
          drive(this.adapter, measured, { ...options, maxSeconds: request.maxSeconds }),
        )
        result.workload = request.workload
        this.records = stream.insertedUpTo
        result.recordsAfter = this.records
        return result
      }
      case 'close':
        await this.adapter.close()
        return {}
    }
  }

  private async measure(phase: string, distribution: PhaseResult['distribution'], body: () => Promise<DriveOutcome>): Promise<PhaseResult> {
    let residentMaxBytes = readMemoryStatus().residentBytes
    const sampler = setInterval(() => {
      residentMaxBytes = Math.max(residentMaxBytes, readMemoryStatus().residentBytes)
    }, residentSampleMilliseconds)
    const readsBefore = this.adapter.counters().deviceReads
    const ioBefore = readIoCounters()
    const cpuBefore = process.cpuUsage()
    let outcome: DriveOutcome
    try {
      outcome = await body()
    } finally {
      clearInterval(sampler)
    }
    const cpu = process.cpuUsage(cpuBefore)
    const io = subtractIo(readIoCounters(), ioBefore)
    const readsAfter = this.adapter.counters().deviceReads
    const memoryAtEnd = readMemoryStatus()
    residentMaxBytes = Math.max(residentMaxBytes, memoryAtEnd.residentBytes)
    const deviceReads = readsBefore !== undefined && readsAfter !== undefined ? readsAfter - readsBefore : null
    const gets = outcome.gets
    const latencyByKind: PhaseResult['latencyByKind'] = {}
    for (const kind of OPERATION_KINDS) {
      if (outcome.byKind[kind].count > 0) latencyByKind[kind] = summarizeLatency(outcome.byKind[kind])
    }
    const result: PhaseResult = {
      phase,
      operations: outcome.operations,
      seconds: outcome.seconds,
      operationsPerSecond: outcome.seconds > 0 ? outcome.operations / outcome.seconds : 0,
      stoppedByTime: outcome.stoppedByTime,
      latency: summarizeLatency(outcome.all),
      latencyByKind,
      cpuMicrosPerOperation: outcome.operations > 0 ? (cpu.user + cpu.system) / outcome.operations : 0,
      cpuUserMicros: cpu.user,
      cpuSystemMicros: cpu.system,
      gets,
      notFound: outcome.notFound,
      wrongValue: outcome.wrongValue,
      deviceReads,
      io,
      readsPerGet: gets === 0 ? null : deviceReads !== null ? deviceReads / gets : io.readBytes / 4096 / gets,
      readsPerGetSource: deviceReads !== null ? 'engine' : 'proc-io',
      kibReadPerGet: gets === 0 ? null : io.readBytes / 1024 / gets,
      residentMaxBytes,
      memoryAtEnd,
      recordsAfter: this.records,
    }
    if (distribution !== undefined) result.distribution = distribution
    return result
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.stack ?? error.message
  return String(error)
}

/** Run the request loop for `adapter` until the parent disconnects. */
export function serveEngine(adapter: EngineAdapter): void {
  if (process.send === undefined) {
    process.stderr.write('this is an engine runner for the benchmark; start it through `npm run bench`\n')
    process.exitCode = 2
    return
  }
  const session = new EngineSession(adapter)
  let queue: Promise<void> = Promise.resolve()
  const reply = (envelope: ResponseEnvelope): void => {
    process.send?.(envelope)
  }
  process.on('message', (message: RequestEnvelope) => {
    queue = queue.then(async () => {
      try {
        reply({ id: message.id, ok: true, result: await session.handle(message.request) })
      } catch (error) {
        const unavailable = error instanceof EngineUnavailable
        reply({ id: message.id, ok: false, error: unavailable ? (error as Error).message : describe(error), unavailable })
      }
    })
  })
  process.on('disconnect', () => {
    process.exit()
  })
}
