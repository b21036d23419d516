/**
 * spaceBreakdown: where the physical bytes of a compressed store go, found
 * by reading every segment that holds data (a diagnostic for bench:space and
 * tests; it reads the whole data area, so it is not for a serving path).
 *
 * For each segment in use it walks the chunks of the current incarnation
 * (as the cleaner does) and sorts every byte into: chunk headers, chunk
 * padding, records the map still points at (live: header, payload, granule
 * padding, by logical region), records it does not (dead), trim records,
 * and the unwritten tail of a segment (a hole in an image file).
 *
 * Who calls this: bench/space.ts, tests. Read-only: takes no lock, so call it
 * on a quiet device.
 */

import { BLOCK_SIZE } from '../types'
import { BlockMap } from './block-map'
import {
  CHUNK_ALIGNMENT_BYTES,
  CHUNK_HEADER_BYTES,
  HEADER_REGION_BYTES,
  MAP_PAGE_BYTES,
  RECORD_HEADER_BYTES,
  RecordKind,
  chunkRecordStart,
  decodeChunkHeader,
  makeEntry,
  readRecord,
  recordFootprint,
} from './format'
import type { CompressedBlockDevice } from './device'
import { SegmentState } from './segments'

/** A named range of logical blocks [start, end) to account live records to. */
export interface SpaceRegion {
  name: string
  start: number
  end: number
}

export interface RegionSpace {
  blocks: number
  /** Record footprints (header + payload + granule padding). */
  recordBytes: number
  /** LZ4 payload bytes (or 4096 for blocks stored as is). */
  payloadBytes: number
}

export interface SpaceBreakdown {
  granuleBytes: number
  segmentBytes: number
  segmentCount: number
  /** Header, both checkpoint slots, both copies of every map page ever written. */
  metadataBytes: number
  /** Segments holding data (sealed, and the head). */
  segmentsInUse: number
  /** Bytes of those segments that were written (chunks); the rest is unwritten tail. */
  writtenBytes: number
  unwrittenTailBytes: number
  chunkHeaderBytes: number
  /** Zero padding of chunks to 4 KiB after their records. */
  chunkPaddingBytes: number
  live: RegionSpace & { headerBytes: number; granulePaddingBytes: number }
  /** Records of blocks since overwritten or trimmed. */
  deadRecordBytes: number
  trimRecordBytes: number
  /** Live records by the caller's regions (blocks outside every region go to 'other'). */
  regions: Record<string, RegionSpace>
  /** The device's own live-bytes estimate (what the cleaner's ratios use). */
  liveEstimateBytes: number
}

export async function spaceBreakdown(device: CompressedBlockDevice, regions: readonly SpaceRegion[] = []): Promise<SpaceBreakdown> {
  const { geometry, segments, volume, map } = device
  const result: SpaceBreakdown = {
    granuleBytes: geometry.granuleBytes,
    segmentBytes: geometry.segmentBytes,
    segmentCount: geometry.segmentCount,
    metadataBytes: HEADER_REGION_BYTES + 2 * geometry.checkpointSlotBytes + 2 * MAP_PAGE_BYTES * map.writtenPages,
    segmentsInUse: 0,
    writtenBytes: 0,
    unwrittenTailBytes: 0,
    chunkHeaderBytes: 0,
    chunkPaddingBytes: 0,
    live: { blocks: 0, recordBytes: 0, payloadBytes: 0, headerBytes: 0, granulePaddingBytes: 0 },
    deadRecordBytes: 0,
    trimRecordBytes: 0,
    regions: {},
    liveEstimateBytes: segments.liveTotal,
  }
  const regionOf = (lba: number): RegionSpace => {
    const name = regions.find((region) => lba >= region.start && lba < region.end)?.name ?? 'other'
    return (result.regions[name] ??= { blocks: 0, recordBytes: 0, payloadBytes: 0 })
  }
  const buffer = volume.allocate(geometry.segmentBytes)
  const recordStart = chunkRecordStart(geometry.granuleBytes)
  for (let segment = 0; segment < segments.highWater; segment++) {
    const state = segments.stateOf(segment)
    if (state === SegmentState.FREE || state === SegmentState.SUCCESSOR) continue
    result.segmentsInUse++
    await volume.read([{ offset: geometry.dataOffset + segment * geometry.segmentBytes, length: geometry.segmentBytes, buffer, bufferOffset: 0 }])
    const incarnation = segments.incarnationOf(segment)
    const seed = segments.seedOf(segment)
    let writtenEnd = 0
    for (let at = 0; at + CHUNK_ALIGNMENT_BYTES <= geometry.segmentBytes; ) {
      const header = decodeChunkHeader(geometry, buffer, at)
      if (header === undefined || header.segment !== segment || header.offset !== at || header.incarnation !== incarnation) {
        at += CHUNK_ALIGNMENT_BYTES
        continue
      }
      result.chunkHeaderBytes += CHUNK_HEADER_BYTES
      result.chunkPaddingBytes += header.chunkBytes - CHUNK_HEADER_BYTES - header.recordBytes
      const end = at + recordStart + header.recordBytes
      const records: Array<{ at: number; lba: number; kind: number; storedBytes: number }> = []
      for (let record = at + recordStart; record < end; ) {
        const view = readRecord(buffer, record, end, seed)
        if (view === undefined) break
        records.push({ at: record, ...view })
        record += recordFootprint(view.storedBytes, geometry.granuleBytes)
      }
      const pages = [...new Set(records.filter((record) => record.kind !== RecordKind.TRIM).map((record) => BlockMap.pageOf(record.lba)))]
      await map.loadAndPin(pages)
      try {
        for (const record of records) {
          const footprint = recordFootprint(record.storedBytes, geometry.granuleBytes)
          if (record.kind === RecordKind.TRIM) {
            result.trimRecordBytes += footprint
            continue
          }
          const address = segment * geometry.segmentBytes + record.at
          if (map.lookup(record.lba) !== makeEntry(address, RECORD_HEADER_BYTES + record.storedBytes, geometry.granuleBytes)) {
            result.deadRecordBytes += footprint
            continue
          }
          const payload = record.kind === RecordKind.STORED ? BLOCK_SIZE : record.storedBytes
          result.live.blocks++
          result.live.recordBytes += footprint
          result.live.payloadBytes += payload
          result.live.headerBytes += RECORD_HEADER_BYTES
          result.live.granulePaddingBytes += footprint - RECORD_HEADER_BYTES - record.storedBytes
          const region = regionOf(record.lba)
          region.blocks++
          region.recordBytes += footprint
          region.payloadBytes += payload
        }
      } finally {
        map.unpinAll(pages)
      }
      at += header.chunkBytes
      writtenEnd = at
    }
    result.writtenBytes += writtenEnd
    result.unwrittenTailBytes += geometry.segmentBytes - writtenEnd
  }
  return result
}
