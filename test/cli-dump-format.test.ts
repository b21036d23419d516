// The dump format behind `cubby export` / `cubby import` (docs/format.md 4):
// exact round trips in both compression modes, frames bounded in size, and
// one named test per way a dump can be damaged, each a typed error.
import test, { type ExecutionContext } from 'ava'
import { Readable, Writable } from 'node:stream'
import { DumpReader, exportStore, importStore } from '../src/dump'
import {
  DUMP_HEADER_BYTES,
  END_PAYLOAD_BYTES,
  FRAME_HEADER_BYTES,
  FRAME_TARGET_BYTES,
  PAIR_HEADER_BYTES,
  encodeDumpHeader,
  encodeEndPayload,
  pairBytes,
  sealFrame,
  writePair,
} from '../src/dump/format'
import { type CubbyErrorCode, ErrorCode } from '../src/errors'
import { contents, memoryStore, rejectsWith, reopen, seededRandom } from './helpers/store'

/** A Writable that keeps what it is given. */
function collector(): { stream: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(Buffer.from(chunk))
      done()
    },
  })
  return { stream, bytes: () => Buffer.concat(chunks) }
}

/** A readable of `bytes` in chunks of `size` (a pipe delivers a dump in pieces). */
function chunked(bytes: Buffer, size = 65536): Readable {
  const pieces: Buffer[] = []
  for (let at = 0; at < bytes.length; at += size) pieces.push(bytes.subarray(at, at + size))
  return Readable.from(pieces)
}

/** Frames of a well-formed dump: [offset, payload bytes, pair count, magic]. */
function frameTable(dump: Buffer): Array<[number, number, number, string]> {
  const frames: Array<[number, number, number, string]> = []
  let at = DUMP_HEADER_BYTES
  while (at < dump.length) {
    const payloadBytes = dump.readUInt32LE(at + 16)
    frames.push([at, payloadBytes, dump.readUInt32LE(at + 20), dump.toString('latin1', at, at + 8)])
    at += FRAME_HEADER_BYTES + payloadBytes
  }
  return frames
}

async function fillStore(compression: 'lz4' | 'none'): Promise<{ db: Awaited<ReturnType<typeof memoryStore>>['db']; expected: Map<string, Buffer> }> {
  const { db } = await memoryStore({ compression, size: 256 * 1024 * 1024 })
  const random = seededRandom(7)
  const expected = new Map<string, Buffer>()
  const put = async (key: Buffer, value: Buffer): Promise<void> => {
    await db.put(key, value, { sync: false })
    expected.set(key.toString('latin1'), value)
  }
  for (let index = 0; index < 3000; index++) {
    const value = Buffer.alloc(Math.floor(random() * 300))
    for (let at = 0; at < value.length; at++) value[at] = Math.floor(random() * 256)
    await put(Buffer.from(`key-${index}`), value)
  }
  await put(Buffer.from([0, 255, 10, 13]), Buffer.alloc(0))
  await put(Buffer.alloc(1024, 0x41), Buffer.from('longest key'))
  await put(Buffer.from('large'), Buffer.alloc(100 * 1024, 0x5a))
  await put(Buffer.from('larger than a frame'), Buffer.alloc(FRAME_TARGET_BYTES + 12345, 0x33))
  return { db, expected }
}

for (const compression of ['lz4', 'none'] as const) {
  test(`export then import reproduces every pair exactly (${compression})`, async (t) => {
    const { db, expected } = await fillStore(compression)
    const out = collector()
    const progress: Array<[number, number]> = []
    const written = await exportStore(db, out.stream, { onProgress: (pairs, total) => progress.push([pairs, total]) })
    await db.close()
    const dump = out.bytes()
    t.is(written.pairs, expected.size)
    t.is(written.bytes, dump.length)
    t.is(progress[progress.length - 1]![0], expected.size)
    t.is(progress[0]![1], expected.size, 'the header hint is the key count')

    const { db: target } = await memoryStore({ compression: compression === 'lz4' ? 'none' : 'lz4', size: 256 * 1024 * 1024 })
    const read = await importStore(target, chunked(dump, 4096 + 17))
    t.deepEqual(read, written)
    const restored = await contents(target)
    t.is(restored.size, expected.size)
    for (const [key, value] of expected) t.true(restored.get(key)?.equals(value), `pair ${JSON.stringify(key.slice(0, 20))}`)
    await target.close()
  })
}

