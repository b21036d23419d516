/**
 * The shim's side of bench/shim.ts: 4 KiB random reads or writes through a
 * NativeVolume (so what is measured is what the engine gets), at a fixed
 * queue depth kept full by that many concurrent callers, each awaiting one
 * single-request batch at a time.
 */

import { createHistogram, performance } from 'node:perf_hooks'
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
  // Plain numbers (milliseconds) rather than hrtime.bigint(): BigInt
  // arithmetic here made V8 deoptimize this loop again and again.
  const deadline = performance.now() + seconds * 1000
  let completed = 0
  const cpuBefore = process.cpuUsage()
  const started = performance.now()

  async function caller(index: number): Promise<void> {
    const random = seededRandom(index * 7919 + 17)
    const buffer = volume.allocate(IO_BYTES)
    buffer.fill(index)
    const request = { offset: 0, length: IO_BYTES, buffer, bufferOffset: 0 }
    const batch = [request]
    for (;;) {
      const begin = performance.now()
      if (begin >= deadline) return
      request.offset = Math.floor(random() * slots) * IO_BYTES
      if (workload.operation === 'read') await volume.read(batch)
      else await volume.write(batch)
      histogram.record(Math.max(1, Math.round((performance.now() - begin) * 1e6)))
      completed++
    }
  }

  await Promise.all(Array.from({ length: workload.queueDepth }, (_, index) => caller(index)))
  const elapsedSeconds = (performance.now() - started) / 1000
  const cpu = process.cpuUsage(cpuBefore)
  return {
    iops: completed / elapsedSeconds,
    latencyMeanMicroseconds: histogram.mean / 1000,
    latencyP50Microseconds: histogram.percentile(50) / 1000,
    latencyP99Microseconds: histogram.percentile(99) / 1000,
    cpuMicrosecondsPerIo: (cpu.user + cpu.system) / completed,
  }
}
