/**
 * Checking and salvaging a closed store: the library behind `cubby check`
 * and `cubby salvage` (docs/reliability.md says what each verifies).
 *
 * checkStore() opens the store read-only and never writes to it. It reads
 * the store as a read-only open would (newest superblock, journal images,
 * the logs rolled forward in memory), so what an open repairs by itself
 * after a crash is counted, not reported; then it verifies every checksum
 * and structure, top to bottom:
 *  - lz4 mode: the header, both checkpoint slots, every map page, every
 *    segment's chunks and records, the segment table against the map
 *    (src/check/compressed.ts);
 *  - both modes: both superblocks, the flush journals, the bitmap, the log,
 *    every bucket and overflow chain (entries parse, fingerprints match the
 *    keys' hashes, keys belong to their bucket under the linear-hashing
 *    state, no key twice), every value extent (range, CRC, double use), the
 *    superblock's counts, and the bitmap against what the chains reference
 *    (leaks and double use) (src/check/engine.ts).
 * A report is healthy only when it lists no problem. Problems are listed up
 * to a bound and counted beyond it.
 *
 * salvageStore() copies every pair whose block verifies (and whose value
 * checks) into a new store, and reports what it could not read
 * (src/check/salvage.ts).
 *
 * Errors: a path that cannot be opened throws (CUBBY_NOT_A_STORE when it does
 * not exist, CUBBY_IO, CUBBY_LOCKED while a writer holds it); what is wrong
 * inside the store is never thrown, it is reported. Any other exception is a
 * bug in the checker.
 */

import * as fs from 'node:fs'
import { CubbyError, ErrorCode, invalidArgument, type CubbyErrorCode } from './errors'
import { type CubbyDB, type OpenOptions, openOnVolume } from './db'
import { openFileVolume } from './device/file'
import { probeVolume } from './device/open'
import { RawBlockDevice } from './device/raw'
import type { BlockDevice, Volume } from './device/types'
import { BorrowedVolume } from './check/borrowed'
import { CompressedInspector } from './check/compressed'
import { StoreInspector } from './check/engine'
import { Findings, Progress } from './check/findings'
import { salvageDevice } from './check/salvage'

/** One thing wrong in a store: which structure, where, and a CubbyError code. */
export interface CheckProblem {
  /** 'superblock' | 'journal' | 'log' | 'bucket' | 'overflow' | 'extent' | 'bitmap' | 'lz4-header' | 'lz4-checkpoint' | 'lz4-map' | 'lz4-segment' */
  structure: string
  /** Where: e.g. 'LBA 1234', 'bucket 17 (LBA 1251)', 'segment 5 +0x3a00'. */
  location: string
  /** The error code a read of it would fail with: CUBBY_CORRUPT mostly; CUBBY_NOT_A_STORE, CUBBY_VERSION, CUBBY_IO. */
  code: CubbyErrorCode
  /** What is wrong, for people. */
  message: string
}

/** What checkStore() found: healthy only when it lists no problem. */
export interface CheckReport {
  /** The path (or volume path) checked. */
  path: string
  /** No problem was found. */
  healthy: boolean
  /** The store's compression mode, as its first bytes say ('none' when they say nothing). */
  mode: 'lz4' | 'none'
  /** The problems found, up to 1000 (more are counted under counts['problems not listed']). */
  problems: CheckProblem[]
  /** What was checked (blocks, buckets, entries, keys, overflow blocks, extents, …) and what an open would still do. */
  counts: Record<string, number>
}

/** Options of checkStore() and salvageStore(). */
export interface CheckOptions {
  /** Called as the check advances, in units of buckets, map pages and segments. */
  onProgress?: (done: number, total: number) => void
}

/** What salvageStore() copied and what it could not read. */
export interface SalvageReport {
  /** The damaged store read. */
  from: string
  /** The new store written. */
  to: string
  /** Pairs copied into the new store. */
  pairs: number
  /** Pairs known to be lost (a lower bound: see src/check/salvage.ts). */
  unreadable: number
  /** The damaged structures met on the way (up to 1000). */
  problems: CheckProblem[]
}

/** Checks the closed store at `path` (an image file or a block device) without writing to it. */
export async function checkStore(path: string, options: CheckOptions = {}): Promise<CheckReport> {
  const volume = await openSource(path)
  try {
    return await checkVolume(volume, options)
  } finally {
    await volume.close()
  }
}

