/**
 * BorrowedVolume: a read-only view of a Volume whose close() does nothing.
 *
 * Block devices own their volume and close it when they close or fail to
 * open. A check opens devices on a volume it must keep (to look further after
 * a device refuses to open, or to try a second way of reading), so it lends
 * them this view and closes the real volume itself. Writes, syncs and
 * discards are refused with CUBBY_READ_ONLY: checking never changes a store.
 *
 * Who uses it: src/check/*.ts.
 */

import { CubbyError, ErrorCode } from '../errors'
import type { ReportEach, Volume, VolumeRequest, VolumeStats } from '../device/types'

export class BorrowedVolume implements Volume {
  constructor(private readonly inner: Volume) {}

  get path(): string {
    return this.inner.path
  }
  get kind() {
    return this.inner.kind
  }
  get size(): number {
    return this.inner.size
  }
  get sectorSize(): number {
    return this.inner.sectorSize
  }
  get physicalSectorSize(): number {
    return this.inner.physicalSectorSize
  }
  get growable(): boolean {
    return false
  }
  get readOnly(): boolean {
    return true
  }
  get ioPath(): string {
    return this.inner.ioPath
  }

  allocate(bytes: number): Buffer {
    return this.inner.allocate(bytes)
  }

  read(requests: readonly VolumeRequest[]): Promise<void> {
    return this.inner.read(requests)
  }

  readEach(requests: readonly VolumeRequest[], onRequest: ReportEach): void {
    this.inner.readEach(requests, onRequest)
  }

  async write(): Promise<void> {
    throw this.refusal()
  }

  async sync(): Promise<void> {
    throw this.refusal()
  }

  async discard(): Promise<void> {
    throw this.refusal()
  }

  async grow(): Promise<void> {
    throw this.refusal()
  }

  allocatedBytes(): number {
    return this.inner.allocatedBytes()
  }

  stats(): VolumeStats {
    return this.inner.stats()
  }

  async close(): Promise<void> {}

  private refusal(): CubbyError {
    return new CubbyError(ErrorCode.READ_ONLY, `${this.path} is being checked: nothing is written to it`, { path: this.path })
  }
}
