/**
 * The compressed block device (mode 'lz4'): software transparent compression
 * over any Volume. See ./device.ts for how it works and docs/format.md
 * section 3 for what it writes.
 */

export { CompressedBlockDevice, type CompressedCreateOptions, type CompressedDeviceOptions, type CompressedDeviceStats } from './device'
export { hasHeaderMagic } from './format'
