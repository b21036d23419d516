/**
 * The two storage interfaces every layer of CubbyDB is written against.
 *
 *   engine (src/engine)           -- BlockDevice: 4 KiB logical blocks (LBAs)
 *   block devices (src/device)    -- RawBlockDevice, CompressedBlockDevice
 *   volumes (src/device)          -- Volume: sector-aligned byte ranges
 *   native shim (native/)         -- file descriptors, O_DIRECT, io_uring
 *
 * A Volume is the byte-addressed backing store: an image file or a /dev node
 * opened through the native shim (NativeVolume), or memory (MemoryVolume).
 * Wrappers such as FaultyVolume stack on any Volume. Nothing above
 * src/device/ sees a Volume's file descriptor, only these interfaces.
 *
 * A BlockDevice presents 4 KiB logical blocks on top of a Volume. The raw one
 * maps LBA n to byte n * 4096; the compressed one stores each block LZ4-packed
 * and keeps a map. The engine addresses blocks only.
 *
 * Contracts common to both:
 *  - Every I/O call takes a whole batch and settles once (readEach reports
 *    once per request instead). A rejected batch may have applied any subset
 *    of its writes (like a device); callers that need atomicity build it
 *    above (WAL, journal).
 *  - Buffers handed to read/write must come from `allocate()` of the same
 *    object (they are aligned for direct I/O). Offsets and lengths must be
 *    multiples of `sectorSize` (Volume) or of BLOCK_SIZE (BlockDevice). A
 *    misaligned request is rejected with CUBBY_INVALID_ARGUMENT, never bounced.
 *  - A write is durable only after a later `sync()` / `flush()` resolves.
 *  - Errors are CubbyError: CUBBY_IO (with errno, syscall, path),
 *    CUBBY_INVALID_ARGUMENT, CUBBY_CLOSED, CUBBY_FULL, CUBBY_READ_ONLY.
 *  - `close()` waits for every I/O in flight, and is idempotent.
 */

import type { CubbyError } from '../errors'

/**
 * How readEach() reports a batch: `onRequest(index, error)` once per request,
 * `error` undefined when request `index` succeeded, in the order requests
 * finish, never before readEach() returns. A failed request does not stop
 * the others. So a caller waits for its own read only, not for the slowest
 * one of a batch, and a batch still costs one call down to the kernel.
 * The callback must not throw.
 */
export type ReportEach = (index: number, error: CubbyError | undefined) => void

/** Logical block size of every BlockDevice. Stored on disk: never changes. */
export const BLOCK_SIZE = 4096

/** Byte-range request of a Volume batch. */
export interface VolumeRequest {
  /** Byte offset on the volume; a multiple of `sectorSize`. */
  offset: number
  /** Bytes to transfer; a positive multiple of `sectorSize`. */
  length: number
  /** Buffer from `allocate()`; the bytes go to/come from buffer[bufferOffset, bufferOffset + length). */
  buffer: Buffer
  /** Offset into `buffer`; a multiple of `sectorSize`. */
  bufferOffset: number
}

export type VolumeKind = 'file' | 'block' | 'memory'

export interface VolumeStats {
  reads: number
  writes: number
  bytesRead: number
  bytesWritten: number
  syncs: number
  discards: number
}

export interface Volume {
  /** What the volume is (for messages and errors). */
  readonly path: string
  readonly kind: VolumeKind
  /** Current size in bytes. Files grow through `grow()`; block devices are fixed. */
  readonly size: number
  /** Required alignment of offsets and lengths (logical sector size or DIO alignment), e.g. 512 or 4096. */
  readonly sectorSize: number
  /** Physical sector size: writes of this size and alignment are the device's atomic unit (best knowledge). */
  readonly physicalSectorSize: number
  /** Whether `grow()` can extend the volume (image files: yes; block devices: no). */
  readonly growable: boolean
  readonly readOnly: boolean
  /** Human-readable name of the I/O path, e.g. 'io_uring', 'threadpool', 'memory'. */
  readonly ioPath: string

  /** An aligned, zero-filled buffer usable for I/O on this volume. */
  allocate(bytes: number): Buffer
  read(requests: readonly VolumeRequest[]): Promise<void>
  /** Reads like read(), one batch, but reports each request as soon as it is done (see ReportEach). */
  readEach(requests: readonly VolumeRequest[], onRequest: ReportEach): void
  write(requests: readonly VolumeRequest[]): Promise<void>
  /** Make every completed write durable (fdatasync). After a failed sync the volume refuses writes. */
  sync(): Promise<void>
  /** Release the space of a byte range (punch hole / BLKDISCARD). Reads of it then return zeros. */
  discard(offset: number, length: number): Promise<void>
  /** Grow a growable volume to `size` bytes (sparse). Never shrinks. */
  grow(size: number): Promise<void>
  /** Bytes of backing store actually allocated (file: st_blocks * 512; device: its size; memory: chunks held). */
  allocatedBytes(): number
  stats(): VolumeStats
  close(): Promise<void>
}

/** One block of a BlockDevice batch: block `lba` <-> buffer[bufferOffset, bufferOffset + BLOCK_SIZE). */
export interface BlockRequest {
  lba: number
  buffer: Buffer
  bufferOffset: number
}

export type DeviceMode = 'raw' | 'lz4'

export interface DeviceStats {
  mode: DeviceMode
  /** Batches and blocks asked of the device by its user. */
  reads: number
  writes: number
  bytesRead: number
  bytesWritten: number
  flushes: number
  trims: number
  /** Logical blocks currently holding data, in bytes (BLOCK_SIZE each), where the device knows it. */
  logicalBytes: number
  /** Bytes of the backing volume in use. */
  physicalBytes: number
  /** I/O the device itself issued to its volume (for the compressed device includes cleaning). */
  volume: VolumeStats
  /** Bytes of memory the device holds (maps, caches, buffers), for db.stats().memory. */
  memoryBytes: number
}

export interface BlockDevice {
  readonly mode: DeviceMode
  /** Logical capacity in blocks; valid LBAs are [0, blockCount). */
  readonly blockCount: number
  /** Description of the I/O path underneath, e.g. 'io_uring' (from the volume). */
  readonly ioPath: string
  readonly readOnly: boolean

  /** An aligned, zero-filled buffer of `blocks` * BLOCK_SIZE bytes for read/write. */
  allocate(blocks: number): Buffer
  /** Reads every requested block in one batch. A never-written or trimmed block reads as zeros. */
  read(requests: readonly BlockRequest[]): Promise<void>
  /** Reads like read(), one batch, but reports each block as soon as it is read (see ReportEach): the GET path. */
  readEach(requests: readonly BlockRequest[], onBlock: ReportEach): void
  write(requests: readonly BlockRequest[]): Promise<void>
  /** Forget the content of blocks [lba, lba + count): they read as zeros and take no physical space. */
  trim(lba: number, count: number): Promise<void>
  /** Make every completed write and trim durable. After a failed flush the device refuses writes. */
  flush(): Promise<void>
  stats(): DeviceStats
  /**
   * Bytes the device holds in a cache of its own that count against the
   * store's cache budget (the LZ4 layer's cached block-map pages); the
   * bucket cache gives them room. Devices without such a cache omit it.
   */
  cacheChargeBytes?(): number
  close(): Promise<void>
}
