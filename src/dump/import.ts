/**
 * Reading dumps: DumpReader verifies a dump frame by frame as it streams in,
 * and importStore() writes its pairs into an open store.
 *
 * Bounded memory: the reader holds the input's current chunk and one frame
 * (at most one pair of the largest key and value, 64 MiB and change); the
 * importer has one frame of puts in flight while it reads and checks the
 * next. Nothing is written from a frame before its
 * checksums pass, but frames before a damaged one are already in the store:
 * an import that fails with CUBBY_CORRUPT leaves a partial store (restore
 * into a new store and discard it on failure).
 *
 * Puts are issued with `sync: false` and made durable by one `flush()` at the
 * end, so an import costs one device flush, not one per pair.
 */

import { CubbyError, ErrorCode, corrupt, invalidArgument } from '../errors'
import type { CubbyDB } from '../db'
import { streamError, type DumpSummary } from './export'
import {
  DUMP_HEADER_BYTES,
  type DumpHeader,
  FRAME_HEADER_BYTES,
  type FrameHeader,
  checkPayload,
  decodeDumpHeader,
  decodeEndPayload,
  decodeFrameHeader,
  forEachPair,
} from './format'

/** One verified pairs frame: its header and payload (pairs are views into it). */
export interface DumpFrame {
  /** The frame's header: sequence, payload bytes, pair count, payload checksum. */
  header: FrameHeader
  /** The frame's payload, its checksum verified. */
  payload: Buffer
}

/**
 * Reads a dump from a stream and verifies it as it goes: header() first (the
 * importer sizes a new store from it), then frames() yields each verified
 * frame and checks the end frame's totals.
 */
export class DumpReader {
  private readonly chunks: AsyncIterator<Uint8Array>
  private current: Buffer = Buffer.alloc(0)
  private ended = false
  private headerRead: DumpHeader | undefined
  /** Bytes of the input consumed so far. */
  bytesRead = 0

  /** `input`: any async iterable of byte chunks (a Readable stream, process.stdin). */
  constructor(input: AsyncIterable<Uint8Array>) {
    if (input === null || typeof input !== 'object' || typeof (input as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] !== 'function') {
      throw invalidArgument('a dump is read from a readable stream (an async iterable of bytes)')
    }
    this.chunks = input[Symbol.asyncIterator]()
  }

  /** Exactly `bytes` bytes, or fewer if the input ends first. */
  private async read(bytes: number): Promise<Buffer> {
    const parts: Buffer[] = []
    let gathered = 0
    while (gathered < bytes) {
      if (this.current.length === 0) {
        if (this.ended) break
        let next: IteratorResult<Uint8Array>
        try {
          next = await this.chunks.next()
        } catch (error) {
          throw error instanceof CubbyError ? error : streamError(error as Error, 'reading the dump')
        }
        if (next.done === true) {
          this.ended = true
          break
        }
        this.current = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength)
        continue
      }
      const take = Math.min(bytes - gathered, this.current.length)
      parts.push(this.current.subarray(0, take))
      this.current = this.current.subarray(take)
      gathered += take
    }
    this.bytesRead += gathered
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, gathered)
  }

  /** The file header (read once; later calls return it again). */
  async header(): Promise<DumpHeader> {
    if (this.headerRead === undefined) this.headerRead = decodeDumpHeader(await this.read(DUMP_HEADER_BYTES))
    return this.headerRead
  }

  /**
   * Every pairs frame, verified, in order; then checks the end frame's
   * totals against what came before it and that nothing follows it.
   */
  async *frames(): AsyncGenerator<DumpFrame, DumpSummary> {
    await this.header()
    const totals: DumpSummary = { pairs: 0, keyBytes: 0, valueBytes: 0, bytes: 0 }
    for (let sequence = 0; ; sequence++) {
      const offset = this.bytesRead
      const headerBytes = await this.read(FRAME_HEADER_BYTES)
      if (headerBytes.length < FRAME_HEADER_BYTES) throw corrupt(`the dump ends at byte ${this.bytesRead}, before its end frame: it is truncated`)
      const header = decodeFrameHeader(headerBytes, sequence, offset)
      const payload = await this.read(header.payloadBytes)
      if (payload.length < header.payloadBytes) throw corrupt(`the dump ends at byte ${this.bytesRead}, inside frame ${sequence}: it is truncated`)
      checkPayload(header, payload, offset)
      if (header.kind === 'end') {
        const claimed = decodeEndPayload(payload)
        if (claimed.pairs !== totals.pairs || claimed.keyBytes !== totals.keyBytes || claimed.valueBytes !== totals.valueBytes) {
          throw corrupt(`the end frame counts ${claimed.pairs} pairs (${claimed.keyBytes} + ${claimed.valueBytes} bytes); the frames before it hold ${totals.pairs} (${totals.keyBytes} + ${totals.valueBytes})`)
        }
        if ((await this.read(1)).length > 0) throw corrupt(`bytes follow the end frame at byte ${this.bytesRead - 1}`)
        totals.bytes = this.bytesRead
        return totals
      }
      forEachPair(header, payload, (key, value) => {
        totals.pairs++
        totals.keyBytes += key.length
        totals.valueBytes += value.length
      })
      yield { header, payload }
    }
  }
}

/** Options of importStore(). */
export interface ImportOptions {
  /** Called after each frame is written: input bytes consumed and pairs written so far. */
  onProgress?: (bytesRead: number, pairs: number) => void
}

/**
 * Writes every pair of a dump into `db` (a put per pair: existing keys take
 * the dump's value, other keys stay). Resolves once they are durable, with
 * the dump's totals. `source`: a stream of the dump's bytes, or a
 * DumpReader whose header the caller has already read.
 */
export async function importStore(db: CubbyDB, source: AsyncIterable<Uint8Array> | DumpReader, options: ImportOptions = {}): Promise<DumpSummary> {
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw invalidArgument('option onProgress must be a function')
  if (db.readOnly) throw new CubbyError(ErrorCode.READ_ONLY, 'cannot import into a store opened read-only')
  const reader = source instanceof DumpReader ? source : new DumpReader(source)
  let failure: unknown
  let inFlight: Promise<void> = Promise.resolve()
  let pairs = 0
  const frames = reader.frames()
  let step = await frames.next()
  while (step.done !== true) {
    const { header, payload } = step.value
    await inFlight
    if (failure !== undefined) throw failure
    const puts: Array<Promise<void>> = []
    forEachPair(header, payload, (key, value) => puts.push(db.put(key, value, { sync: false })))
    pairs += header.pairCount
    const written = pairs
    inFlight = Promise.all(puts).then(
      () => options.onProgress?.(reader.bytesRead, written),
      (error: unknown) => {
        failure ??= error
      },
    )
    step = await frames.next().catch(async (error: unknown) => {
      await inFlight
      throw error
    })
  }
  await inFlight
  if (failure !== undefined) throw failure
  await db.flush()
  return step.value
}