/** checkStore on an open volume (tests, tools); the volume stays open. */
export async function checkVolume(volume: Volume, options: CheckOptions = {}): Promise<CheckReport> {
  const findings = new Findings()
  const progress = new Progress(options.onProgress, 0)
  const opened = await openDeviceOf(volume, findings, progress)
  if (opened.device !== undefined) {
    try {
      findings.count('blocks', opened.device.blockCount)
      const inspector = new StoreInspector(opened.device, findings, 'check')
      if (await inspector.openStructures()) {
        progress.total += inspector.buckets
        await inspector.walk(progress, async () => undefined)
      }
    } finally {
      await opened.device.close()
    }
  }
  progress.finish()
  return { path: volume.path, healthy: findings.total === 0, mode: opened.mode, problems: findings.problems, counts: findings.counts }
}

/**
 * Copies every readable pair of the store at `from` into a new store at
 * `to` (which must not exist, or be empty), and reports what it could not
 * read. `options.open` are the new store's open options (its sizing hints
 * default to the source's key count, its compression to the source's).
 */
export async function salvageStore(from: string, to: string, options: CheckOptions & { open?: OpenOptions } = {}): Promise<SalvageReport> {
  if (fs.existsSync(to) && fs.statSync(to).isFile() && fs.statSync(to).size > 0) {
    throw invalidArgument(`salvage writes a new store, and ${to} already holds data`)
  }
  const source = await openSource(from)
  try {
    const target = await openFileVolume(to, { create: true })
    // A block device has no "non-empty" size to refuse: what decides is whether it holds anything.
    const content = await probeVolume(target).catch(async (error: unknown) => {
      await target.close()
      throw error
    })
    if (content !== 'empty') {
      await target.close()
      throw invalidArgument(`salvage writes a new store, and ${to} already holds data (${content === 'other' ? 'not zeros' : 'a store'}); it never merges into one`)
    }
    return await salvageVolume(source, target, options)
  } finally {
    await source.close()
  }
}

/** salvageStore between open volumes (tests, tools). `from` stays open; `to` belongs to the new store and is closed with it. */
export async function salvageVolume(from: Volume, to: Volume, options: CheckOptions & { open?: OpenOptions } = {}): Promise<SalvageReport> {
  const findings = new Findings()
  const progress = new Progress(options.onProgress, 0)
  let opened: { mode: 'lz4' | 'none'; device: BlockDevice | undefined }
  try {
    opened = await openDeviceOf(from, findings, progress)
  } catch (error) {
    await to.close().catch(() => undefined)
    throw error
  }
  try {
    const openTarget = (expectedKeys: number): Promise<CubbyDB> =>
      openOnVolume(to, { expectedKeys: Math.max(1000, expectedKeys), compression: opened.mode, ...options.open, create: true }, { fresh: to.size === 0 })
    const counts = await salvageDevice(opened.device, openTarget, findings, progress)
    progress.finish()
    return { from: from.path, to: to.path, pairs: counts.pairs, unreadable: counts.unreadable, problems: findings.problems }
  } finally {
    await opened.device?.close()
  }
}

async function openSource(path: string): Promise<Volume> {
  if (typeof path !== 'string' || path.length === 0) throw invalidArgument('a store path is needed')
  if (!fs.existsSync(path)) throw new CubbyError(ErrorCode.NOT_A_STORE, `${path} does not exist`, { path })
  return openFileVolume(path, { readOnly: true })
}

/** Decides the mode and opens the block device (read-only, on a borrowed view); checks the lz4 layer on the way. */
async function openDeviceOf(volume: Volume, findings: Findings, progress: Progress): Promise<{ mode: 'lz4' | 'none'; device: BlockDevice | undefined }> {
  let content
  try {
    content = await probeVolume(volume)
  } catch (error) {
    findings.fromError('superblock', 'volume byte 0', error)
    return { mode: 'none', device: undefined }
  }
  if (content === 'empty') {
    findings.add('superblock', 'volume byte 0', ErrorCode.NOT_A_STORE, `${volume.path} is empty: it holds no store`)
    return { mode: 'none', device: undefined }
  }
  if (content === 'lz4') return { mode: 'lz4', device: await new CompressedInspector(volume, findings).inspect(progress) }
  try {
    return { mode: 'none', device: new RawBlockDevice(new BorrowedVolume(volume)) }
  } catch (error) {
    findings.fromError('superblock', 'volume byte 0', error)
    return { mode: 'none', device: undefined }
  }
}
