// The shim's LZ4 block decoder (native/lz4.h, binding.lz4Decode), which the
// compressed device's read path uses: it reads what lz4-napi writes, and it
// refuses every malformed payload without reading or writing outside its two
// ranges. The fuzz tests hand it exactly-sized buffers, so that under
// AddressSanitizer (scripts/test-asan.sh runs this file) any access past
// either one is a report, not a silent read of a neighbour; guard bytes
// around sub-ranges catch writes outside a range inside a larger buffer.
import test from 'ava'
import { compressSync, uncompressSync } from 'lz4-napi'
import { decodeLz4Block } from '../src/device/compressed/codec'
import { binding } from '../src/native'
import { seededRandom } from './helpers/store'

const BLOCK_SIZE = 4096

/**
 * The LZ4 block format, decoded one byte at a time with the same refusals as
 * the shim (a length that runs past the payload or the capacity, a match
 * offset of 0 or before the output's start): the oracle for random inputs.
 */
function referenceDecode(source: Uint8Array, capacity: number): Buffer | -1 {
  const output: number[] = []
  let input = 0
  while (input < source.length) {
    const token = source[input++]!
    let literals = token >> 4
    if (literals === 15) {
      let more: number
      do {
        if (input >= source.length) return -1
        more = source[input++]!
        literals += more
      } while (more === 255)
    }
    if (input + literals > source.length || output.length + literals > capacity) return -1
    for (let index = 0; index < literals; index++) output.push(source[input++]!)
    if (input === source.length) break
    if (input + 2 > source.length) return -1
    const distance = source[input]! | (source[input + 1]! << 8)
    input += 2
    if (distance === 0 || distance > output.length) return -1
    let length = (token & 15) + 4
    if ((token & 15) === 15) {
      let more: number
      do {
        if (input >= source.length) return -1
        more = source[input++]!
        length += more
      } while (more === 255)
    }
    if (output.length + length > capacity) return -1
    for (let index = 0; index < length; index++) output.push(output[output.length - distance]!)
  }
  return Buffer.from(output)
}

/** Decodes `payload` from and into buffers of exactly its size and `capacity` bytes; checks the result against the oracle. */
function decodeExactly(payload: Uint8Array, capacity: number): { written: number; agrees: boolean } {
  const source = Buffer.alloc(payload.length)
  source.set(payload)
  const target = Buffer.alloc(capacity)
  const written = binding.lz4Decode(source, 0, source.length, target, 0, capacity)
  const expected = referenceDecode(payload, capacity)
  const agrees = expected === -1 ? written === -1 : written === expected.length && target.subarray(0, written).equals(expected)
  return { written, agrees }
}

function bucketLike(random: () => number, kind: number): Buffer {
  const block = Buffer.alloc(BLOCK_SIZE)
  if (kind === 1) block.fill(0x61)
  else if (kind === 2) for (let at = 0; at < BLOCK_SIZE; at++) block[at] = Math.floor(random() * 256)
  else if (kind === 3) for (let at = 0; at < 2000; at++) block[at] = Math.floor(random() * 4)
  else if (kind === 4) {
    // Short periods: matches that overlap their own output, at distances 1 to 19.
    const period = 1 + Math.floor(random() * 19)
    for (let at = 0; at < BLOCK_SIZE; at++) block[at] = at % period === 0 ? 7 : (at % period) * 13
  } else if (kind === 5) {
    for (let at = 64; at < 2500; at += 129) block.write(`user${String(Math.floor(random() * 1e12)).padStart(12, '0')}`, at + 5, 'latin1')
  }
  return block
}

test('the native LZ4 decoder reads what lz4-napi writes, for blocks of every kind, into the middle of a larger buffer', (t) => {
  const random = seededRandom(11)
  for (let round = 0; round < 60; round++) {
    const block = bucketLike(random, round % 6)
    const framed = compressSync(block)
    t.true(uncompressSync(framed).equals(block))
    const source = Buffer.concat([Buffer.alloc(16, 0xee), framed.subarray(4), Buffer.alloc(8, 0xee)])
    const target = Buffer.alloc(3 * BLOCK_SIZE, 0xdd)
    t.is(decodeLz4Block(source, 16, 16 + framed.length - 4, target, BLOCK_SIZE, 2 * BLOCK_SIZE), BLOCK_SIZE, `round ${round}`)
    t.true(target.subarray(BLOCK_SIZE, 2 * BLOCK_SIZE).equals(block), `round ${round}`)
    t.true(target.subarray(0, BLOCK_SIZE).every((byte) => byte === 0xdd) && target.subarray(2 * BLOCK_SIZE).every((byte) => byte === 0xdd), 'nothing outside the target range')
  }
})

