/**
 * The hardware's own limit, measured in the same run: fio's 4 KiB random read
 * and random write with O_DIRECT, at the benchmark's queue depth, on a file on
 * the same file system as the engines' data (or on the /dev device itself).
 *
 * fio is installed from Debian's packages when it is missing and the
 * benchmark runs as root. The I/O engine is io_uring, or libaio where fio or
 * the kernel refuses io_uring. Results are read from fio's JSON output.
 */

import { execFileSync, spawnSync } from 'node:child_process'
import { isRoot } from './cgroup'

export interface FioJob {
  pattern: 'randread' | 'randwrite'
  queueDepth: number
  blockSizeBytes: number
  ioEngine: string
  iops: number
  bandwidthBytesPerSecond: number
  p50Micros: number | null
  p99Micros: number | null
  p999Micros: number | null
  meanMicros: number
  seconds: number
}

export interface FioResults {
  version: string
  target: string
  /** Bytes of the target exercised (the file size, or the device's size). */
  spanBytes: number | null
  jobs: FioJob[]
}

function fioVersion(): string | null {
  const probe = spawnSync('fio', ['--version'], { encoding: 'utf8' })
  if (probe.status !== 0 || probe.error !== undefined) return null
  return probe.stdout.trim()
}

/** The fio version, installing fio with apt-get when missing; or why there is none. */
export function ensureFio(log: (line: string) => void): { version: string } | { missing: string } {
  const present = fioVersion()
  if (present !== null) return { version: present }
  if (!isRoot()) return { missing: 'fio is not installed and installing it needs root (apt-get install -y fio)' }
  log('fio is missing; installing it with apt-get')
  const environment = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  let install = spawnSync('apt-get', ['install', '-y', 'fio'], { encoding: 'utf8', env: environment })
  if (install.status !== 0) {
    spawnSync('apt-get', ['update'], { encoding: 'utf8', env: environment })
    install = spawnSync('apt-get', ['install', '-y', 'fio'], { encoding: 'utf8', env: environment })
  }
  const installed = fioVersion()
  if (installed === null) return { missing: `apt-get install -y fio failed: ${(install.stderr ?? '').trim().split('\n').pop() ?? ''}` }
  return { version: installed }
}

interface FioJsonSide {
  iops: number
  bw_bytes: number
  clat_ns: { mean: number; percentile?: Record<string, number> }
  lat_ns: { mean: number }
  runtime: number
}

/** Pull one job's figures out of fio's JSON output. Exported for tests. */
export function parseFioJson(text: string, pattern: FioJob['pattern'], queueDepth: number, ioEngine: string): FioJob {
  const start = text.indexOf('{')
  if (start < 0) throw new Error('fio printed no JSON')
  const parsed = JSON.parse(text.slice(start)) as { jobs: Array<{ read: FioJsonSide; write: FioJsonSide; error?: number }> }
  const job = parsed.jobs[0]
  if (job === undefined) throw new Error('fio JSON has no job')
  if (job.error !== undefined && job.error !== 0) throw new Error(`fio job failed with error ${job.error}`)
  const side = pattern === 'randread' ? job.read : job.write
  const percentile = (key: string): number | null => {
    const value = side.clat_ns.percentile?.[key]
    return value === undefined ? null : value / 1000
  }
  return {
    pattern,
    queueDepth,
    blockSizeBytes: 4096,
    ioEngine,
    iops: side.iops,
    bandwidthBytesPerSecond: side.bw_bytes,
    p50Micros: percentile('50.000000'),
    p99Micros: percentile('99.000000'),
    p999Micros: percentile('99.900000'),
    meanMicros: side.lat_ns.mean / 1000,
    seconds: side.runtime / 1000,
  }
}

export interface FioRunOptions {
  target: string
  /** Size of the test file to lay out; null on a block device (use all of it). */
  sizeBytes: number | null
  queueDepth: number
  seconds: number
}

function runFioJob(options: FioRunOptions, pattern: FioJob['pattern'], ioEngine: string): FioJob {
  const fioArguments = [
    '--name=cubbydb-bench',
    `--filename=${options.target}`,
    `--rw=${pattern}`,
    '--bs=4k',
    '--direct=1',
    `--ioengine=${ioEngine}`,
    `--iodepth=${options.queueDepth}`,
    '--numjobs=1',
    '--time_based',
    `--runtime=${options.seconds}`,
    '--ramp_time=1',
    '--randrepeat=0',
    '--norandommap',
    '--output-format=json',
  ]
  if (options.sizeBytes !== null) fioArguments.push(`--size=${options.sizeBytes}`)
  const output = execFileSync('fio', fioArguments, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 << 20 })
  return parseFioJson(output, pattern, options.queueDepth, ioEngine)
}

/** Random read, then random write, at the given queue depth. */
export function measureDevice(options: FioRunOptions, version: string): FioResults {
  const jobs: FioJob[] = []
  for (const pattern of ['randread', 'randwrite'] as const) {
    let job: FioJob
    try {
      job = runFioJob(options, pattern, 'io_uring')
    } catch {
      job = runFioJob(options, pattern, 'libaio')
    }
    jobs.push(job)
  }
  return { version, target: options.target, spanBytes: options.sizeBytes, jobs }
}
