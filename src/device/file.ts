/**
 * openFileVolume: a Volume over an image file or a /dev block device.
 *
 * TEMPORARY IMPLEMENTATION. This version uses node:fs with buffered I/O and
 * no lock, so that the engine can be developed and crash-tested on real files
 * while the native direct-I/O shim is being written. The native shim replaces
 * the body of this module; the exported names and options stay as they are.
 */

import * as fs from 'node:fs'
import { CubbyError, ErrorCode, closedError, invalidArgument } from '../errors'
import { checkByteRange, checkVolumeRequests } from './validate'
import type { Volume, VolumeRequest, VolumeStats } from './types'

export interface FileVolumeOptions {
  /** Open for reading only (default false). */
  readOnly?: boolean
  /** Create the file if it does not exist (default false). Never applies to /dev nodes. */
  create?: boolean
  /** Allow buffered I/O where the file system refuses O_DIRECT (default false: refuse with an error). */
  buffered?: boolean
  /** Which asynchronous I/O path to use (default 'auto': io_uring when the kernel allows it). */
  ioPath?: 'auto' | 'io_uring' | 'threadpool'
}

function ioError(error: unknown, syscall: string, path: string): CubbyError {
  const code = (error as NodeJS.ErrnoException).code ?? 'EIO'
  const errnoNumber = (error as NodeJS.ErrnoException).errno
  const mapped = code === 'EROFS' || code === 'EACCES' ? ErrorCode.READ_ONLY : ErrorCode.IO
  return new CubbyError(mapped, `${syscall} ${path}: ${(error as Error).message}`, {
    errno: code,
    ...(errnoNumber === undefined ? {} : { errnoNumber: Math.abs(errnoNumber) }),
    syscall,
    path,
    cause: error,
  })
}

class BufferedFileVolume implements Volume {
  readonly kind = 'file' as const
  readonly sectorSize = 512
  readonly physicalSectorSize = 4096
  readonly growable = true
  readonly ioPath = 'node-fs (temporary)'
  private closed = false
  private readonly counters: VolumeStats = { reads: 0, writes: 0, bytesRead: 0, bytesWritten: 0, syncs: 0, discards: 0 }

  constructor(
    readonly path: string,
    private readonly fd: number,
    public size: number,
    readonly readOnly: boolean,
  ) {}

  allocate(bytes: number): Buffer {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw invalidArgument(`cannot allocate ${bytes} bytes`)
    return Buffer.alloc(bytes)
  }

  async read(requests: readonly VolumeRequest[]): Promise<void> {
    this.checkOpen()
    checkVolumeRequests(requests, this.sectorSize, this.size, this.path)
    for (const { offset, length, buffer, bufferOffset } of requests) {
      try {
        const got = fs.readSync(this.fd, buffer, bufferOffset, length, offset)
        if (got < length) buffer.fill(0, bufferOffset + got, bufferOffset + length)
      } catch (error) {
        throw ioError(error, 'pread', this.path)
      }
      this.counters.reads++
      this.counters.bytesRead += length
    }
  }

  async write(requests: readonly VolumeRequest[]): Promise<void> {
    this.checkWritable()
    checkVolumeRequests(requests, this.sectorSize, this.size, this.path)
    for (const { offset, length, buffer, bufferOffset } of requests) {
      try {
        fs.writeSync(this.fd, buffer, bufferOffset, length, offset)
      } catch (error) {
        throw ioError(error, 'pwrite', this.path)
      }
      this.counters.writes++
      this.counters.bytesWritten += length
    }
  }

  async sync(): Promise<void> {
    this.checkWritable()
    try {
      fs.fdatasyncSync(this.fd)
    } catch (error) {
      throw ioError(error, 'fdatasync', this.path)
    }
    this.counters.syncs++
  }

  async discard(offset: number, length: number): Promise<void> {
    this.checkWritable()
    checkByteRange(offset, length, this.sectorSize, this.size, this.path)
    const zeros = Buffer.alloc(Math.min(length, 1 << 20))
    for (let done = 0; done < length; done += zeros.length) {
      fs.writeSync(this.fd, zeros, 0, Math.min(zeros.length, length - done), offset + done)
    }
    this.counters.discards++
  }

  async grow(size: number): Promise<void> {
    this.checkWritable()
    if (size <= this.size) return
    try {
      fs.ftruncateSync(this.fd, size)
    } catch (error) {
      throw ioError(error, 'ftruncate', this.path)
    }
    this.size = size
  }

  allocatedBytes(): number {
    return fs.fstatSync(this.fd).blocks * 512
  }

  stats(): VolumeStats {
    return { ...this.counters }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    fs.closeSync(this.fd)
  }

  private checkOpen(): void {
    if (this.closed) throw closedError('volume')
  }

  private checkWritable(): void {
    this.checkOpen()
    if (this.readOnly) throw new CubbyError(ErrorCode.READ_ONLY, `${this.path} is open read-only`, { path: this.path })
  }
}

/** Opens an image file or block device as a Volume. */
export async function openFileVolume(path: string, options: FileVolumeOptions = {}): Promise<Volume> {
  const readOnly = options.readOnly ?? false
  let fd: number
  try {
    const flags = readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR | (options.create ? fs.constants.O_CREAT : 0)
    fd = fs.openSync(path, flags, 0o644)
  } catch (error) {
    throw ioError(error, 'open', path)
  }
  const stat = fs.fstatSync(fd)
  return new BufferedFileVolume(path, fd, stat.size - (stat.size % 512), readOnly)
}
