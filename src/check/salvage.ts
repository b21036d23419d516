/**
 * Salvage: copy every pair that can still be read from a damaged store into
 * a new one.
 *
 * The source is read the way a read-only open reads it (newest valid
 * superblock, journal images, the log after the checkpoint) but nothing
 * stops the walk: every bucket chain is visited, and the entries of every
 * block that verifies are copied, with their values (an extent's value only
 * when its CRC holds). Nothing unverified is ever copied: a damaged block's
 * entries are lost, not guessed. Records of the log after the checkpoint
 * win over bucket entries they are newer than, as in recovery.
 *
 * `unreadable` counts the pairs known to be lost: entries that the headers
 * of damaged blocks still claim, and values whose extents fail their CRC. A
 * block too damaged to say how many entries it held adds nothing, so the
 * count is a lower bound; the problems list every damaged structure.
 *
 * Memory: the inspector's batch of chains, the replayed log, at most
 * WRITES_IN_FLIGHT writes to the target, and a map from the buckets the log
 * touches to their chains' LSNs (bounded by the log).
 *
 * Who calls it: src/check.ts.
 */

import { CubbyError } from '../errors'
import type { CubbyDB } from '../db'
import type { BlockDevice } from '../device/types'
import { bucketOf, hashKey, newKeyHash } from '../engine/hash'
import type { ExtentPointer } from '../engine/bucket'
import type { Findings, Progress } from './findings'
import { type ChainVisit, StoreInspector, printableKey } from './engine'

/** Writes to the target store awaited together. */
const WRITES_IN_FLIGHT = 64

export interface SalvageCounts {
  pairs: number
  unreadable: number
}

/**
 * Copies what `device` holds into the store `openTarget` opens (given the
 * source's key count as a sizing hint), and closes it. The target is opened
 * even when nothing can be read, so a salvage always leaves a store behind.
 */
export async function salvageDevice(
  device: BlockDevice | undefined,
  openTarget: (expectedKeys: number) => Promise<CubbyDB>,
  findings: Findings,
  progress?: Progress,
): Promise<SalvageCounts> {
  const inspector = device === undefined ? undefined : new StoreInspector(device, findings, 'salvage')
  const readable = inspector !== undefined && (await inspector.openStructures())
  const target = await openTarget(readable ? inspector.superblock!.keys : 0)
  try {
    if (readable && progress !== undefined) progress.total += inspector.buckets
    const counts = readable ? await copyPairs(inspector, target, findings, progress) : { pairs: 0, unreadable: 0 }
    await target.close()
    return counts
  } finally {
    await target.close().catch(() => undefined)
  }
}

async function copyPairs(inspector: StoreInspector, target: CubbyDB, findings: Findings, progress: Progress | undefined): Promise<SalvageCounts> {
  const superblock = inspector.superblock!
  const replay = inspector.replay
  const counts = { pairs: 0, unreadable: 0 }
  const hash = newKeyHash()
  const writes = new Set<Promise<void>>()
  const put = async (key: Buffer, value: Buffer): Promise<void> => {
    const write = target.put(key, value, { sync: false })
    writes.add(write)
    void write.finally(() => writes.delete(write)).catch(() => undefined)
    counts.pairs++
    if (writes.size >= WRITES_IN_FLIGHT) await Promise.race(writes)
  }
  const valueOf = async (key: Buffer, inline: Buffer | undefined, extent: ExtentPointer | undefined, where: string): Promise<Buffer | undefined> => {
    if (inline !== undefined) return inline
    const value = await inspector.readExtent(extent!)
    if (value instanceof CubbyError) {
      counts.unreadable++
      findings.fromError('extent', `extent of key ${printableKey(key)} ${where} (LBA ${extent!.lba})`, value)
      return undefined
    }
    return value
  }

  // The buckets the log touches: their chains' LSNs decide whether a log record is newer.
  const chainLsns = new Map<number, number>()
  if (replay !== undefined) {
    for (const at of replay.liveOffsets()) {
      const bucket = bucketOf(replay.bucketHashAt(at), superblock.initialBuckets, superblock.level, superblock.splitPointer)
      chainLsns.set(bucket, -1)
    }
  }
  await inspector.walk(progress, async (chain: ChainVisit) => {
    counts.unreadable += chain.lostEntries
    if (chainLsns.has(chain.bucket)) chainLsns.set(chain.bucket, chain.broken && chain.entries.length === 0 ? -1 : chain.lsn)
    for (const entry of chain.entries) {
      if (replay !== undefined) {
        const at = replay.find(entry.key, 0, entry.key.length, hashKey(entry.key, 0, entry.key.length, hash).bucketHash)
        if (at >= 0 && replay.recordAt(at).lsn > chain.lsn) continue
      }
      const value = await valueOf(entry.key, entry.value, entry.extent, `in bucket ${chain.bucket}`)
      if (value !== undefined) await put(entry.key, value)
    }
  })
  if (replay !== undefined) {
    for (const at of replay.liveOffsets()) {
      const record = replay.recordAt(at)
      const bucket = bucketOf(record.bucketHash, superblock.initialBuckets, superblock.level, superblock.splitPointer)
      if (record.lsn <= (chainLsns.get(bucket) ?? -1) || record.deleted) continue
      const value = await valueOf(record.key, record.value === undefined ? undefined : Buffer.from(record.value), record.extent, 'in the log')
      if (value !== undefined) await put(Buffer.from(record.key), value)
    }
  }
  const results = await Promise.allSettled([...writes])
  const failed = results.find((result) => result.status === 'rejected')
  if (failed !== undefined) throw (failed as PromiseRejectedResult).reason
  return counts
}
