/**
 * fio, the reference the shim is measured against: installing it when
 * missing (Debian's package) and running one 4 KiB random workload on the
 * same file, with O_DIRECT and io_uring, the way bench/shim.ts runs the shim.
 */

import { execFileSync } from 'node:child_process'
import type { Workload, WorkloadResult } from './workload'

function hasFio(): boolean {
  try {
    execFileSync('fio', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Installs fio with apt-get when it is missing; `apt-get update` only if the first install fails. */
export function ensureFio(): void {
  if (hasFio()) return
  console.log('fio is missing: apt-get install -y fio')
  const install = () => execFileSync('apt-get', ['install', '-y', 'fio'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  try {
    install()
  } catch {
    execFileSync('apt-get', ['update'], { stdio: 'inherit' })
    install()
  }
  if (!hasFio()) throw new Error('fio could not be installed')
}

export function fioVersion(): string {
  return execFileSync('fio', ['--version'], { encoding: 'utf8' }).trim()
}

interface FioJob {
  read: FioDirection
  write: FioDirection
}

interface FioDirection {
  iops: number
  lat_ns: { mean: number; percentile?: Record<string, number> }
}

/** Runs `workload` with fio on `file` and returns what it measured (total latency: submission to completion). */
export function runFio(file: string, fileBytes: number, workload: Workload, seconds: number): WorkloadResult {
  const args = [
    '--name=cubbydb-shim-reference',
    `--filename=${file}`,
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
