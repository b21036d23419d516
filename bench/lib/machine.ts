/**
 * A description of the machine a run was taken on, recorded with its
 * results: CPU, cores, memory, kernel, the disk and file system under the
 * data directory, Node and the versions of every package measured.
 */

import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import * as os from 'node:os'
import { installedVersion, packageRoot } from './paths'

export interface MountInfo {
  mountPoint: string
  fileSystem: string
  source: string
  majorMinor: string
}

export interface DiskDescription {
  mount: MountInfo | null
  blockDevice: string | null
  sizeBytes: number | null
  rotational: boolean | null
  model: string | null
  scheduler: string | null
  /** The device's read-ahead: how much a page-cache miss may read around it. */
  readAheadKiB: number | null
}

export interface MachineDescription {
  cpuModel: string
  logicalCores: number
  memoryBytes: number
  kernel: string
  distribution: string | null
  nodeVersion: string
  disk: DiskDescription
  packages: Record<string, string | null>
  cubbydbCommit: string | null
  fioVersion: string | null
  /** 1, 5 and 15 minute load averages when the run began: others' work makes figures noisy. */
  loadAverage: number[]
}

/** The mount holding `path`, from /proc/self/mountinfo text. Exported for tests. */
export function mountFor(path: string, mountInfoText: string): MountInfo | null {
  let best: MountInfo | null = null
  for (const line of mountInfoText.split('\n')) {
    const separator = line.indexOf(' - ')
    if (separator < 0) continue
    const before = line.slice(0, separator).split(' ')
    const after = line.slice(separator + 3).split(' ')
    const mountPoint = (before[4] ?? '').replace(/\\040/g, ' ')
    const inside = path === mountPoint || path.startsWith(mountPoint.endsWith('/') ? mountPoint : `${mountPoint}/`)
    if (!inside || (best !== null && best.mountPoint.length > mountPoint.length)) continue
    best = { mountPoint, fileSystem: after[0] ?? '', source: after[1] ?? '', majorMinor: before[2] ?? '' }
  }
  return best
}

function readTrimmed(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim()
  } catch {
    return null
  }
}

/**
 * The disk under `path`: a /dev block device itself, or the device holding
 * the file system that `path` is on.
 */
export function describeDisk(path: string): DiskDescription {
  const existing = existsSync(path) ? realpathSync(path) : resolve(path)
  const isDevice = existsSync(existing) && statSync(existing).isBlockDevice()
  const mount = isDevice ? null : mountFor(existing, readTrimmed('/proc/self/mountinfo') ?? '')
  const description: DiskDescription = { mount, blockDevice: null, sizeBytes: null, rotational: null, model: null, scheduler: null, readAheadKiB: null }
  const sysfsPath = isDevice ? `/sys/class/block/${basename(existing)}` : mount === null ? null : `/sys/dev/block/${mount.majorMinor}`
  if (sysfsPath === null || !existsSync(sysfsPath)) return description
  let deviceDirectory = realpathSync(sysfsPath)
  if (existsSync(join(deviceDirectory, 'partition'))) deviceDirectory = join(deviceDirectory, '..')
  const device = basename(deviceDirectory)
  const sectors = readTrimmed(join(deviceDirectory, 'size'))
  const rotational = readTrimmed(join(deviceDirectory, 'queue', 'rotational'))
  const scheduler = readTrimmed(join(deviceDirectory, 'queue', 'scheduler'))
  const readAhead = readTrimmed(join(deviceDirectory, 'queue', 'read_ahead_kb'))
  let model = readTrimmed(join(deviceDirectory, 'device', 'model'))
  if (model === null && existsSync(join(deviceDirectory, 'device', 'driver'))) {
    model = `${basename(realpathSync(join(deviceDirectory, 'device', 'driver')))} device`
  }
  return {
    mount,
    blockDevice: `/dev/${device}`,
    sizeBytes: sectors === null ? null : Number(sectors) * 512,
    rotational: rotational === null ? null : rotational === '1',
    model,
    scheduler: scheduler === null ? null : (/\[(\S+)\]/.exec(scheduler)?.[1] ?? scheduler),
    readAheadKiB: readAhead === null ? null : Number(readAhead),
  }
}

function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: packageRoot(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return null
  }
}

function distributionName(): string | null {
  const release = readTrimmed('/etc/os-release')
  if (release === null) return null
  return /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(release)?.[1] ?? null
}

export const MEASURED_PACKAGES = ['@nxtedition/rocksdb', 'lmdb', 'classic-level', 'lz4-napi'] as const

export function describeMachine(dataPath: string, fioVersion: string | null): MachineDescription {
  const packages: Record<string, string | null> = {
    cubbydb: (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version,
  }
  for (const name of MEASURED_PACKAGES) packages[name] = installedVersion(name)
  return {
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    logicalCores: os.cpus().length,
    memoryBytes: os.totalmem(),
    kernel: `${os.type()} ${os.release()}`,
    distribution: distributionName(),
    nodeVersion: process.version,
    disk: describeDisk(dataPath),
    packages,
    cubbydbCommit: gitCommit(),
    fioVersion,
    loadAverage: os.loadavg(),
  }
}
