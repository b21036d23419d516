/**
 * The block-device layer: Volumes (bytes) and BlockDevices (4 KiB logical
 * blocks). See ./types.ts for the contracts.
 */

export * from './types'
export { MemoryBacking, MemoryVolume, type MemoryVolumeOptions } from './memory'
export { RawBlockDevice } from './raw'
export { FaultyVolume, seededRandom, type FaultOperation, type FaultRule, type PowerCutOptions } from './faulty'
export { NativeVolume, openFileVolume, type FileVolumeOptions } from './file'
export { createDevice, openDevice, probeVolume, type CompressionMode, type CreateDeviceOptions, type VolumeContent } from './open'
export { CompressedBlockDevice, type CompressedCreateOptions, type CompressedDeviceOptions, type CompressedDeviceStats } from './compressed'
