/**
 * DelegatingVolume: a Volume that passes every member to the Volume it
 * wraps. Wrappers (the fault injector, the checker's borrowed view, the
 * tests' tracer) extend it and override only what they change, so a member
 * added to Volume is passed through by one class, not by each of them.
 */

import type { ReportEach, Volume, VolumeKind, VolumeRequest, VolumeStats } from './types'

export class DelegatingVolume<Inner extends Volume = Volume> implements Volume {
  constructor(readonly inner: Inner) {}

  get path(): string {
    return this.inner.path
  }
  get kind(): VolumeKind {
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
    return this.inner.growable
  }
  get readOnly(): boolean {
    return this.inner.readOnly
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
  write(requests: readonly VolumeRequest[]): Promise<void> {
    return this.inner.write(requests)
  }
  sync(): Promise<void> {
    return this.inner.sync()
  }
  discard(offset: number, length: number): Promise<void> {
    return this.inner.discard(offset, length)
  }
  grow(size: number): Promise<void> {
    return this.inner.grow(size)
  }
  allocatedBytes(): number {
    return this.inner.allocatedBytes()
  }
  stats(): VolumeStats {
    return this.inner.stats()
  }
  close(): Promise<void> {
    return this.inner.close()
  }
}
