/**
 * The LZ4 decoders a GET on the compressed device could use, side by side on
 * bucket-like blocks: the native decoder of the shim (native/lz4.h, what
 * src/device/compressed/codec.ts uses), the JavaScript decoder it replaced
 * (kept here as the reference), and lz4-napi's uncompressSync plus the copy
 * into the caller's buffer. Decoders run interleaved, --reps times; the
 * report gives the median nanoseconds per 4 KiB block of each and the ratio
 * of each median to the native one.
 *
 *   node dist-test/bench/lz4-decode.js [--reps 7] [--blocks 2000] [--rounds 20]
 *
 * A block holds entries of a 24-byte key and a 100-byte random value (the
 * benchmarks' records, which do not compress), filled to 30, 50 and 75 % of
 * the block, zeros after: what a bucket looks like to the device.
 */

import { compressSync, uncompressSync } from 'lz4-napi'
import { performance } from 'node:perf_hooks'
import { decodeLz4Block } from '../src/device/compressed/codec'
import { keyFor } from './lib/keys'

const BLOCK_SIZE = 4096

function argument(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`)
  return index >= 0 && process.argv[index + 1] !== undefined ? process.argv[index + 1]! : fallback
}

/** The JavaScript LZ4 block decoder that src/device/compressed/codec.ts used before the native one (same contract). */
function decodeInJavaScript(source: Buffer, start: number, end: number, target: Buffer, targetStart: number, targetEnd: number): number {
  let input = start
  let output = targetStart
  while (input < end) {
    const token = source[input++]!
    let literals = token >>> 4
    if (literals === 15) {
      let more: number
      do {
        if (input >= end) return -1
        more = source[input++]!
        literals += more
      } while (more === 255)
    }
    if (literals > 0) {
      if (input + literals > end || output + literals > targetEnd) return -1
      if (literals > 16) source.copy(target, output, input, input + literals)
      else for (let index = 0; index < literals; index++) target[output + index] = source[input + index]!
      input += literals
      output += literals
    }
    if (input === end) break
    if (input + 2 > end) return -1
    const distance = source[input]! | (source[input + 1]! << 8)
    input += 2
    if (distance === 0 || distance > output - targetStart) return -1
    let length = (token & 15) + 4
    if ((token & 15) === 15) {
      let more: number
      do {
        if (input >= end) return -1
        more = source[input++]!
        length += more
      } while (more === 255)
    }
    if (output + length > targetEnd) return -1
    const from = output - distance
    if (length <= 16) {
      for (let index = 0; index < length; index++) target[output + index] = target[from + index]!
      output += length
    } else if (distance === 1) {
      target.fill(target[from]!, output, output + length)
      output += length
    } else if (distance >= length) {
      target.copyWithin(output, from, from + length)
      output += length
    } else {
      let left = length
      while (left > 0) {
        const step = Math.min(left, output - from)
        target.copyWithin(output, from, from + step)
        output += step
        left -= step
      }
    }
  }
  return output - targetStart
}

/** `count` bucket-like blocks filled to `fill`, as LZ4 payloads (no size prefix) and as lz4-napi frames. */
function makeBlocks(count: number, fill: number, seed: number): { payloads: Buffer[]; frames: Buffer[]; originals: Buffer[] } {
  let state = seed >>> 0
  const random = (): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0
    return state >>> 24
  }
  const payloads: Buffer[] = []
  const frames: Buffer[] = []
  const originals: Buffer[] = []
  for (let index = 0; index < count; index++) {
    const block = Buffer.alloc(BLOCK_SIZE)
    let at = 32
    let key = index * 1000
    while (at + 128 <= BLOCK_SIZE * fill) {
      block.writeUInt16LE(24, at)
      keyFor(key++, 24).copy(block, at + 4)
      for (let byte = 0; byte < 100; byte++) block[at + 28 + byte] = random()
      at += 128
    }
    const frame = compressSync(block)
    frames.push(frame)
    payloads.push(frame.subarray(4))
    originals.push(block)
  }
  return { payloads, frames, originals }
}

function median(values: number[]): number {
  const sorted = [...values].sort((left, right) => left - right)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

function main(): void {
  const reps = Number(argument('reps', '7'))
  const count = Number(argument('blocks', '2000'))
  const rounds = Number(argument('rounds', '20'))
  const target = Buffer.alloc(BLOCK_SIZE)
  const decoders: Record<string, (index: number, blocks: ReturnType<typeof makeBlocks>) => void> = {
    native: (index, blocks) => {
      const payload = blocks.payloads[index]!
      if (decodeLz4Block(payload, 0, payload.length, target, 0, BLOCK_SIZE) !== BLOCK_SIZE) throw new Error('native: wrong length')
    },
    javascript: (index, blocks) => {
      const payload = blocks.payloads[index]!
      if (decodeInJavaScript(payload, 0, payload.length, target, 0, BLOCK_SIZE) !== BLOCK_SIZE) throw new Error('javascript: wrong length')
    },
    'lz4-napi': (index, blocks) => {
      const decoded = uncompressSync(blocks.frames[index]!)
      if (decoded.copy(target, 0) !== BLOCK_SIZE) throw new Error('lz4-napi: wrong length')
    },
  }
  const names = Object.keys(decoders)
  for (const fill of [0.3, 0.5, 0.75]) {
    const blocks = makeBlocks(count, fill, Math.round(fill * 100))
    for (const name of names) {
      decoders[name]!(0, blocks)
      if (!target.equals(blocks.originals[0]!)) throw new Error(`${name} decodes block 0 wrongly`)
    }
    const samples = new Map<string, number[]>(names.map((name) => [name, []]))
    for (let rep = 0; rep < reps; rep++) {
      for (const name of rep % 2 === 0 ? names : [...names].reverse()) {
        const decode = decoders[name]!
        const started = performance.now()
        for (let round = 0; round < rounds; round++) for (let index = 0; index < count; index++) decode(index, blocks)
        samples.get(name)!.push(((performance.now() - started) * 1e6) / (rounds * count))
      }
    }
    const payloadBytes = Math.round(median(blocks.payloads.map((payload) => payload.length)))
    const nativeNs = median(samples.get('native')!)
    console.log(
      JSON.stringify({
        fill,
        payloadBytes,
        ...Object.fromEntries(names.map((name) => [`${name}NsPerBlock`, Math.round(median(samples.get(name)!))])),
        ...Object.fromEntries(names.slice(1).map((name) => [`${name}OverNative`, Math.round((median(samples.get(name)!) / nativeNs) * 100) / 100])),
      }),
    )
  }
}

main()