test('the native LZ4 decoder refuses each kind of malformed payload', (t) => {
  const target = Buffer.alloc(3 * BLOCK_SIZE, 0xdd)
  const decode = (payload: number[], capacity = BLOCK_SIZE): number => {
    const source = Buffer.concat([Buffer.alloc(8, 0xee), Buffer.from(payload), Buffer.alloc(8, 0xee)])
    return decodeLz4Block(source, 8, source.length - 8, target, BLOCK_SIZE, BLOCK_SIZE + capacity)
  }
  t.is(decode([]), 0, 'an empty payload is an empty block')
  t.is(decode([0x50, 1, 2, 3, 4, 5]), 5, 'five literals, the last sequence')
  t.is(decode([0x60, 1, 2, 3, 4, 5]), -1, 'literals run past the payload')
  t.is(decode([0x10, 9, 0, 0]), -1, 'a match at distance 0')
  t.is(decode([0x10, 9, 2, 0]), -1, 'a match reaching before the output')
  t.is(decode([0x10, 9, 1]), -1, 'a truncated offset')
  t.is(decode([0xf0]), -1, 'a literal length continued past the payload')
  t.is(decode([0x1f, 9, 1, 0, 255, 255]), -1, 'a match length continued past the payload')
  t.is(decode([0x1f, 9, 1, 0, ...new Array<number>(17).fill(255), 0]), -1, 'a match longer than the target')
  t.is(decode([0x50, 1, 2, 3, 4, 5], 4), -1, 'literals longer than the target')
  t.is(decode([0x10, 9, 1, 0], 4), -1, 'a match one byte longer than the room left')
  t.is(decode([0x10, 9, 1, 0], 5), 5, 'a match that ends exactly at the capacity')
  t.true(target.subarray(0, BLOCK_SIZE).every((byte) => byte === 0xdd) && target.subarray(2 * BLOCK_SIZE).every((byte) => byte === 0xdd), 'nothing outside the target range')
})

test('fuzz: every truncation of real payloads is refused or decodes as the reference decoder says, within exact buffers', (t) => {
  const random = seededRandom(17)
  let cases = 0
  let refused = 0
  for (let kind = 0; kind < 6; kind++) {
    const payload = compressSync(bucketLike(random, kind)).subarray(4)
    for (let length = 0; length <= payload.length; length++) {
      for (const capacity of [BLOCK_SIZE, BLOCK_SIZE - 1, Math.floor(random() * BLOCK_SIZE)]) {
        const { written, agrees } = decodeExactly(payload.subarray(0, length), capacity)
        if (!agrees) t.fail(`kind ${kind}, ${length} of ${payload.length} bytes, capacity ${capacity}: the decoder says ${written}`)
        if (written === -1) refused++
        cases++
      }
    }
  }
  t.log(`${cases} truncations, ${refused} refused`)
  t.true(refused > 0 && refused < cases)
})

test('fuzz: random payloads and random mutations of real ones are refused or decode as the reference decoder says, within exact buffers', (t) => {
  const random = seededRandom(23)
  const payloads = [0, 3, 4, 5].map((kind) => compressSync(bucketLike(random, kind)).subarray(4))
  let cases = 0
  let decoded = 0
  for (let trial = 0; trial < 20_000; trial++) {
    let payload: Buffer
    if (trial % 2 === 0) {
      // Random bytes, biased towards the tokens and lengths that reach the decoder's limits.
      payload = Buffer.alloc(Math.floor(random() * 48))
      for (let at = 0; at < payload.length; at++) {
        const pick = random()
        payload[at] = pick < 0.2 ? 0xff : pick < 0.3 ? 0xf0 : pick < 0.4 ? 0x0f : pick < 0.5 ? 1 : Math.floor(random() * 256)
      }
    } else {
      payload = Buffer.from(payloads[trial % payloads.length]!)
      for (let flips = 1 + Math.floor(random() * 4); flips > 0; flips--) payload[Math.floor(random() * payload.length)] = Math.floor(random() * 256)
      payload = payload.subarray(0, Math.floor(random() * (payload.length + 1)))
    }
    const capacity = random() < 0.5 ? BLOCK_SIZE : Math.floor(random() * 600)
    const { written, agrees } = decodeExactly(payload, capacity)
    if (!agrees) t.fail(`trial ${trial} (${payload.toString('hex')}, capacity ${capacity}): the decoder says ${written}`)
    if (written >= 0) decoded++
    cases++
  }
  t.log(`${cases} payloads, ${decoded} decoded`)
  t.true(decoded > 0 && decoded < cases)
})

test('lz4Decode checks its arguments: ranges inside their buffers, whole numbers, byte arrays', (t) => {
  const source = Buffer.from([0x50, 1, 2, 3, 4, 5])
  const target = Buffer.alloc(16)
  t.is(binding.lz4Decode(source, 0, 6, target, 0, 16), 5)
  t.throws(() => binding.lz4Decode(source, 0, 7, target, 0, 16), { instanceOf: RangeError }, 'source end past its buffer')
  t.throws(() => binding.lz4Decode(source, 4, 3, target, 0, 16), { instanceOf: RangeError }, 'source start after its end')
  t.throws(() => binding.lz4Decode(source, -1, 6, target, 0, 16), { instanceOf: RangeError }, 'negative start')
  t.throws(() => binding.lz4Decode(source, 0, 6, target, 0, 17), { instanceOf: RangeError }, 'target end past its buffer')
  t.throws(() => binding.lz4Decode(source, 0.5, 6, target, 0, 16), { instanceOf: RangeError }, 'a fraction')
  t.throws(() => binding.lz4Decode(source, Number.NaN, 6, target, 0, 16), { instanceOf: RangeError }, 'NaN')
  t.throws(() => binding.lz4Decode(new Float64Array(2) as unknown as Uint8Array, 0, 6, target, 0, 16), { instanceOf: TypeError }, 'a typed array of other than bytes')
  t.throws(() => (binding.lz4Decode as (...args: unknown[]) => number)(source, 0, 6, target, 0), { instanceOf: TypeError }, 'five arguments')
  t.throws(() => (binding.lz4Decode as (...args: unknown[]) => number)(source, '0', 6, target, 0, 16), { instanceOf: TypeError }, 'a string offset')
  t.true(target.subarray(5).every((byte) => byte === 0), 'the refused calls wrote nothing')
})
