/**
 * Choosing and creating the block device of a store.
 *
 * What lies at byte 0 of a volume says what it is:
 *  - all zeros (the first MiB, or the whole volume if smaller): nothing; a
 *    store may be created there;
 *  - the compressed layer's header magic "CUBBYLZ4" (docs/format.md 3.2): a
 *    store in 'lz4' mode, opened through CompressedBlockDevice;
 *  - anything else: raw mode; the engine checks for its own superblock at
 *    LBA 0 and reports CUBBY_NOT_A_STORE if it is not there.
 *
 * The mode is chosen when a store is created and recorded by what the store
 * writes at byte 0, so opening never needs to be told it.
 *
 * Who calls this: src/db.ts when opening a store. The engine never does.
 */

import { invalidArgument } from '../errors'
import { CompressedBlockDevice, hasHeaderMagic, type CompressedCreateOptions, type CompressedDeviceOptions } from './compressed'
import { RawBlockDevice } from './raw'
import type { BlockDevice, Volume } from './types'

/** How a store keeps its blocks: LZ4 software compression (default), or raw 4 KiB blocks. */
export type CompressionMode = 'lz4' | 'none'

export type VolumeContent = 'empty' | 'lz4' | 'other'

/** Bytes at the start of a volume that must be zero for it to count as empty. */
export const EMPTY_PROBE_BYTES = 1024 * 1024

/** Reads the start of `volume` and says what it holds. */
export async function probeVolume(volume: Volume): Promise<VolumeContent> {
  const bytes = Math.min(EMPTY_PROBE_BYTES, volume.size - (volume.size % volume.sectorSize))
  if (bytes === 0) return 'empty'
  const buffer = volume.allocate(bytes)
  await volume.read([{ offset: 0, length: bytes, buffer, bufferOffset: 0 }])
  if (hasHeaderMagic(buffer)) return 'lz4'
  for (let index = 0; index < bytes; index++) if (buffer[index] !== 0) return 'other'
  return 'empty'
}

export interface CreateDeviceOptions {
  compression: CompressionMode
  /** Logical capacity of the new device, in 4 KiB blocks. */
  blocks: number
  /** Tuning of the 'lz4' device (memory budget of its map, write buffer, segment size, ...); ignored for 'none'. */
  lz4?: Omit<CompressedCreateOptions, 'blocks'>
}

/** Lays a new block device of the chosen mode on `volume`, destroying what the volume held. */
export async function createDevice(volume: Volume, options: CreateDeviceOptions): Promise<BlockDevice> {
  if (options.compression === 'none') return RawBlockDevice.create(volume, options.blocks)
  if (options.compression === 'lz4') return CompressedBlockDevice.create(volume, { ...options.lz4, blocks: options.blocks })
  throw invalidArgument(`compression must be 'lz4' or 'none', not '${String(options.compression)}'`)
}

/** Opens the existing block device on `volume`, whose content `probeVolume` reported. */
export async function openDevice(
  volume: Volume,
  content: Exclude<VolumeContent, 'empty'>,
  options: { lz4?: CompressedDeviceOptions } = {},
): Promise<BlockDevice> {
  if (content === 'other') return new RawBlockDevice(volume)
  if (content === 'lz4') return CompressedBlockDevice.open(volume, options.lz4)
  throw invalidArgument(`cannot open a volume whose content is '${String(content)}'`)
}
