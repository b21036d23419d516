/**
 * The memory a store needs, in the words of docs/api.md ("Memory"), for
 * `cubby plan` and `cubby info`.
 *
 * A store holds: the two budgets the user sets (bucket cache, write
 * buffers); the engine's fixed buffers (commit queue, one log frame, the read
 * arena and a flush step's images); and, in lz4 mode, the compression
 * layer's tables, which follow the logical space and the log in use, never
 * the keys: the map's page state (9 bytes per map page of 1016 blocks, held
 * only in chunks of 256 pages, 1016 MiB of logical space, that hold a page
 * in use: 2,816 bytes a chunk with its overhead) and the segment table (21
 * bytes per 1 MiB log segment, held only for the segments in use, in chunks
 * of 1024). Its block-map cache is inside `cacheSize`, or 1 MiB when
 * `cacheSize` is smaller. Large values (over 2 KiB) in flight add up
 * to 64 MiB each way while they are read or written; the bound leaves that
 * out and says so.
 *
 * `info` measures these parts on the open store (stats().memory.device and
 * .bitmap). `plan` bounds them for the store at its planned keys: the map's
 * chunks for the logical bytes those keys take (buckets, extents and the
 * expected overflow blocks: plannedLogicalBytes) plus three (the engine's own blocks below the
 * buckets push them across one more chunk boundary, and the heap's extents
 * at the top of the logical space may straddle one at either end; every
 * block the engine writes is in one of those two packed ranges), at most
 * every chunk of the image; and the segment table as it is once the data
 * area, sized from the image, fills. So the LZ4 figure holds at the planned
 * keys, and a store grown past them adds one chunk per 1016 MiB of logical
 * space it comes to use. The figures are bounds for planning, not an
 * accounting of the process's RSS (Node itself takes ~50 MiB).
 */

import { BLOCK_SIZE } from '../device/types'
import { BYTES_PER_PAGE_STATE, CHUNK_OVERHEAD_BYTES, PAGES_PER_CHUNK } from '../device/compressed/block-map'
import { ENTRIES_PER_PAGE, MAX_DATA_BYTES, RECORD_MAX_BYTES } from '../device/compressed/format'
import { MAX_QUEUE_BYTES } from '../engine/engine'
import { DEFAULT_JOURNAL_SLOT_BLOCKS, MAX_FRAME_BYTES } from '../engine/format'
import { READ_SLOTS } from '../engine/reader'
import { MIN_MAP_CACHE_BYTES } from '../db'
import type { Plan } from '../engine/sizing'

/** The engine's fixed I/O buffers: the read arena and one flush step's journal images. */
const ENGINE_IO_BYTES = (READ_SLOTS + DEFAULT_JOURNAL_SLOT_BLOCKS) * BLOCK_SIZE
/** Memory the lz4 layer keeps per chunk of map pages in use (a cache slot, page state and generation per page, and the chunk's overhead). */
const LZ4_BYTES_PER_MAP_CHUNK = PAGES_PER_CHUNK * BYTES_PER_PAGE_STATE + CHUNK_OVERHEAD_BYTES
/** Logical bytes whose map pages one chunk covers (1016 MiB). */
const LZ4_MAP_CHUNK_SPAN_BYTES = PAGES_PER_CHUNK * ENTRIES_PER_PAGE * BLOCK_SIZE
/** What a store grown past its planned keys adds per GiB of logical space it takes (2.8 KiB). */
export const LZ4_MAP_BYTES_PER_GIB = Math.round((LZ4_BYTES_PER_MAP_CHUNK * 1024 ** 3) / LZ4_MAP_CHUNK_SPAN_BYTES)
/** Chunks beyond the logical bytes in use: one for the engine's blocks below the buckets, one for either end of the heap at the top. */
const LZ4_MAP_SPARE_CHUNKS = 3
/** Memory the lz4 layer keeps per log segment (table entries). */
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
  /** lz4: the map's page state and the segment table (lz4TableBytes), and the map cache beyond cacheSize (when that is under 1 MiB); none: 0. */
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

/**
 * The lz4 layer's tables for a store of `capacityBytes` of logical space
 * with `logicalBytes` of it in use: the map's page state in chunks for what
 * is in use (plus LZ4_MAP_SPARE_CHUNKS, at most every chunk of the
 * capacity), and the segment table of the data area the capacity gets, full.
 */
export function lz4TableBytes(logicalBytes: number, capacityBytes: number): number {
  const blocks = Math.ceil(capacityBytes / BLOCK_SIZE)
  const dataBytes = Math.min(MAX_DATA_BYTES, blocks * (RECORD_MAX_BYTES + 16) * LZ4_DATA_AREA_FACTOR)
  const allChunks = Math.ceil(Math.ceil(blocks / ENTRIES_PER_PAGE) / PAGES_PER_CHUNK)
  const chunks = Math.min(allChunks, Math.ceil(logicalBytes / LZ4_MAP_CHUNK_SPAN_BYTES) + LZ4_MAP_SPARE_CHUNKS)
  return chunks * LZ4_BYTES_PER_MAP_CHUNK + Math.ceil(dataBytes / LZ4_SEGMENT_BYTES) * LZ4_BYTES_PER_SEGMENT
}

/** The LZ4 block map of `logicalBytes` in use, cached whole (4 KiB page + bookkeeping per 1016 blocks): its share of cacheSize for one read per GET. */
export function lz4BlockMapBytes(logicalBytes: number): number {
  return Math.ceil(Math.ceil(logicalBytes / BLOCK_SIZE) / ENTRIES_PER_PAGE) * LZ4_CACHED_PAGE_BYTES
}

/** Logical bytes a store sized by `sizing` takes at its planned keys: buckets and value extents, and the overflow blocks expected. */
export function plannedLogicalBytes(sizing: Pick<Plan, 'logicalBytes' | 'buckets' | 'overflowFraction'>): number {
  return sizing.logicalBytes + Math.ceil(sizing.buckets * sizing.overflowFraction) * BLOCK_SIZE
}

/** For a store not yet made: `capacityBytes` of logical space, `logicalBytes` of it in use at the planned keys, in `compression` mode. */
export function plannedMemory(settings: MemorySettings, compression: 'lz4' | 'none', logicalBytes: number, capacityBytes: number): MemoryBound {
  return bound(settings, compression === 'lz4' ? mapCacheBeyond(settings) + lz4TableBytes(logicalBytes, capacityBytes) : 0, 0)
}

/** For an open store: its device tables and bitmap as measured, plus the part of the lz4 map cache cacheSize does not cover. */
export function measuredMemory(settings: MemorySettings, compression: 'lz4' | 'none', measured: { device: number; bitmap: number }): MemoryBound {
  return bound(settings, measured.device + (compression === 'lz4' ? mapCacheBeyond(settings) : 0), measured.bitmap)
}

/** The lz4 map cache is max(cacheSize, 1 MiB): inside cacheSize except for what that floor adds. */
function mapCacheBeyond(settings: MemorySettings): number {
  return Math.max(0, MIN_MAP_CACHE_BYTES - settings.cacheSize)
}
