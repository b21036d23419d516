// A test-only Volume over a /dev block node with node:fs, sized by
// `blockdev --getsize64`: lets the loop-device test run the engine on a real
// block device while src/device/file.ts is still the temporary buffered
// version that cannot size one. Once the native shim opens /dev nodes, the
// test uses the public open() path instead and this helper goes unused.
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import { CubbyError, ErrorCode } from '../../src/errors'
import { reportWhenSettled } from '../../src/device/report-each'
import type { ReportEach, Volume, VolumeRequest, VolumeStats } from '../../src/device/types'

export class BlockNodeVolume implements Volume {
  readonly kind = 'block' as const
  readonly sectorSize = 512
  readonly physicalSectorSize = 4096
  readonly growable = false
  readonly readOnly = false
  readonly ioPath = 'node-fs (test)'
  readonly size: number
  private readonly fd: number
  private readonly counters: VolumeStats = { reads: 0, writes: 0, bytesRead: 0, bytesWritten: 0, syncs: 0, discards: 0 }

  constructor(readonly path: string) {
    this.size = Number(execFileSync('blockdev', ['--getsize64', path], { encoding: 'utf8' }).trim())
    this.fd = fs.openSync(path, 'r+')
  }

  allocate(bytes: number): Buffer {
    return Buffer.alloc(bytes)
  }

  async read(requests: readonly VolumeRequest[]): Promise<void> {
    for (const { offset, length, buffer, bufferOffset } of requests) {
      fs.readSync(this.fd, buffer, bufferOffset, length, offset)
      this.counters.reads++
      this.counters.bytesRead += length
    }
  }

  readEach(requests: readonly VolumeRequest[], onRequest: ReportEach): void {
    reportWhenSettled(this.read(requests), requests.length, onRequest)
  }

  async write(requests: readonly VolumeRequest[]): Promise<void> {
    for (const { offset, length, buffer, bufferOffset } of requests) {
      if (offset + length > this.size) throw new CubbyError(ErrorCode.INVALID_ARGUMENT, `write past the end of ${this.path}`)
      fs.writeSync(this.fd, buffer, bufferOffset, length, offset)
      this.counters.writes++
      this.counters.bytesWritten += length
    }
  }

  async sync(): Promise<void> {
    fs.fdatasyncSync(this.fd)
    this.counters.syncs++
  }

  /** BLKDISCARD is not reachable from node:fs; `blkdiscard -z` zeroes the range as the contract asks. */
  async discard(offset: number, length: number): Promise<void> {
    if (length === 0) return
    fs.fdatasyncSync(this.fd)
    execFileSync('blkdiscard', ['-z', '-o', String(offset), '-l', String(length), this.path])
    this.counters.discards++
  }

  async grow(): Promise<void> {
    throw new CubbyError(ErrorCode.INVALID_ARGUMENT, `${this.path} is a block device and cannot grow`)
  }

  allocatedBytes(): number {
    return this.size
  }

  stats(): VolumeStats {
    return { ...this.counters }
  }

  async close(): Promise<void> {
    fs.closeSync(this.fd)
  }
}
