/**
 * Benchmark of the compressed block device (lz4 mode) against what the issue
 * asks of it, on image files (the temporary buffered file volume until the
 * native one lands, so CPU figures include node:fs calls and page-cache
 * copies, for both devices alike).
 *
 *   space      synthetic engine buckets for 3M keys (and 1M): allocated bytes
 *              of the image vs raw key + value bytes            (target <= 1.25x)
 *   memory     serving RSS of a process that opened each store and read every
 *              block once (whole map cached), 3M minus 1M keys   (target <= 0.25 B/key)
 *   overwrite  10 random overwrites of the whole 3M-key data set: peak
 *              physical use vs 1.3x live + reserve, cleaning write amplification
 *   cpu        CPU per 4 KiB block read and written, lz4 vs raw, and volume
 *              reads per block read                              (must be 1.0)
 *
 * Usage: npm run bench:compressed [-- space memory overwrite cpu]
 * Images go to $CUBBY_BENCH_DIR (default bench/results/tmp/), and are
 * deleted at the end unless CUBBY_BENCH_KEEP=1.
 *
 * Buckets are built like the engine's: a 32-byte header, then entries of
 * 2 + 2 bytes of lengths, a 24-byte key 'user' + 20 digits, and 100 random
 * bytes; Poisson(20) entries per bucket (mean fill 62.5%), zero tail.
 */

import { execFileSync } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { BLOCK_SIZE, CompressedBlockDevice, RawBlockDevice, openFileVolume, seededRandom, type BlockDevice } from '../src/device'

const KEY_BYTES = 24
const VALUE_BYTES = 100
const ENTRY_BYTES = 4 + KEY_BYTES + VALUE_BYTES
const BUCKET_HEADER_BYTES = 32
const MEAN_KEYS_PER_BUCKET = 20
const MAX_KEYS_PER_BUCKET = Math.floor((BLOCK_SIZE - BUCKET_HEADER_BYTES) / ENTRY_BYTES)
const BATCH_BLOCKS = 256
const FLUSH_EVERY_BLOCKS = 4096

const directory = process.env.CUBBY_BENCH_DIR ?? path.join(__dirname, '..', '..', 'bench', 'results', 'tmp')

/** Fills target[at, +4096) with a bucket of `keys` entries; returns the key + value bytes it holds. */
function fillBucket(target: Buffer, at: number, keys: number, lsn: number): number {
  const entries = at + BUCKET_HEADER_BYTES
  target.fill(0, at, entries)
  randomFillSync(target, entries, keys * ENTRY_BYTES)
  target.fill(0, entries + keys * ENTRY_BYTES, at + BLOCK_SIZE)
  target.writeUInt32LE(0x4b435542, at)
  target.writeUInt16LE(keys, at + 4)
  target.writeUInt32LE(lsn, at + 8)
  for (let key = 0, offset = entries; key < keys; key++, offset += ENTRY_BYTES) {
    target.writeUInt16LE(KEY_BYTES, offset)
    target.writeUInt16LE(VALUE_BYTES, offset + 2)
    target.write('user', offset + 4, 4, 'latin1')
    // 20 random decimal digits, like YCSB's hashed key numbers.
    for (let digit = offset + 8; digit < offset + 4 + KEY_BYTES; digit++) target[digit] = 48 + (target[digit]! % 10)
  }
  target.writeUInt32LE(lsn ^ keys, at + 12)
  return keys * (KEY_BYTES + VALUE_BYTES)
}

function poisson(random: () => number, mean: number): number {
  const limit = Math.exp(-mean)
  let count = 0
  let product = random()
  while (product > limit) {
    count++
    product *= random()
  }
  return Math.min(count, MAX_KEYS_PER_BUCKET)
}

function imagePath(name: string): string {
  return path.join(directory, name)
}

function removeImage(name: string): void {
  fs.rmSync(imagePath(name), { force: true })
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}

