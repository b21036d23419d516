/**
 * exportStore(): writes every pair of an open store to a stream in the dump
 * format (./format.ts, docs/format.md section 4).
 *
 * Bounded memory: pairs are gathered into one frame of about 1 MiB (a larger
 * pair alone), the frame is written, and the next one starts only once the
 * stream has taken it (the write callback), so at most one frame is held
 * however large the store and however slow the reader of the stream.
 *
 * The pairs come from `db.entries()`: each exactly once, in bucket order; a
 * write made during the export may or may not be in it (docs/api.md,
 * entries()). For a consistent backup, export a store no one writes to: a
 * closed store through `cubby export`, or pause writers in process.
 */

import { CubbyError, ErrorCode, invalidArgument } from '../errors'
import type { CubbyDB } from '../db'
import {
  DUMP_HEADER_BYTES,
  type DumpTotals,
  END_PAYLOAD_BYTES,
  FRAME_HEADER_BYTES,
  FRAME_TARGET_BYTES,
  encodeDumpHeader,
  encodeEndPayload,
  pairBytes,
  sealFrame,
  writePair,
} from './format'

/** Options of exportStore(). */
export interface ExportOptions {
  /** Called after each frame: pairs written so far, and the keys the store held when the export began. */
  onProgress?: (pairs: number, pairsExpected: number) => void
}

/** The totals of a dump written or read: pairs, their key and value bytes, and the dump's own bytes. */
export interface DumpSummary extends DumpTotals {
  /** Bytes of the dump: header, frames and end frame. */
  bytes: number
}

/** Writes `chunk` and resolves once the stream has taken it; its errors become CUBBY_IO. */
function writeChunk(output: NodeJS.WritableStream, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    output.write(chunk, (error?: Error | null) => {
      if (error === undefined || error === null) resolve()
      else reject(streamError(error, 'writing the dump'))
    })
  })
}

/** A stream's error as CUBBY_IO, with the errno it carried. */
export function streamError(error: Error, doing: string): CubbyError {
  const errno = (error as NodeJS.ErrnoException).code
  return new CubbyError(ErrorCode.IO, `${doing}: ${error.message}`, { ...(errno === undefined ? {} : { errno }), cause: error })
}

/**
 * Writes every pair of `db` to `output` as a dump: header, pairs frames,
 * end frame. Does not end the stream. Resolves with the totals written.
 */
export async function exportStore(db: CubbyDB, output: NodeJS.WritableStream, options: ExportOptions = {}): Promise<DumpSummary> {
  if (output === null || typeof output !== 'object' || typeof output.write !== 'function') throw invalidArgument('exportStore() needs a writable stream')
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw invalidArgument('option onProgress must be a function')
  if (!db.readOnly) await db.flush()
  const stats = db.stats()
  const pairsExpected = stats.keys + stats.bufferedWrites
  // A stream that fails also emits 'error'; listening keeps that from being an uncaught exception while the write callback reports it.
  const ignore = (): void => undefined
  output.on('error', ignore)
  try {
    await writeChunk(output, encodeDumpHeader({ pairsExpected, createdMs: Date.now(), sourceMode: stats.device.mode === 'lz4' ? 'lz4' : 'none' }))
    const totals: DumpSummary = { pairs: 0, keyBytes: 0, valueBytes: 0, bytes: DUMP_HEADER_BYTES }
    let sequence = 0
    let pending: Buffer[] = []
    let payloadBytes = 0
    const emit = async (): Promise<void> => {
      const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payloadBytes)
      let at = FRAME_HEADER_BYTES
      for (let index = 0; index < pending.length; index += 2) at = writePair(frame, at, pending[index]!, pending[index + 1]!)
      sealFrame(frame, 'pairs', sequence++, payloadBytes, pending.length / 2)
      pending = []
      payloadBytes = 0
      await writeChunk(output, frame)
      totals.bytes += frame.length
      options.onProgress?.(totals.pairs, pairsExpected)
    }
    for await (const [key, value] of db.entries()) {
      const bytes = pairBytes(key.length, value.length)
      if (pending.length > 0 && payloadBytes + bytes > FRAME_TARGET_BYTES) await emit()
      pending.push(key, value)
      payloadBytes += bytes
      totals.pairs++
      totals.keyBytes += key.length
      totals.valueBytes += value.length
    }
    if (pending.length > 0) await emit()
    const end = Buffer.alloc(FRAME_HEADER_BYTES + END_PAYLOAD_BYTES)
    encodeEndPayload(end, FRAME_HEADER_BYTES, totals)
    sealFrame(end, 'end', sequence, END_PAYLOAD_BYTES, 0)
    await writeChunk(output, end)
    totals.bytes += end.length
    return totals
  } finally {
    output.removeListener('error', ignore)
  }
}
