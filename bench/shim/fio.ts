/**
 * fio, the reference the shim is measured against: one 4 KiB random workload
 * on the same file, with O_DIRECT and io_uring, the way bench/shim.ts runs
 * the shim (installing fio is bench/lib/fio.ts's ensureFio). Unlike the
 * engine benchmark, which reads fio's completion latency, this compares total
 * latency (submission to completion, --lat_percentiles), since that is what a
 * caller of the shim waits.
 */

import { execFileSync } from 'node:child_process'
import type { Workload, WorkloadResult } from './workload'

interface FioJob {
  read: FioDirection
  write: FioDirection
}

interface FioDirection {
  iops: number
  lat_ns: { mean: number; percentile?: Record<string, number> }
}

/**
 * Runs `workload` with fio on `file` (its bytes [offset, offset + fileBytes))
 * and returns what it measured (total latency: submission to completion).
 */
export function runFio(file: string, fileBytes: number, workload: Workload, seconds: number, offset = 0): WorkloadResult {
  const args = [
    '--name=cubbydb-shim-reference',
    `--filename=${file}`,
    `--offset=${offset}`,
    `--size=${fileBytes}`,
    `--rw=${workload.operation === 'read' ? 'randread' : 'randwrite'}`,
    '--bs=4k',
    '--direct=1',
    '--ioengine=io_uring',
    `--iodepth=${workload.queueDepth}`,
    '--numjobs=1',
    `--runtime=${seconds}`,
    '--time_based=1',
    '--norandommap=1',
    '--randrepeat=0',
    '--lat_percentiles=1',
    '--percentile_list=50:99',
    '--output-format=json',
  ]
  const report = JSON.parse(execFileSync('fio', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })) as { jobs: FioJob[] }
  const job = report.jobs[0]!
  const direction = workload.operation === 'read' ? job.read : job.write
  const percentile = (name: string) => (direction.lat_ns.percentile?.[name] ?? Number.NaN) / 1000
  return {
    iops: direction.iops,
    latencyMeanMicroseconds: direction.lat_ns.mean / 1000,
    latencyP50Microseconds: percentile('50.000000'),
    latencyP99Microseconds: percentile('99.000000'),
  }
}