/** Writes buckets holding `targetKeys` keys to a new lz4 store; returns what was stored. */
async function buildStore(name: string, targetKeys: number, seed: number): Promise<{ blocks: number; keys: number; keyValueBytes: number }> {
  removeImage(name)
  const blocks = Math.ceil(targetKeys / MEAN_KEYS_PER_BUCKET)
  const volume = await openFileVolume(imagePath(name), { create: true })
  const device = await CompressedBlockDevice.create(volume, { blocks })
  const random = seededRandom(seed)
  const buffer = device.allocate(BATCH_BLOCKS)
  let keys = 0
  let keyValueBytes = 0
  for (let first = 0; first < blocks; first += BATCH_BLOCKS) {
    const count = Math.min(BATCH_BLOCKS, blocks - first)
    const requests = []
    for (let index = 0; index < count; index++) {
      const bucketKeys = poisson(random, MEAN_KEYS_PER_BUCKET)
      keys += bucketKeys
      keyValueBytes += fillBucket(buffer, index * BLOCK_SIZE, bucketKeys, first + index)
      requests.push({ lba: first + index, buffer, bufferOffset: index * BLOCK_SIZE })
    }
    await device.write(requests)
    if ((first + count) % FLUSH_EVERY_BLOCKS < BATCH_BLOCKS) await device.flush()
  }
  await device.close()
  return { blocks, keys, keyValueBytes }
}

