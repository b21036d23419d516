/**
 * The block-device layer: Volumes (bytes) and BlockDevices (4 KiB logical
 * blocks). See ./types.ts for the contracts.
 */

export * from './types'
export { reportWhenSettled } from './report-each'
export { DelegatingVolume } from './delegating'
export { MemoryBacking, MemoryVolume, type MemoryVolumeOptions } from './memory'
export { RawBlockDevice } from './raw'
export { FaultyVolume, resolvePowerCut, seededRandom, type FaultOperation, type FaultRule, type PendingWrite, type PowerCutOptions, type PowerCutResult } from './faulty'
export { NativeVolume, openFileVolume, type FileVolumeOptions } from './file'
export { createDevice, openDevice, probeVolume, type CompressionMode, type CreateDeviceOptions, type VolumeContent } from './open'
export { CompressedBlockDevice, type CompressedCreateOptions, type CompressedDeviceOptions, type CompressedDeviceStats } from './compressed'
