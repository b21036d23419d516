// Helpers for the compressed-device tests: block contents of the kinds the
// engine writes, a fresh device over memory, reopening, and a model of the
// expected contents to compare against.
import { BLOCK_SIZE, CompressedBlockDevice, MemoryVolume, seededRandom, type CompressedCreateOptions, type MemoryBacking } from '../../src/device'

/** Fills block[at, at + 4096) like an engine bucket: ~`fill` of packed entries (24-byte 'user…' keys, 100 random bytes), zero tail. */
export function bucketBlock(seed: number, fill = 0.62, target: Buffer = Buffer.alloc(BLOCK_SIZE), at = 0): Buffer {
  const random = seededRandom(seed)
  target.fill(0, at, at + BLOCK_SIZE)
  let offset = at + 32
  target.writeUInt32LE(seed >>> 0, at)
  let index = 0
  while (offset - at + 128 <= BLOCK_SIZE * fill) {
    target.writeUInt16LE(24, offset)
    target.writeUInt16LE(100, offset + 2)
    target.write(`user${String(Math.floor(random() * 1e15)).padStart(20, '0')}`, offset + 4, 24, 'latin1')
    for (let byte = 0; byte < 100; byte++) target[offset + 28 + byte] = Math.floor(random() * 256)
    offset += 128
    index++
  }
  target.writeUInt16LE(index, at + 4)
  return target
}

/** A block of random bytes (does not compress). */
export function randomBlock(seed: number, target: Buffer = Buffer.alloc(BLOCK_SIZE), at = 0): Buffer {
  const random = seededRandom(seed)
  for (let index = 0; index < BLOCK_SIZE; index += 4) target.writeUInt32LE(Math.floor(random() * 0x1_0000_0000), at + index)
  return target
}

/** A highly compressible block that still differs by seed. */
export function textBlock(seed: number, target: Buffer = Buffer.alloc(BLOCK_SIZE), at = 0): Buffer {
  const line = Buffer.from(`block ${seed} says hello; `, 'latin1')
  for (let index = 0; index < BLOCK_SIZE; index++) target[at + index] = line[index % line.length]!
  return target
}

export type BlockKind = 'bucket' | 'random' | 'text' | 'zero'

export function makeBlock(kind: BlockKind, seed: number): Buffer {
  if (kind === 'bucket') return bucketBlock(seed)
  if (kind === 'random') return randomBlock(seed)
  if (kind === 'text') return textBlock(seed)
  return Buffer.alloc(BLOCK_SIZE)
}

export async function createMemoryDevice(
  options: Partial<CompressedCreateOptions> = {},
  volumeOptions: ConstructorParameters<typeof MemoryVolume>[0] = {},
): Promise<{ device: CompressedBlockDevice; volume: MemoryVolume }> {
  const volume = new MemoryVolume({ size: 0, ...volumeOptions })
  const device = await CompressedBlockDevice.create(volume, { blocks: 4096, segmentBytes: 256 * 1024, ...options })
  return { device, volume }
}

/** Opens the device again over the same memory (the previous one must be closed or its volume dead). */
export async function reopenMemoryDevice(
  backing: MemoryBacking,
  options: Parameters<typeof CompressedBlockDevice.open>[1] = {},
  volumeOptions: ConstructorParameters<typeof MemoryVolume>[0] = {},
): Promise<CompressedBlockDevice> {
  return CompressedBlockDevice.open(new MemoryVolume(volumeOptions, backing), options)
}

export async function writeBlocks(device: CompressedBlockDevice, blocks: ReadonlyArray<{ lba: number; data: Buffer }>): Promise<void> {
  if (blocks.length === 0) return
  const buffer = device.allocate(blocks.length)
  blocks.forEach((block, index) => block.data.copy(buffer, index * BLOCK_SIZE))
  await device.write(blocks.map((block, index) => ({ lba: block.lba, buffer, bufferOffset: index * BLOCK_SIZE })))
}

export async function readBlocks(device: CompressedBlockDevice, lbas: readonly number[]): Promise<Buffer[]> {
  if (lbas.length === 0) return []
  const buffer = device.allocate(lbas.length)
  buffer.fill(0xee)
  await device.read(lbas.map((lba, index) => ({ lba, buffer, bufferOffset: index * BLOCK_SIZE })))
  return lbas.map((_, index) => Buffer.from(buffer.subarray(index * BLOCK_SIZE, (index + 1) * BLOCK_SIZE)))
}

/** Compares every block in [0, count) with `model` (absent = zeros); returns the first mismatching LBA or -1. */
export async function firstMismatch(device: CompressedBlockDevice, model: ReadonlyMap<number, Buffer>, count: number): Promise<number> {
  const zero = Buffer.alloc(BLOCK_SIZE)
  for (let first = 0; first < count; first += 256) {
    const lbas = Array.from({ length: Math.min(256, count - first) }, (_, index) => first + index)
    const blocks = await readBlocks(device, lbas)
    for (let index = 0; index < lbas.length; index++) {
      if (!blocks[index]!.equals(model.get(lbas[index]!) ?? zero)) return lbas[index]!
    }
  }
  return -1
}