test('frames stay near 1 MiB; a pair larger than that travels alone; the dump ends with its end frame', async (t) => {
  const { db } = await fillStore('lz4')
  const out = collector()
  await exportStore(db, out.stream)
  await db.close()
  const frames = frameTable(out.bytes())
  t.true(frames.length >= 3)
  const last = frames.pop()!
  t.is(last[3], 'CUBBYEND')
  for (const [, payloadBytes, pairs, magic] of frames) {
    t.is(magic, 'CUBBYPRS')
    if (pairs > 1) t.true(payloadBytes <= FRAME_TARGET_BYTES, `${payloadBytes} bytes in a frame of ${pairs} pairs`)
    else t.true(payloadBytes > 0)
  }
  t.true(frames.some(([, payloadBytes, pairs]) => pairs === 1 && payloadBytes > FRAME_TARGET_BYTES))
})

test('an empty store dumps as a header and an end frame, and imports as nothing', async (t) => {
  const { db } = await memoryStore()
  const out = collector()
  const summary = await exportStore(db, out.stream)
  await db.close()
  t.deepEqual(summary, { pairs: 0, keyBytes: 0, valueBytes: 0, bytes: DUMP_HEADER_BYTES + FRAME_HEADER_BYTES + 24 })
  const { db: target } = await memoryStore()
  const reader = new DumpReader(chunked(out.bytes()))
  const header = await reader.header()
  t.is(header.pairsExpected, 0)
  t.is(header.sourceMode, 'lz4')
  t.is((await importStore(target, reader)).pairs, 0)
  t.is((await contents(target)).size, 0)
  await target.close()
})

test('import merges: keys in the dump take its values, other keys stay', async (t) => {
  const { db } = await memoryStore()
  await db.put('shared', 'from the dump')
  await db.put('only-in-dump', 'x')
  const out = collector()
  await exportStore(db, out.stream)
  await db.close()
  const { db: target } = await memoryStore()
  await target.put('shared', 'old')
  await target.put('only-in-target', 'y')
  await importStore(target, chunked(out.bytes()))
  const restored = await contents(target)
  t.is(restored.get('shared')?.toString(), 'from the dump')
  t.is(restored.get('only-in-dump')?.toString(), 'x')
  t.is(restored.get('only-in-target')?.toString(), 'y')
  await target.close()
})

/** A dump of a few frames, for damaging. */
async function sampleDump(): Promise<Buffer> {
  const { db } = await memoryStore()
  for (let index = 0; index < 40; index++) await db.put(`k${index}`, Buffer.alloc(60_000, index), { sync: false })
  const out = collector()
  await exportStore(db, out.stream)
  await db.close()
  return out.bytes()
}

async function importFails(t: ExecutionContext, dump: Buffer, code: CubbyErrorCode, message: RegExp): Promise<void> {
  const { db } = await memoryStore()
  const error = await rejectsWith(t, importStore(db, chunked(dump, 1000)), code)
  t.regex(error.message, message)
  await db.close()
}

test('damage: a file that is not a dump is CUBBY_NOT_A_STORE', async (t) => {
  await importFails(t, Buffer.from('SQLite format 3\0 and more bytes than a header holds, surely more than sixty-four'), ErrorCode.NOT_A_STORE, /not a CubbyDB dump/)
  await importFails(t, Buffer.alloc(0), ErrorCode.NOT_A_STORE, /not a CubbyDB dump/)
})

test('damage: a dump of a newer format version is CUBBY_VERSION', async (t) => {
  const dump = await sampleDump()
  dump.writeUInt16LE(2, 8)
  await importFails(t, dump, ErrorCode.VERSION, /version 2/)
})

test('damage: a flipped bit in the file header is CUBBY_CORRUPT', async (t) => {
  const dump = await sampleDump()
  dump[20]! ^= 0x04
  await importFails(t, dump, ErrorCode.CORRUPT, /header fails its checksum/)
})

test('damage: a flipped bit in a frame header is CUBBY_CORRUPT naming the frame', async (t) => {
  const dump = await sampleDump()
  const [, second] = frameTable(dump)
  dump[second![0] + 20]! ^= 0x01
  await importFails(t, dump, ErrorCode.CORRUPT, /frame 1 \(byte \d+ of the dump\): the frame header fails its checksum/)
})

test('damage: a flipped bit in a payload is CUBBY_CORRUPT; the frames before it were imported', async (t) => {
  const dump = await sampleDump()
  const frames = frameTable(dump)
  const victim = frames[2]!
  dump[victim[0] + FRAME_HEADER_BYTES + PAIR_HEADER_BYTES + 5]! ^= 0x80
  const { db } = await memoryStore()
  const error = await rejectsWith(t, importStore(db, chunked(dump)), ErrorCode.CORRUPT)
  t.regex(error.message, /frame 2 .*payload fails its checksum/)
  const imported = (await contents(db)).size
  t.is(imported, frames[0]![2] + frames[1]![2], 'exactly the pairs of frames 0 and 1')
  await db.close()
})

