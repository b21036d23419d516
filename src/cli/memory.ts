/**
 * The memory a store needs, in the words of docs/api.md ("Memory"), for
 * `cubby plan` and `cubby info`.
 *
 * A store holds: the two budgets the user sets (bucket cache, write
 * buffers); the engine's fixed buffers (commit queue, one log frame, the read
 * arena and a flush step's images); and, in lz4 mode, the compression
 * layer's tables, which grow with the store's logical capacity at most,
 * never with its keys (9 bytes per map page of 1016 blocks; 21 bytes per
 * 1 MiB log segment, the segment table holding only the segments in use, in
 * chunks of 1024, so this is what it reaches once the data area fills). Its
 * block-map cache is inside `cacheSize`, or 1 MiB when `cacheSize` is
 * smaller. Large values (over 2 KiB) in flight add up
 * to 64 MiB each way while they are read or written; the bound leaves that
 * out and says so.
 *
 * `info` measures the capacity-dependent parts on the open store
 * (stats().memory.device and .bitmap); `plan` estimates them from the
 * size a new image file would get. The figures are bounds for planning,
 * not an accounting of the process's RSS (Node itself takes ~50 MiB).
 */

import { BLOCK_SIZE } from '../device/types'
import { ENTRIES_PER_PAGE, MAX_DATA_BYTES, RECORD_MAX_BYTES } from '../device/compressed/format'
import { MAX_QUEUE_BYTES } from '../engine/engine'
import { DEFAULT_JOURNAL_SLOT_BLOCKS, MAX_FRAME_BYTES } from '../engine/format'
import { READ_SLOTS } from '../engine/reader'
import { MIN_MAP_CACHE_BYTES } from '../db'

/** The engine's fixed I/O buffers: the read arena and one flush step's journal images. */
const ENGINE_IO_BYTES = (READ_SLOTS + DEFAULT_JOURNAL_SLOT_BLOCKS) * BLOCK_SIZE
/** Memory the lz4 layer keeps per map page (directory slot, page state and generation) and per log segment (table entries). */
const LZ4_BYTES_PER_MAP_PAGE = 9
const LZ4_BYTES_PER_SEGMENT = 21
/** A cached map page: its 4 KiB of entries and bookkeeping (block-map.ts). */
const LZ4_CACHED_PAGE_BYTES = 4096 + 160
const LZ4_SEGMENT_BYTES = 1024 * 1024
/** Room the lz4 layer's data area leaves for cleaning, over the blocks stored incompressibly. */
const LZ4_DATA_AREA_FACTOR = 1.35

export interface MemoryBound {
  cache: number
  writeBuffer: number
  /** Commit queue, one log frame, read arena, flush step. */
  engineBuffers: number
  /** lz4: tables sized by capacity, and the map cache beyond cacheSize (when that is under 1 MiB); none: 0. */
  device: number
  /** Allocation bitmap (8 KiB per 127 MiB of heap reached). */
  bitmap: number
  total: number
}

export interface MemorySettings {
  cacheSize: number
  writeBufferSize: number
}

function bound(settings: MemorySettings, device: number, bitmap: number): MemoryBound {
  const engineBuffers = MAX_QUEUE_BYTES + MAX_FRAME_BYTES + ENGINE_IO_BYTES
  return {
    cache: settings.cacheSize,
    writeBuffer: settings.writeBufferSize,
    engineBuffers,
    device,
    bitmap,
    total: settings.cacheSize + settings.writeBufferSize + engineBuffers + device + bitmap,
  }
}

/** The capacity-dependent memory of the lz4 layer for `capacityBytes` of logical space. */
export function lz4MapBytes(capacityBytes: number): number {
  const blocks = Math.ceil(capacityBytes / BLOCK_SIZE)
  const dataBytes = Math.min(MAX_DATA_BYTES, blocks * (RECORD_MAX_BYTES + 16) * LZ4_DATA_AREA_FACTOR)
  return Math.ceil(blocks / ENTRIES_PER_PAGE) * LZ4_BYTES_PER_MAP_PAGE + Math.ceil(dataBytes / LZ4_SEGMENT_BYTES) * LZ4_BYTES_PER_SEGMENT
}

/** The LZ4 block map of `logicalBytes` in use, cached whole (4 KiB page + bookkeeping per 1016 blocks): its share of cacheSize for one read per GET. */
export function lz4BlockMapBytes(logicalBytes: number): number {
  return Math.ceil(Math.ceil(logicalBytes / BLOCK_SIZE) / ENTRIES_PER_PAGE) * LZ4_CACHED_PAGE_BYTES
}

/** For a store not yet made: `capacityBytes` of logical space in `compression` mode. */
export function plannedMemory(settings: MemorySettings, compression: 'lz4' | 'none', capacityBytes: number): MemoryBound {
  return bound(settings, compression === 'lz4' ? mapCacheBeyond(settings) + lz4MapBytes(capacityBytes) : 0, 0)
}

/** For an open store: its device tables and bitmap as measured, plus the part of the lz4 map cache cacheSize does not cover. */
export function measuredMemory(settings: MemorySettings, compression: 'lz4' | 'none', measured: { device: number; bitmap: number }): MemoryBound {
  return bound(settings, measured.device + (compression === 'lz4' ? mapCacheBeyond(settings) : 0), measured.bitmap)
}

/** The lz4 map cache is max(cacheSize, 1 MiB): inside cacheSize except for what that floor adds. */
function mapCacheBeyond(settings: MemorySettings): number {
  return Math.max(0, MIN_MAP_CACHE_BYTES - settings.cacheSize)
}
