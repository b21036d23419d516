/**
 * Memory isolation for engine processes: cgroup v1 memory groups, and the
 * kernel's page cache.
 *
 * Each engine's child process runs in its own group under
 * /sys/fs/cgroup/memory (created here, removed after the child exits) whose
 * memory.limit_in_bytes is the benchmark's memory limit. In cgroup v1 that
 * limit covers the group's page cache as well as its anonymous memory, so an
 * engine that reads through the page cache (RocksDB, LevelDB, LMDB's map)
 * cannot hold more of its data in memory than the limit, and its reads of a
 * data set larger than the limit reach the device — as CubbyDB's direct I/O
 * always does. Dropping the page cache (`sync; echo 3 > drop_caches`) between
 * phases starts each one cold. Both need root; without it the benchmark runs
 * unisolated and says so in the results.
 */

import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export const MEMORY_CGROUP_ROOT = '/sys/fs/cgroup/memory'
const dropCachesPath = '/proc/sys/vm/drop_caches'

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0
}

/** Why memory cgroups cannot be used here, or null when they can. */
export function cgroupUnavailableReason(): string | null {
  if (!isRoot()) return 'not running as root'
  if (!existsSync(join(MEMORY_CGROUP_ROOT, 'memory.limit_in_bytes'))) return `no cgroup v1 memory controller at ${MEMORY_CGROUP_ROOT}`
  return null
}

export interface CgroupUsage {
  limitBytes: number
  /** memory.max_usage_in_bytes: the group's peak, page cache included. */
  peakBytes: number
  /** memory.failcnt: how often the group hit its limit (then reclaimed). */
  limitHits: number
  /** oom_kill from memory.oom_control: processes killed for memory. */
  oomKills: number
}

/** Read "name value" lines (memory.oom_control, memory.stat). Exported for tests. */
export function parseKeyValueLines(text: string): Record<string, number> {
  const values: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const [name, value] = line.trim().split(/\s+/)
    if (name !== undefined && name !== '' && value !== undefined) values[name] = Number(value)
  }
  return values
}

export class MemoryCgroup {
  readonly path: string
  readonly limitBytes: number

  private constructor(path: string, limitBytes: number) {
    this.path = path
    this.limitBytes = limitBytes
  }

  /** Create the group `name` with a memory limit. REQUIRES: cgroupUnavailableReason() === null. */
  static create(name: string, limitBytes: number): MemoryCgroup {
    const path = join(MEMORY_CGROUP_ROOT, name)
    mkdirSync(path)
    const group = new MemoryCgroup(path, limitBytes)
    try {
      writeFileSync(join(path, 'memory.limit_in_bytes'), String(limitBytes))
    } catch (error) {
      group.remove()
      throw error
    }
    return group
  }

  /**
   * Change the limit; null lifts it. Lowering it below the group's usage makes
   * the kernel reclaim (page cache first); if it cannot, the write fails with
   * EBUSY and this throws.
   */
  setLimit(limitBytes: number | null): void {
    writeFileSync(join(this.path, 'memory.limit_in_bytes'), limitBytes === null ? '-1' : String(limitBytes))
  }

  /** The group's memory in use now, page cache included. */
  usageBytes(): number {
    return this.readNumber('memory.usage_in_bytes')
  }

  /** Move a process (all its threads) into the group. */
  attach(pid: number): void {
    writeFileSync(join(this.path, 'cgroup.procs'), String(pid))
  }

  private readNumber(file: string): number {
    return Number(readFileSync(join(this.path, file), 'utf8').trim())
  }

  usage(): CgroupUsage {
    const oom = parseKeyValueLines(readFileSync(join(this.path, 'memory.oom_control'), 'utf8'))
    return {
      limitBytes: this.limitBytes,
      peakBytes: this.readNumber('memory.max_usage_in_bytes'),
      limitHits: this.readNumber('memory.failcnt'),
      oomKills: oom.oom_kill ?? 0,
    }
  }

  /** Remove the group. REQUIRES: no process is left in it. */
  remove(): void {
    if (existsSync(this.path)) rmdirSync(this.path)
  }
}

/** Write dirty pages back, then drop the page cache, dentries and inodes. */
export function dropCaches(): void {
  execFileSync('sync')
  writeFileSync(dropCachesPath, '3')
}