async function space(): Promise<void> {
  for (const [name, targetKeys] of [
    ['space-3m.img', 3_000_000],
    ['space-1m.img', 1_000_000],
  ] as const) {
    const started = Date.now()
    const stored = await buildStore(name, targetKeys, targetKeys)
    const volume = await openFileVolume(imagePath(name), { readOnly: true })
    const allocated = volume.allocatedBytes()
    await volume.close()
    console.log(
      `space ${name}: ${stored.keys} keys in ${stored.blocks} buckets; key+value ${mib(stored.keyValueBytes)}; ` +
        `image allocated ${mib(allocated)} = ${(allocated / stored.keyValueBytes).toFixed(3)}x key+value ` +
        `(raw 4 KiB blocks would be ${mib(stored.blocks * BLOCK_SIZE)} = ${((stored.blocks * BLOCK_SIZE) / stored.keyValueBytes).toFixed(3)}x); ` +
        `built in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    )
  }
}

/**
 * Child process: open a store and read PROBE_READS blocks, cycling over all
 * of them (so the whole map is cached, and both stores see the same number
 * of reads and the same garbage); report RSS and the device's memory.
 */
const PROBE_READS = 300_000
async function memoryProbe(name: string): Promise<void> {
  const device = await CompressedBlockDevice.open(await openFileVolume(imagePath(name), { readOnly: true }))
  const buffer = device.allocate(64)
  for (let done = 0; done < PROBE_READS; done += 64) {
    await device.read(Array.from({ length: 64 }, (_, index) => ({ lba: (done + index) % device.blockCount, buffer, bufferOffset: index * BLOCK_SIZE })))
  }
  for (let round = 0; round < 3; round++) (globalThis as { gc?: () => void }).gc?.()
  await new Promise((resolve) => setTimeout(resolve, 100))
  const stats = device.stats()
  const usage = process.memoryUsage()
  console.log(JSON.stringify({ rss: usage.rss, heap: usage.heapUsed + usage.external, device: stats.memoryBytes, mapPages: stats.mapCachedPages, blocks: device.blockCount }))
  await device.close()
}

async function memory(): Promise<void> {
  if (!fs.existsSync(imagePath('space-1m.img')) || !fs.existsSync(imagePath('space-3m.img'))) await space()
  const probe = (name: string) => {
    const samples = [0, 1, 2, 3, 4].map(
      () =>
        JSON.parse(execFileSync(process.execPath, ['--expose-gc', __filename, 'memory-probe', name], { encoding: 'utf8' }).trim()) as {
          rss: number
          heap: number
          device: number
          mapPages: number
          blocks: number
        },
    )
    samples.sort((left, right) => left.rss - right.rss)
    console.log(`memory ${name}: RSS of 5 processes ${samples.map((sample) => mib(sample.rss)).join(', ')}`)
    return samples[2]!
  }
  const one = probe('space-1m.img')
  const three = probe('space-3m.img')
  const keys = 2_000_000
  console.log(
    `memory: serving RSS 1M keys ${mib(one.rss)}, 3M keys ${mib(three.rss)}: ${((three.rss - one.rss) / keys).toFixed(3)} B/key (medians of 5 processes each, ${PROBE_READS} reads in each); ` +
      `JS heap + external ${mib(one.heap)} -> ${mib(three.heap)}: ${((three.heap - one.heap) / keys).toFixed(3)} B/key; ` +
      `device memory ${mib(one.device)} -> ${mib(three.device)}: ${((three.device - one.device) / keys).toFixed(3)} B/key, ` +
      `${((three.device - one.device) / (three.blocks - one.blocks)).toFixed(2)} B per block in use; map pages cached ${one.mapPages} -> ${three.mapPages}`,
  )
}

async function overwrite(): Promise<void> {
  const name = 'overwrite-3m.img'
  const stored = await buildStore(name, 3_000_000, 7)
  const device = await CompressedBlockDevice.open(await openFileVolume(imagePath(name)))
  const random = seededRandom(11)
  const buffer = device.allocate(BATCH_BLOCKS)
  const rounds = 10
  const total = stored.blocks * rounds
  let worstBound = 0
  let worstPhysical = 0
  const before = device.stats()
  const started = Date.now()
  for (let written = 0; written < total; written += BATCH_BLOCKS) {
    const requests = []
    for (let index = 0; index < BATCH_BLOCKS; index++) {
      fillBucket(buffer, index * BLOCK_SIZE, poisson(random, MEAN_KEYS_PER_BUCKET), written + index)
      requests.push({ lba: Math.floor(random() * stored.blocks), buffer, bufferOffset: index * BLOCK_SIZE })
    }
    await device.write(requests)
    if ((written + BATCH_BLOCKS) % FLUSH_EVERY_BLOCKS < BATCH_BLOCKS) await device.flush()
    if ((written / BATCH_BLOCKS) % 16 === 0) {
      const stats = device.stats()
      const reserve = device.cleaner.reserveBytes
      worstBound = Math.max(worstBound, device.cleaner.usedBytes() / (1.3 * stats.liveBytes + reserve))
      worstPhysical = Math.max(worstPhysical, (stats.physicalBytes - reserve) / stats.liveBytes)
    }
  }
  await device.flush()
  const stats = device.stats()
  const writer = stats.writerRecordBytes - before.writerRecordBytes
  const cleaner = stats.cleaningBytesMoved - before.cleaningBytesMoved
  console.log(
    `overwrite: ${rounds}x ${stored.blocks} blocks at random in ${((Date.now() - started) / 1000).toFixed(0)} s; ` +
      `live ${mib(stats.liveBytes)}, physical in use ${mib(stats.physicalBytes)} (image allocated ${mib(stats.volumeAllocatedBytes)}), ` +
      `fixed reserve ${mib(device.cleaner.reserveBytes)}; peak data-area use ${(worstBound * 100).toFixed(1)}% of 1.3x live + reserve, ` +
      `peak (physical - reserve) / live ${worstPhysical.toFixed(3)}; cleaning moved ${mib(cleaner)} for ${mib(writer)} written: ` +
      `cleaning write amplification ${((writer + cleaner) / writer).toFixed(2)}; all volume writes (records, padding, map pages, checkpoints) ` +
      `${mib(stats.volume.bytesWritten - before.volume.bytesWritten)} = ${((stats.volume.bytesWritten - before.volume.bytesWritten) / writer).toFixed(2)}x the records written; ` +
      `${stats.checkpoints} checkpoints, padding ${mib(stats.paddingBytes)}`,
  )
  // Then the writes stop: idle cleaning (after 250 ms without a write) takes use down toward live.
  const quietStarted = Date.now()
  while (Date.now() - quietStarted < 120_000) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    if (Date.now() - quietStarted > 1000 && !device.cleaner.idleCleaning && !device.cleaner.idleWanted()) break
  }
  const quiet = device.stats()
  const idleMoved = quiet.cleaningBytesMoved - stats.cleaningBytesMoved
  console.log(
    `overwrite, then idle: after ${((Date.now() - quietStarted) / 1000).toFixed(0)} s without writes (${device.cleaner.idleRounds} idle rounds, ` +
      `${device.cleaner.idleSegmentsCleaned} segments emptied, ${mib(idleMoved)} moved), physical in use ${mib(quiet.physicalBytes)} ` +
      `(image allocated ${mib(quiet.volumeAllocatedBytes)}) = ${(quiet.physicalBytes / quiet.liveBytes).toFixed(3)}x live; ` +
      `cleaning write amplification with the idle copies ${((writer + cleaner + idleMoved) / writer).toFixed(2)}`,
  )
  await device.close()
  removeImage(name)
}

async function measureDevice(device: BlockDevice, blocks: number, label: string): Promise<string> {
  const random = seededRandom(3)
  const buffer = device.allocate(32)
  const fill = device.allocate(BATCH_BLOCKS)
  for (let first = 0; first < blocks; first += BATCH_BLOCKS) {
    const count = Math.min(BATCH_BLOCKS, blocks - first)
    for (let index = 0; index < count; index++) fillBucket(fill, index * BLOCK_SIZE, poisson(random, MEAN_KEYS_PER_BUCKET), first)
    await device.write(Array.from({ length: count }, (_, index) => ({ lba: first + index, buffer: fill, bufferOffset: index * BLOCK_SIZE })))
  }
  await device.flush()
  // Writes: time only the device calls, not the bucket generation.
  let writeMicros = 0
  const writeBlocks = 20_000
  for (let first = 0; first < writeBlocks; first += 32) {
    for (let index = 0; index < 32; index++) fillBucket(buffer, index * BLOCK_SIZE, poisson(random, MEAN_KEYS_PER_BUCKET), first)
    const requests = Array.from({ length: 32 }, (_, index) => ({ lba: Math.floor(random() * blocks), buffer, bufferOffset: index * BLOCK_SIZE }))
    const cpu = process.cpuUsage()
    await device.write(requests)
    const used = process.cpuUsage(cpu)
    writeMicros += used.user + used.system
  }
  await device.flush()
  const lbas = Array.from({ length: 100_000 }, () => Math.floor(random() * blocks))
  for (const lba of lbas.slice(0, 5000)) await device.read([{ lba, buffer, bufferOffset: 0 }])
  const volumeReadsBefore = device.stats().volume.reads
  let cpu = process.cpuUsage()
  for (const lba of lbas) await device.read([{ lba, buffer, bufferOffset: 0 }])
  let used = process.cpuUsage(cpu)
  const singleMicros = (used.user + used.system) / lbas.length
  const readsPerBlock = (device.stats().volume.reads - volumeReadsBefore) / lbas.length
  cpu = process.cpuUsage()
  for (let first = 0; first < lbas.length; first += 32) {
    await device.read(lbas.slice(first, first + 32).map((lba, index) => ({ lba, buffer, bufferOffset: index * BLOCK_SIZE })))
  }
  used = process.cpuUsage(cpu)
  const batchMicros = (used.user + used.system) / lbas.length
  return (
    `${label}: read ${singleMicros.toFixed(2)} µs CPU per block (batches of 1), ${batchMicros.toFixed(2)} µs (batches of 32); ` +
    `write ${(writeMicros / writeBlocks).toFixed(2)} µs per block (batches of 32); volume reads per block read ${readsPerBlock.toFixed(3)}`
  )
}

async function cpu(): Promise<void> {
  const blocks = 20_000
  removeImage('cpu-lz4.img')
  removeImage('cpu-raw.img')
  const lz4 = await CompressedBlockDevice.create(await openFileVolume(imagePath('cpu-lz4.img'), { create: true }), { blocks })
  console.log(`cpu ${await measureDevice(lz4, blocks, 'lz4')}`)
  await lz4.close()
  const raw = await RawBlockDevice.create(await openFileVolume(imagePath('cpu-raw.img'), { create: true }), blocks)
  console.log(`cpu ${await measureDevice(raw, blocks, 'raw')}`)
  await raw.close()
  removeImage('cpu-lz4.img')
  removeImage('cpu-raw.img')
}

async function main(): Promise<void> {
  const [first, second] = process.argv.slice(2)
  if (first === 'memory-probe') return memoryProbe(second!)
  fs.mkdirSync(directory, { recursive: true })
  const phases = process.argv.slice(2)
  const all = phases.length === 0
  console.log(`compressed-device benchmark; node ${process.version}; images in ${directory}`)
  if (all || phases.includes('space')) await space()
  if (all || phases.includes('memory')) await memory()
  if (all || phases.includes('overwrite')) await overwrite()
  if (all || phases.includes('cpu')) await cpu()
  if (process.env.CUBBY_BENCH_KEEP !== '1') {
    removeImage('space-1m.img')
    removeImage('space-3m.img')
  }
}

main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
