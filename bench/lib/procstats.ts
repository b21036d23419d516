/**
 * What the kernel says about this process and its files.
 *
 * - `/proc/self/status`: VmRSS (resident now), VmHWM (peak resident),
 *   RssAnon and RssFile (anonymous vs file-backed resident pages; an mmap
 *   store such as LMDB shows up mostly in RssFile).
 * - `/proc/self/io`: read_bytes (bytes this process — all its threads —
 *   caused to be fetched from the block layer) and syscr (read system calls).
 *   For engines that do not count their own device reads, reads per GET are
 *   estimated from these, which is only an approximation (readahead, I/O done
 *   by kernel threads, and reads larger than 4 KiB all blur it).
 * - Disk use: a du-style walk summing st_blocks × 512 (allocated bytes; holes
 *   in sparse files cost nothing) and st_size (apparent bytes).
 */

import { lstatSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

export interface MemoryStatus {
  residentBytes: number
  residentPeakBytes: number
  residentAnonymousBytes: number
  residentFileBytes: number
}

export interface IoCounters {
  readBytes: number
  writeBytes: number
  readCalls: number
  writeCalls: number
}

export interface DiskUsage {
  allocatedBytes: number
  apparentBytes: number
  files: number
}

/** Parse "Name:   123 kB" lines into bytes. Exported for tests. */
export function parseStatusKilobytes(text: string, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB$`, 'm').exec(text)
  if (match === null) throw new Error(`/proc status has no ${field} field`)
  return Number(match[1]) * 1024
}

export function readMemoryStatus(): MemoryStatus {
  const text = readFileSync('/proc/self/status', 'utf8')
  return {
    residentBytes: parseStatusKilobytes(text, 'VmRSS'),
    residentPeakBytes: parseStatusKilobytes(text, 'VmHWM'),
    residentAnonymousBytes: parseStatusKilobytes(text, 'RssAnon'),
    residentFileBytes: parseStatusKilobytes(text, 'RssFile'),
  }
}

/** Parse the "name: value" lines of /proc/<pid>/io. Exported for tests. */
export function parseIoCounters(text: string): IoCounters {
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+)$`, 'm').exec(text)
    if (match === null) throw new Error(`/proc io has no ${name} field`)
    return Number(match[1])
  }
  return {
    readBytes: field('read_bytes'),
    writeBytes: field('write_bytes'),
    readCalls: field('syscr'),
    writeCalls: field('syscw'),
  }
}

export function readIoCounters(): IoCounters {
  return parseIoCounters(readFileSync('/proc/self/io', 'utf8'))
}

export function subtractIo(after: IoCounters, before: IoCounters): IoCounters {
  return {
    readBytes: after.readBytes - before.readBytes,
    writeBytes: after.writeBytes - before.writeBytes,
    readCalls: after.readCalls - before.readCalls,
    writeCalls: after.writeCalls - before.writeCalls,
  }
}

/** du-style usage of a file or directory tree (symbolic links not followed). */
export function diskUsage(path: string): DiskUsage {
  const usage: DiskUsage = { allocatedBytes: 0, apparentBytes: 0, files: 0 }
  const pending = [path]
  while (pending.length > 0) {
    const current = pending.pop() as string
    const stats = lstatSync(current)
    usage.allocatedBytes += stats.blocks * 512
    if (stats.isDirectory()) {
      for (const entry of readdirSync(current)) pending.push(join(current, entry))
    } else {
      usage.apparentBytes += stats.size
      usage.files++
    }
  }
  return usage
}