test('damage: a dump cut short anywhere is CUBBY_CORRUPT, never a quiet partial import', async (t) => {
  const dump = await sampleDump()
  const frames = frameTable(dump)
  const cuts = [DUMP_HEADER_BYTES, frames[1]![0], frames[1]![0] + 10, frames[1]![0] + FRAME_HEADER_BYTES + 100, dump.length - 1]
  for (const cut of cuts) await importFails(t, dump.subarray(0, cut), ErrorCode.CORRUPT, /truncated/)
  await importFails(t, dump.subarray(0, 30), ErrorCode.CORRUPT, /ends inside its header/)
})

test('damage: bytes after the end frame are CUBBY_CORRUPT', async (t) => {
  const dump = await sampleDump()
  await importFails(t, Buffer.concat([dump, Buffer.from([0])]), ErrorCode.CORRUPT, /follow the end frame/)
})

test('damage: a frame missing from the middle is CUBBY_CORRUPT (sequence)', async (t) => {
  const dump = await sampleDump()
  const [, second, third] = frameTable(dump)
  const spliced = Buffer.concat([dump.subarray(0, second![0]), dump.subarray(third![0])])
  await importFails(t, spliced, ErrorCode.CORRUPT, /frame 1 .* carries sequence 2/)
})

test('a stream that fails while exporting is CUBBY_IO with its errno', async (t) => {
  const { db } = await memoryStore()
  await db.put('a', 'b')
  const broken = new Writable({
    write(_chunk, _encoding, done) {
      done(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))
    },
  })
  const error = await rejectsWith(t, exportStore(db, broken), ErrorCode.IO)
  t.is((error as { errno?: string }).errno, 'EPIPE')
  await db.close()
})

test('exporting to something that is not a stream is CUBBY_INVALID_ARGUMENT; importing into a read-only store is CUBBY_READ_ONLY', async (t) => {
  const { db, backing } = await memoryStore()
  await rejectsWith(t, exportStore(db, {} as never), ErrorCode.INVALID_ARGUMENT)
  t.throws(() => new DumpReader(42 as never), { code: ErrorCode.INVALID_ARGUMENT } as never)
  await db.close()
  const readOnly = await reopen(backing, { readOnly: true })
  await rejectsWith(t, importStore(readOnly, chunked(Buffer.alloc(64))), ErrorCode.READ_ONLY)
  await readOnly.close()
})

test('the worked example of docs/format.md 4.6 encodes to the bytes the document shows, and reads back', async (t) => {
  const header = encodeDumpHeader({ pairsExpected: 1, createdMs: 1_767_225_600_000, sourceMode: 'lz4' })
  const frame = Buffer.alloc(FRAME_HEADER_BYTES + pairBytes(5, 5))
  writePair(frame, FRAME_HEADER_BYTES, Buffer.from('hello'), Buffer.from('world'))
  sealFrame(frame, 'pairs', 0, pairBytes(5, 5), 1)
  const end = Buffer.alloc(FRAME_HEADER_BYTES + END_PAYLOAD_BYTES)
  encodeEndPayload(end, FRAME_HEADER_BYTES, { pairs: 1, keyBytes: 5, valueBytes: 5 })
  sealFrame(end, 'end', 1, END_PAYLOAD_BYTES, 0)
  const dump = Buffer.concat([header, frame, end])
  t.is(dump.length, 168)
  t.is(dump.readUInt32LE(12), 0x359be8b5, 'header CRC')
  t.is(dump.readUInt32LE(72), 0x8372acb3, 'pairs frame header CRC')
  t.is(dump.readUInt32LE(88), 0xc29809bb, 'pairs payload CRC')
  t.is(dump.readUInt32LE(120), 0x337bc32d, 'end frame header CRC')
  t.is(dump.readUInt32LE(136), 0x629d703f, 'end payload CRC')
  t.is(dump.toString('hex', 96, 112), '05000500000068656c6c6f776f726c64', 'the pair')
  const { db } = await memoryStore()
  t.deepEqual(await importStore(db, chunked(dump, 7)), { pairs: 1, keyBytes: 5, valueBytes: 5, bytes: 168 })
  t.is((await db.get('hello'))?.toString(), 'world')
  await db.close()
})
