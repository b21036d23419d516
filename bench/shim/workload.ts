/**
 * The shim's side of bench/shim.ts: 4 KiB random reads or writes through a
 * NativeVolume (so what is measured is what the engine gets), at a fixed
 * queue depth kept full by that many concurrent callers, each awaiting one
 * single-request batch at a time.
 */

import { createHistogram } from 'node:perf_hooks'
import { seededRandom, type NativeVolume } from '../../src/device'

export interface Workload {
  operation: 'read' | 'write'
  queueDepth: number
}

export interface WorkloadResult {
  iops: number
  latencyMeanMicroseconds: number
  latencyP50Microseconds: number
  latencyP99Microseconds: number
  /** Process CPU time per I/O (user + system), shim runs only. */
  cpuMicrosecondsPerIo?: number
}

export const IO_BYTES = 4096

/** Runs `workload` on `volume` for `seconds` and measures IOPS, latency and CPU per I/O. */
export async function runShim(volume: NativeVolume, workload: Workload, seconds: number): Promise<WorkloadResult> {
  const slots = Math.floor(volume.size / IO_BYTES)
  const histogram = createHistogram()
  const deadline = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9))
  let completed = 0
  const cpuBefore = process.cpuUsage()
  const started = process.hrtime.bigint()

  async function caller(index: number): Promise<void> {
    const random = seededRandom(index * 7919 + 17)
    const buffer = volume.allocate(IO_BYTES)
    buffer.fill(index)
    const request = { offset: 0, length: IO_BYTES, buffer, bufferOffset: 0 }
    const batch = [request]
    for (;;) {
      const begin = process.hrtime.bigint()
      if (begin >= deadline) return
      request.offset = Math.floor(random() * slots) * IO_BYTES
      if (workload.operation === 'read') await volume.read(batch)
      else await volume.write(batch)
      histogram.record(process.hrtime.bigint() - begin)
      completed++
    }
  }

  await Promise.all(Array.from({ length: workload.queueDepth }, (_, index) => caller(index)))
  const elapsedSeconds = Number(process.hrtime.bigint() - started) / 1e9
  const cpu = process.cpuUsage(cpuBefore)
  return {
    iops: completed / elapsedSeconds,
    latencyMeanMicroseconds: histogram.mean / 1000,
    latencyP50Microseconds: histogram.percentile(50) / 1000,
    latencyP99Microseconds: histogram.percentile(99) / 1000,
    cpuMicrosecondsPerIo: (cpu.user + cpu.system) / completed,
  }
}
