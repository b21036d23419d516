// Power cuts rebuilt from a recorded trace (after SQLite's crash simulation
// and leveldb's fault_injection_test): a workload runs once on a
// TracingVolume, which records every write, sync and discard with when it
// started and ended; then the image the volume would hold after a power cut
// at any point of the trace is rebuilt without running the workload again:
// writes covered by a sync that completed before the point are durable, and
// every other write that started before it is kept, dropped or torn, chosen
// by a seed (resolvePowerCut, the rule FaultyVolume.powerCut applies).
//
// A sync covers the writes that had *completed* when it began, as fdatasync
// does: a write still in flight when a sync starts stays unsynced.
//
// Images share unchanged 64 KiB chunks (CowBacking), so a point costs what
// the recovery that follows touches, not a copy of the store.
import { DelegatingVolume, MemoryBacking, MemoryVolume, type PendingWrite, type PowerCutOptions, resolvePowerCut, type VolumeRequest } from '../../src/device'

const CHUNK_BYTES = 64 * 1024

/** A MemoryBacking whose fork() shares chunks until either side writes them. */
export class CowBacking extends MemoryBacking {
  /** Chunks this backing may change in place (it made them, or copied them since the last fork). */
  private owned = new Set<number>()

  static from(source: MemoryBacking): CowBacking {
    const copy = new CowBacking(source.size)
    for (const [index, chunk] of source.chunks) copy.chunks.set(index, Buffer.from(chunk))
    for (const index of source.chunks.keys()) copy.owned.add(index)
    return copy
  }

  /** A copy that shares every chunk with this one; both copy a chunk before they first change it. */
  fork(): CowBacking {
    const copy = new CowBacking(this.size)
    for (const [index, chunk] of this.chunks) copy.chunks.set(index, chunk)
    this.owned.clear()
    return copy
  }

  override write(offset: number, source: Buffer, sourceOffset: number, length: number): void {
    this.own(offset, length)
    super.write(offset, source, sourceOffset, length)
  }

  override discard(offset: number, length: number): void {
    this.own(offset, length)
    super.discard(offset, length)
  }

  private own(offset: number, length: number): void {
    for (let index = Math.floor(offset / CHUNK_BYTES); index * CHUNK_BYTES < offset + length; index++) {
      if (this.owned.has(index)) continue
      const chunk = this.chunks.get(index)
      if (chunk !== undefined) this.chunks.set(index, Buffer.from(chunk))
      this.owned.add(index)
    }
  }
}

type TraceEvent =
  | { kind: 'write-start' | 'write-end'; write: number }
  | { kind: 'sync-start' | 'sync-end'; sync: number }

interface TracedWrite {
  offset: number
  /** The bytes written; undefined for a discard (zeros of `length`). */
  bytes: Buffer | undefined
  length: number
}

/** A Volume that records what reaches it (writes, syncs, discards) as a trace of events. */
export class TracingVolume extends DelegatingVolume<MemoryVolume> {
  readonly events: TraceEvent[] = []
  readonly writes: TracedWrite[] = []
  private syncs = 0

  /** Events recorded so far: a point of the trace. */
  get position(): number {
    return this.events.length
  }

  override get ioPath(): string {
    return `tracing(${this.inner.ioPath})`
  }

  override async write(requests: readonly VolumeRequest[]): Promise<void> {
    const ids = requests.map((request) => {
      this.writes.push({ offset: request.offset, length: request.length, bytes: Buffer.from(request.buffer.subarray(request.bufferOffset, request.bufferOffset + request.length)) })
      return this.writes.length - 1
    })
    for (const write of ids) this.events.push({ kind: 'write-start', write })
    await this.inner.write(requests)
    for (const write of ids) this.events.push({ kind: 'write-end', write })
  }

  override async sync(): Promise<void> {
    const sync = this.syncs++
    this.events.push({ kind: 'sync-start', sync })
    await this.inner.sync()
    this.events.push({ kind: 'sync-end', sync })
  }

  override async discard(offset: number, length: number): Promise<void> {
    if (length > 0) {
      this.writes.push({ offset, length, bytes: undefined })
      this.events.push({ kind: 'write-start', write: this.writes.length - 1 })
    }
    await this.inner.discard(offset, length)
    if (length > 0) this.events.push({ kind: 'write-end', write: this.writes.length - 1 })
  }

  /** Trace points just before each sync completes: the moments with the most writes at stake. */
  syncPoints(): number[] {
    const points: number[] = []
    this.events.forEach((event, index) => {
      if (event.kind === 'sync-end') points.push(index)
    })
    return points
  }
}

/**
 * Rebuilds crash images from a trace, for points taken in increasing order:
 * the durable image is advanced incrementally, so a whole trace costs one
 * pass plus what each image changes.
 */
export class CrashImages {
  private readonly durable: CowBacking
  private position = 0
  /** Writes started and not yet durable, in start order; those whose call completed are in `completed`. */
  private pending: number[] = []
  private readonly completed = new Set<number>()
  private readonly covers = new Map<number, number[]>()

  constructor(
    base: MemoryBacking,
    private readonly trace: TracingVolume,
  ) {
    this.durable = CowBacking.from(base)
  }

  /** The image after a power cut just before event `point` (points must not decrease). */
  imageAt(point: number, cut: PowerCutOptions): { backing: CowBacking; unsynced: number } {
    if (point < this.position) throw new Error(`trace points must not decrease (${point} < ${this.position})`)
    for (; this.position < point; this.position++) this.apply(this.trace.events[this.position]!)
    const image = this.durable.fork()
    const pending: PendingWrite[] = this.pending.map((id) => {
      const write = this.trace.writes[id]!
      const before = Buffer.alloc(write.length)
      image.read(write.offset, before, 0, write.length)
      return { offset: write.offset, before, after: write.bytes ?? Buffer.alloc(write.length) }
    })
    for (const { offset, bytes } of resolvePowerCut(pending, cut).units) image.write(offset, bytes, 0, bytes.length)
    return { backing: image, unsynced: pending.length }
  }

  private apply(event: TraceEvent): void {
    if (event.kind === 'write-start') this.pending.push(event.write)
    else if (event.kind === 'write-end') this.completed.add(event.write)
    else if (event.kind === 'sync-start') this.covers.set(event.sync, this.pending.filter((id) => this.completed.has(id)))
    else if (event.kind === 'sync-end') {
      const covered = new Set(this.covers.get(event.sync)!)
      this.covers.delete(event.sync)
      for (const id of this.pending) {
        if (!covered.has(id)) continue
        const write = this.trace.writes[id]!
        if (write.bytes === undefined) this.durable.write(write.offset, Buffer.alloc(write.length), 0, write.length)
        else this.durable.write(write.offset, write.bytes, 0, write.length)
        this.completed.delete(id)
      }
      this.pending = this.pending.filter((id) => !covered.has(id))
    }
  }
}
