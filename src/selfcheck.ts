/**
 * The main job until the engine lands (`npm start`): a device self-check.
 *
 * Opens an image file (the path given, or one under os.tmpdir() that is
 * removed afterwards; a given path that already holds data is refused, since
 * the check overwrites blocks) through the native shim, writes blocks at random
 * places with a CRC-32C in each, syncs, reads them back and verifies every
 * one, then measures random 4 KiB reads at queue depth 32 for a moment.
 * Prints the I/O path used and the IOPS; exits non-zero if any block comes
 * back wrong.
 *
 *   npm start [-- /path/to/image-or-device]
 */

import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { BLOCK_SIZE, RawBlockDevice, openFileVolume, probeVolume } from './device'
import { crc32c } from './util/crc32c'

const DEVICE_BLOCKS = 16384 // 64 MiB
const CHECKED_BLOCKS = 2048
const BATCH_BLOCKS = 64
const MEASURE_SECONDS = 2
const QUEUE_DEPTH = 32

/** Block content: its LBA and a seed in the first 8 bytes, a pattern, and the CRC-32C of the rest in the last 4. */
function fillBlock(block: Buffer, lba: number, seed: number): void {
  block.writeUInt32LE(lba, 0)
  block.writeUInt32LE(seed, 4)
  for (let index = 8; index < BLOCK_SIZE - 4; index++) block[index] = (lba * 31 + seed + index) & 0xff
  block.writeUInt32LE(crc32c(block, 0, BLOCK_SIZE - 4), BLOCK_SIZE - 4)
}

function blockIsIntact(block: Buffer, lba: number): boolean {
  return block.readUInt32LE(0) === lba && block.readUInt32LE(BLOCK_SIZE - 4) === crc32c(block, 0, BLOCK_SIZE - 4)
}

async function main(): Promise<number> {
  const given = process.argv[2]
  const image = given ?? path.join(os.tmpdir(), `cubbydb-selfcheck-${process.pid}.img`)
  const volume = await openFileVolume(image, { create: given === undefined || !fs.existsSync(given) })
  try {
    if (given !== undefined && (await probeVolume(volume)) !== 'empty') {
      console.error(`${image} holds data; the self-check overwrites blocks, so it only runs on an empty target`)
      return 2
    }
    console.log(`cubbydb self-check on ${image}`)
    console.log(`  ${volume.kind}, I/O path ${volume.ioPath}${volume.ioUringUnavailable ? ` (io_uring unavailable: ${volume.ioUringUnavailable})` : ''}`)
    console.log(`  direct I/O ${volume.directIo ? 'on' : 'off'}, sector ${volume.sectorSize} B, physical sector ${volume.physicalSectorSize} B`)
    const device = await RawBlockDevice.create(volume, Math.min(DEVICE_BLOCKS, Math.floor(volume.size / BLOCK_SIZE) || DEVICE_BLOCKS))

    const lbas = new Set<number>()
    while (lbas.size < Math.min(CHECKED_BLOCKS, device.blockCount)) lbas.add(Math.floor(Math.random() * device.blockCount))
    const order = [...lbas]
    const seed = Date.now() >>> 0
    const buffer = device.allocate(BATCH_BLOCKS)
    for (let start = 0; start < order.length; start += BATCH_BLOCKS) {
      const batch = order.slice(start, start + BATCH_BLOCKS).map((lba, index) => {
        fillBlock(buffer.subarray(index * BLOCK_SIZE, (index + 1) * BLOCK_SIZE), lba, seed)
        return { lba, buffer, bufferOffset: index * BLOCK_SIZE }
      })
      await device.write(batch)
    }
    await device.flush()

    let damaged = 0
    for (let start = 0; start < order.length; start += BATCH_BLOCKS) {
      const batch = order.slice(start, start + BATCH_BLOCKS).map((lba, index) => ({ lba, buffer, bufferOffset: index * BLOCK_SIZE }))
      buffer.fill(0)
      await device.read(batch)
      batch.forEach(({ lba }, index) => {
        if (!blockIsIntact(buffer.subarray(index * BLOCK_SIZE, (index + 1) * BLOCK_SIZE), lba)) damaged++
      })
    }
    console.log(`  wrote, synced and read back ${order.length} blocks: ${damaged === 0 ? 'all intact' : `${damaged} DAMAGED`}`)

    let reads = 0
    const deadline = Date.now() + MEASURE_SECONDS * 1000
    const started = process.hrtime.bigint()
    await Promise.all(
      Array.from({ length: QUEUE_DEPTH }, async () => {
        const target = device.allocate(1)
        while (Date.now() < deadline) {
          await device.read([{ lba: order[Math.floor(Math.random() * order.length)]!, buffer: target, bufferOffset: 0 }])
          reads++
        }
      }),
    )
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    console.log(`  random 4 KiB reads at queue depth ${QUEUE_DEPTH}: ${Math.round(reads / seconds)} IOPS (${volume.ioPath})`)
    return damaged === 0 ? 0 : 1
  } finally {
    await volume.close()
    if (given === undefined) fs.rmSync(image, { force: true })
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  },
)
