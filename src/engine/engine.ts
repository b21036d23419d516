/**
 * The table-less hash engine: one open store on one BlockDevice.
 *
 * What it owns and how the parts meet:
 *  - the committer (this file): writes queue in call order; while one log
 *    frame is being written and synced, the queue fills, and the next frame
 *    takes everything that is ready (group commit). A record enters the active
 *    write buffer only once its frame is written (and synced, when asked), so
 *    a read never sees a write that could still be lost.
 *  - the flush loop (this file + flush.ts): freezes the active buffer when it
 *    is full (bytes or log space), applies it in journaled steps, checkpoints,
 *    splits buckets. One runs at a time.
 *  - the reader (reader.ts): write buffers → overlay → cache → device.
 *  - recovery (recovery.ts) at open.
 *
 * Bounds: the write buffers (writeBufferSize, half each), the commit queue
 * (MAX_QUEUE_BYTES), the cache (cacheSize), the read arena, the step buffers,
 * large values in flight (ByteBudget). Writers wait when a bound is reached;
 * while a flush runs, the active buffer may only fill in step with the
 * flush's progress, so writers slow down smoothly instead of stopping for a
 * whole flush.
 *
 * Called by src/db.ts, which validates arguments first; the engine checks
 * only its own invariants.
 */

import assert from 'node:assert/strict'
import { CubbyError, ErrorCode, closedError } from '../errors'
import type { CompressedDeviceStats } from '../device/compressed/device'
import type { BlockDevice, BlockRequest, DeviceStats } from '../device/types'
import { Histogram } from '../metrics/histogram'
import { OP, OperationMeter, UNMETERED } from '../metrics/operations'
import { crc32c } from '../util/crc32c'
import { type ExtentPointer, isInlineValue } from './bucket'
import { ByteBudget } from './budget'
import { BlockCache } from './cache'
import { ChainReader } from './chains'
import { Flusher } from './flush'
import { BLOCK_SIZE, BUCKET_CAPACITY, FRAME } from './format'
import { hashKey, newKeyHash } from './hash'
import { formatStore, layoutStore, maxFrameBlocksFor } from './layout'
import { Reader } from './reader'
import { type WriteRecord, extentBlocks } from './record'
import { type Recovered, readSuperblocks, recoverStore } from './recovery'
import type { Plan } from './sizing'
import { StoreState } from './state'
import { type Superblock, bucketCount } from './superblock'
import { WriteAheadLog, frameBlocks, recordBytes } from './wal'
import { WriteBuffer, type WriteBufferLimits, bufferedBytes, limitsFor } from './write-buffer'

/** Bytes of writes that may wait in the commit queue before writers wait to enter it. */
export const MAX_QUEUE_BYTES = 8 * 1024 * 1024
/** Upper bounds of the group-commit size histogram: writes per log frame. */
export const GROUP_COMMIT_BOUNDS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
/** Bytes of large values being written to extents at once. */
export const EXTENT_WRITE_BUDGET_BYTES = 64 * 1024 * 1024
/** Buckets an iterator reads per batch. */
const ITERATOR_BATCH_BUCKETS = 64

export interface EngineSettings {
  readOnly: boolean
  /** Bytes of cache: the device's share (cacheChargeBytes) first, bucket images in the rest. */
  cacheSize: number
  /** Bytes of write buffers (active + frozen). */
  writeBufferSize: number
}

/** A write as db.ts hands it over: validated, owned copies. */
export interface WriteInput {
  key: Buffer
  /** The value of a put; undefined for a delete. */
  value: Buffer | undefined
}

export interface EngineStats {
  /** Keys in the buckets (writes still in the write buffer count after the flush that applies them). */
  keys: number
  /** Buckets in use: N0·2^level + split pointer. */
  buckets: number
  /** Bytes of entries divided by the bytes the buckets can hold. */
  loadFactor: number
  /** Buckets with an overflow chain. */
  overflowBuckets: number
  /** Overflow blocks in use. */
  overflowBlocks: number
  /** Records in the write buffers, not yet applied to their buckets. */
  bufferedWrites: number
  /** Linear hashing level L. */
  level: number
  /** Linear hashing split pointer s: the next bucket to split. */
  splitPointer: number
  /** Flush steps committed since the store was created. */
  generation: number
  /** Flush steps committed by this handle. */
  flushSteps: number
  /** Buckets split by this handle. */
  splits: number
  /** Times writers waited for room in the write buffer or the log (backpressure), and for how long in all and at most. */
  writeStalls: { count: number; totalMs: number; maxMs: number }
  /** What the open that produced this handle recovered: journals copied in place, whether an interrupted step was completed, log frames replayed. */
  recovery: { journalsApplied: number; stepRedone: boolean; framesReplayed: number }
  /** Group commit since open: log frames written, writes (put/del/batch calls) and records they carried, payload bytes, frames followed by a device flush. */
  log: { commits: number; writes: number; records: number; bytes: number; syncedCommits: number }
  /** GETs the bucket cache answered, and GETs that read the device. */
  cache: { hits: number; misses: number }
  /** Bytes of memory held, by part; every part is bounded by the options, none grows with the number of keys. */
  memory: {
    /** The sum of the parts. */
    total: number
    /** Bucket cache: up to cacheSize less `deviceCache`. */
    cache: number
    /** The LZ4 layer's cached block-map pages, inside cacheSize (the bucket cache yields to them); 0 without compression. */
    deviceCache: number
    /** Write buffers (up to writeBufferSize). */
    writeBuffer: number
    /** Writes waiting for their log frame (up to 8 MiB). */
    commitQueue: number
    /** The log frame buffer (up to 4 MiB). */
    logBuffer: number
    /** Read arena, flush step and large values in flight. */
    ioBuffers: number
    /** Allocation bitmap of the heap (8 KiB per 127 MiB reached). */
    bitmap: number
    /** The block device's own tables and buffers besides `deviceCache` (the LZ4 layer's segment table, page directory, write buffers). */
    device: number
  }
  /** The block device's counters (device reads per GET = reads / GETs with the cache off). */
  device: Omit<DeviceStats, 'volume' | 'memoryBytes'> & {
    ioPath: string
    /** logicalBytes ÷ liveBytes: how much the blocks in use shrink under LZ4, part-empty buckets included (1 without compression, or while empty). */
    compressionRatio: number
    /** Compressed bytes of the blocks in use ('lz4'); logicalBytes without compression. */
    liveBytes: number
    /** Bytes the LZ4 layer's segment cleaner copied to reclaim space since the store was created (0 without compression). */
    cleaningBytesMoved: number
    /** (bytes written for the engine + bytes moved by cleaning) ÷ bytes written for the engine (1 without compression). */
    cleaningWriteAmplification: number
  }
}

interface CommitOp {
  records: WriteRecord[]
  payloadBytes: number
  recordCount: number
  bufferBytes: number
  queueBytes: number
  sync: boolean
  /** False while the op's large values are still being written to extents. */
  ready: boolean
  settled: boolean
  resolve: () => void
  reject: (error: unknown) => void
}

type EngineStatus = 'open' | 'closing' | 'closed'

/** What a device holds: a store (its winning superblock), nothing, or something else. */
export { readSuperblocks as probeStore, type SuperblockProbe } from './recovery'

export class Engine {
  private status: EngineStatus = 'open'
  private closing: Promise<void> | undefined
  private readonly reader: Reader
  private readonly flusher: Flusher
  private readonly wal: WriteAheadLog
  private queue: CommitOp[] = []
  private queueBytes = 0
  private readonly admission: Array<() => void> = []
  private committing = false
  private flushLoop: Promise<void> | undefined
  private readonly extentBudget = new ByteBudget(EXTENT_WRITE_BUDGET_BYTES)
  private readonly hash = newKeyHash()
  private readonly maxFrameBlocks: number
  private readonly limits: WriteBufferLimits
  /** Virtual log block where the active buffer's first frame went. */
  private activeWalStart: number
  private readonly flushWaiters: Array<() => void> = []
  /** Writes waiting for room (write buffer or log) since this time, if they are. */
  private stalledSince: bigint | undefined
  private readonly stalls = { count: 0, totalMs: 0, maxMs: 0 }
  private readonly commits = { commits: 0, writes: 0, records: 0, bytes: 0, syncedCommits: 0 }
  /** Writes per log frame, over every frame written since open (for db.metrics()). */
  readonly groupCommitSizes = new Histogram(GROUP_COMMIT_BOUNDS)
  /** The API calls of the handle over this engine, counted where they settle (for db.metrics()). */
  readonly meter = new OperationMeter()
  private readonly recovery: { journalsApplied: number; stepRedone: boolean; framesReplayed: number }
  /** The most recent write accepted, and who waits for writes up to some op to settle. */
  private lastOp: CommitOp | undefined
  /**
   * LSN of the last record whose frame is written (and in the active
   * buffer). The log's next LSN runs ahead of it while a frame is in flight,
   * so a flush aims at this, not at the next LSN.
   */
  private committedLsn: number
  private settledWaiters: Array<{ op: CommitOp; wake: () => void }> = []

  private constructor(
    private readonly state: StoreState,
    private readonly settings: EngineSettings,
    recovered: Recovered,
  ) {
    this.wal = new WriteAheadLog(state.device, state.superblock.walStart, state.superblock.walBlocks, state.superblock.storeId, {
      checkpoint: recovered.checkpoint,
      head: recovered.head,
      nextSequence: recovered.lastSequence + 1,
      nextLsn: recovered.nextLsn,
    })
    this.committedLsn = recovered.nextLsn - 1
    this.activeWalStart = recovered.head
    this.recovery = { journalsApplied: recovered.journalsApplied, stepRedone: recovered.stepRedone, framesReplayed: recovered.framesReplayed }
    this.maxFrameBlocks = maxFrameBlocksFor(state.superblock.walBlocks)
    this.limits = limitsFor(settings.writeBufferSize)
    state.active = new WriteBuffer(this.limits)
    this.reader = new Reader(state, this.meter)
    this.flusher = new Flusher(state, this.wal, () => {
      // A step may have grown the device's share of the cache budget (new map pages): make room.
      state.cache.fit()
      this.pump()
    })
  }

  /**
   * Opens the store on `device`, recovering it after a crash.
   * CUBBY_NOT_A_STORE when the device holds no store (see probeStore).
   */
  static async open(device: BlockDevice, settings: EngineSettings): Promise<Engine> {
    const probe = await readSuperblocks(device)
    if (probe.kind === 'empty') throw new CubbyError(ErrorCode.NOT_A_STORE, 'the target holds no CubbyDB store')
    if (probe.kind === 'foreign') throw new CubbyError(ErrorCode.NOT_A_STORE, 'the target holds data that is not a CubbyDB store')
    const state = new StoreState(device, probe.superblock, settings.readOnly)
    const recovered = await recoverStore(device, probe.superblock, settings.readOnly, () => state.bucketsReserved)
    state.superblock = recovered.superblock
    Object.assign(state.geometry, {
      initialBuckets: recovered.superblock.initialBuckets,
      level: recovered.superblock.level,
      splitPointer: recovered.superblock.splitPointer,
    })
    state.bucketsReserved = state.bucketCount()
    state.allocator = recovered.allocator
    state.cache = new BlockCache(settings.cacheSize, () => device.cacheChargeBytes?.() ?? 0)
    for (const [lba, image] of recovered.overlay) state.overlay.set(lba, { buffer: image, offset: 0 })
    const engine = new Engine(state, settings, recovered)
    await engine.finishRecovery(recovered)
    return engine
  }

  /**
   * Formats `device` as a new store sized by `plan` and opens it. With
   * `trim`, every block of the device is trimmed first (it may hold stale
   * bytes of an earlier occupant); a fresh device needs no trim.
   */
  static async create(device: BlockDevice, settings: EngineSettings, plan: Plan, trim: boolean): Promise<Engine> {
    await formatStore(device, layoutStore(device.blockCount, plan), trim)
    return Engine.open(device, settings)
  }

  /**
   * Read-write: applies the replayed records and checkpoints at the log's
   * end with a sequence number no frame left behind by a crash can carry.
   * Read-only: serves the replayed records from memory.
   */
  private async finishRecovery(recovered: Recovered): Promise<void> {
    const replay = recovered.replay
    if (this.settings.readOnly) {
      if (replay.size > 0) this.state.frozen = replay
      return
    }
    const jumped = recovered.lastSequence + 1 + this.wal.ringBlocks
    this.wal.state.nextSequence = jumped
    if (replay.size > 0) {
      replay.walEnd = recovered.head
      replay.walEndSequence = jumped
      this.state.frozen = replay
      await this.flusher.flushFrozen()
    } else {
      await this.flusher.checkpointAt(recovered.head, jumped, recovered.nextLsn - 1)
    }
  }

  get superblock(): Readonly<Superblock> {
    return this.state.superblock
  }

  get readOnly(): boolean {
    return this.state.readOnly
  }

  get isOpen(): boolean {
    return this.status === 'open'
  }

  /** Largest payload of log records one write call may carry. */
  get maxWriteBytes(): number {
    return this.maxFrameBlocks * BLOCK_SIZE - FRAME.headerBytes
  }


  // -------------------------------------------------------------------------
  // Reads

  /** The value of `key`. `startedMs` (performance.now()) marks an API get, counted by the meter; without it the lookup is not counted. */
  get(key: Buffer, startedMs?: number): Promise<Buffer | undefined> {
    const kind = startedMs === undefined ? UNMETERED : OP.get
    if (this.status !== 'open') return this.meter.refuse(kind, startedMs ?? 0, closedError())
    return this.reader.lookup(key, true, kind, startedMs) as Promise<Buffer | undefined>
  }

  /** Whether `key` exists; `startedMs` as for get(). */
  has(key: Buffer, startedMs?: number): Promise<boolean> {
    const kind = startedMs === undefined ? UNMETERED : OP.has
    if (this.status !== 'open') return this.meter.refuse(kind, startedMs ?? 0, closedError())
    return this.reader.lookup(key, false, kind, startedMs) as Promise<boolean>
  }

  // -------------------------------------------------------------------------
  // Writes

  /**
   * Writes `inputs` atomically (one log frame). Resolves once the frame is
   * written, and synced when `sync`. Rejects, changing nothing, on a write
   * that is too large; CUBBY_FULL when a large value finds no room.
   */
  write(inputs: readonly WriteInput[], sync: boolean, kind: number = UNMETERED, startedMs = 0): Promise<void> {
    const refusal = this.writeRefusal()
    if (refusal !== undefined) return this.meter.refuse(kind, startedMs, refusal)
    const records: WriteRecord[] = []
    let payloadBytes = 0
    let bufferBytes = 0
    let extentBytes = 0
    for (const input of inputs) {
      hashKey(input.key, 0, input.key.length, this.hash)
      const large = input.value !== undefined && !isInlineValue(input.key.length, input.value.length)
      const record: WriteRecord = {
        key: input.key,
        bucketHash: this.hash.bucketHash,
        fingerprint: this.hash.fingerprint,
        value: large ? undefined : input.value,
        extent: large ? { lba: 0, length: input.value!.length, checksum: 0 } : undefined,
        deleted: input.value === undefined,
        lsn: 0,
      }
      records.push(record)
      payloadBytes += recordBytes(record)
      bufferBytes += bufferedBytes(record)
      if (large) extentBytes += input.value!.length
    }
    if (frameBlocks(payloadBytes) > this.maxFrameBlocks) {
      return this.meter.refuse(
        kind,
        startedMs,
        new CubbyError(ErrorCode.INVALID_ARGUMENT, `a write of ${payloadBytes} log bytes is larger than one log frame (${this.maxWriteBytes} bytes); split the batch`),
      )
    }
    if (bufferBytes > this.limits.arenaBytes || records.length > this.limits.slots / 2) {
      return this.meter.refuse(
        kind,
        startedMs,
        new CubbyError(
          ErrorCode.INVALID_ARGUMENT,
          `a write of ${records.length} records and ${bufferBytes} bytes does not fit one write buffer (${this.limits.arenaBytes} bytes, ${this.limits.slots / 2} records); split the batch or raise writeBufferSize`,
        ),
      )
    }
    return new Promise<void>((resolve, reject) => {
      const op: CommitOp = {
        records,
        payloadBytes,
        recordCount: records.length,
        bufferBytes,
        queueBytes: payloadBytes + extentBytes,
        sync,
        ready: extentBytes === 0,
        settled: false,
        resolve: () => {
          op.settled = true
          this.meter.settle(kind, startedMs, 0)
          resolve()
          this.wakeSettled()
        },
        reject: (error) => {
          op.settled = true
          this.meter.settle(kind, startedMs, 1)
          reject(error)
          this.wakeSettled()
        },
      }
      this.lastOp = op
      void this.enqueue(op, inputs)
    })
  }

  private writeRefusal(): CubbyError | undefined {
    if (this.status !== 'open') return closedError()
    if (this.state.readOnly) return new CubbyError(ErrorCode.READ_ONLY, 'the store is open read-only')
    if (this.state.failure !== undefined) return this.state.refusal()
    return undefined
  }

  private async enqueue(op: CommitOp, inputs: readonly WriteInput[]): Promise<void> {
    if (this.queue.length > 0 && this.queueBytes + op.queueBytes > MAX_QUEUE_BYTES) {
      await new Promise<void>((admit) => this.admission.push(admit))
    }
    if (this.state.failure !== undefined) {
      op.reject(this.state.refusal())
      this.admitNext()
      return
    }
    this.queue.push(op)
    this.queueBytes += op.queueBytes
    this.admitNext()
    if (!op.ready) void this.writeExtents(op, inputs)
    else this.pump()
  }

  /** Lets waiting writers into the queue while it has room. */
  private admitNext(): void {
    while (this.admission.length > 0 && (this.queue.length === 0 || this.queueBytes < MAX_QUEUE_BYTES)) this.admission.shift()!()
  }

  /** Writes the op's large values to newly allocated extents; the op is ready once they are written. */
  private async writeExtents(op: CommitOp, inputs: readonly WriteInput[]): Promise<void> {
    const allocated: ExtentPointer[] = []
    try {
      for (let index = 0; index < op.records.length; index++) {
        const record = op.records[index]!
        if (record.extent === undefined) continue
        const value = inputs[index]!.value!
        const blocks = extentBlocks(value.length)
        await this.extentBudget.acquire(blocks * BLOCK_SIZE)
        try {
          const extent: ExtentPointer = { lba: this.state.allocator.allocate(blocks), length: value.length, checksum: crc32c(value) }
          allocated.push(extent)
          record.extent = extent
          const buffer = this.state.device.allocate(blocks)
          value.copy(buffer)
          const requests: BlockRequest[] = []
          for (let block = 0; block < blocks; block++) requests.push({ lba: extent.lba + block, buffer, bufferOffset: block * BLOCK_SIZE })
          this.state.writeEpoch++
          try {
            await this.state.device.write(requests)
          } catch (error) {
            throw this.state.fail(error)
          }
        } finally {
          this.extentBudget.release(blocks * BLOCK_SIZE)
        }
      }
      op.ready = true
    } catch (error) {
      // No log record refers to these extents: they are free again at once.
      for (const extent of allocated) this.state.allocator.release(extent.lba, extentBlocks(extent.length))
      this.removeFromQueue(op)
      op.reject(error)
    }
    this.pump()
  }

  private removeFromQueue(op: CommitOp): void {
    const index = this.queue.indexOf(op)
    if (index >= 0) {
      this.queue.splice(index, 1)
      this.queueBytes -= op.queueBytes
      this.admitNext()
    }
  }

  /** How full the active buffer is, 0..1+, by bytes, by records and by log space. */
  private pressure(extraBytes = 0, extraRecords = 0): number {
    const active = this.state.active
    const bytes = (active.bytes + extraBytes) / this.limits.arenaBytes
    const records = (active.size + extraRecords) / active.maxRecords
    const log = (this.wal.state.head - this.activeWalStart) / (this.wal.ringBlocks / 4)
    return Math.max(bytes, records, log)
  }

  /** Freezes the active buffer and starts the flush loop, if no flush holds a frozen buffer. */
  private freeze(): boolean {
    const state = this.state
    if (state.frozen !== undefined || state.active.size === 0 || state.failure !== undefined || state.readOnly) return false
    state.frozen = state.active
    state.active = state.spare ?? new WriteBuffer(this.limits)
    state.spare = undefined
    this.activeWalStart = this.wal.state.head
    this.startFlushLoop()
    return true
  }

  /** Writes the next frame if one is ready and there is room for it. */
  private pump(): void {
    if (this.committing) return
    const state = this.state
    if (state.failure !== undefined) {
      this.rejectQueue(state.refusal())
      return
    }
    const batch: CommitOp[] = []
    let payloadBytes = 0
    let bufferBytes = 0
    let recordCount = 0
    for (const op of this.queue) {
      if (!op.ready) break
      if (batch.length > 0 && frameBlocks(payloadBytes + op.payloadBytes) > this.maxFrameBlocks) break
      if (batch.length > 0 && !state.active.hasRoom(bufferBytes + op.bufferBytes, recordCount + op.recordCount)) break
      batch.push(op)
      payloadBytes += op.payloadBytes
      bufferBytes += op.bufferBytes
      recordCount += op.recordCount
    }
    if (batch.length === 0) return
    // Room in the write buffer: while a flush runs, only in step with its progress.
    const allowed = state.frozen === undefined ? 1 : 0.5 + 0.5 * this.flusher.progress
    if (!state.active.hasRoom(bufferBytes, recordCount) || (this.pressure(bufferBytes, recordCount) > allowed && state.active.size > 0)) {
      if (!this.freeze()) {
        this.stalledSince ??= process.hrtime.bigint()
        return
      }
    }
    const blocks = frameBlocks(payloadBytes)
    const position = this.wal.placement(blocks)
    if (position < 0) {
      this.freeze()
      this.stalledSince ??= process.hrtime.bigint()
      return
    }
    if (this.stalledSince !== undefined) {
      const waitedMs = Number(process.hrtime.bigint() - this.stalledSince) / 1e6
      this.stalledSince = undefined
      this.stalls.count++
      this.stalls.totalMs += waitedMs
      this.stalls.maxMs = Math.max(this.stalls.maxMs, waitedMs)
    }
    this.committing = true
    void this.commit(batch, payloadBytes, position)
  }

  private async commit(batch: CommitOp[], payloadBytes: number, position: number): Promise<void> {
    const state = this.state
    const records: WriteRecord[] = []
    let sync = false
    for (const op of batch) {
      for (const record of op.records) records.push(record)
      sync ||= op.sync
    }
    this.queue = this.queue.slice(batch.length)
    for (const op of batch) this.queueBytes -= op.queueBytes
    this.admitNext()
    try {
      const end = await this.wal.writeFrame(records, payloadBytes, position)
      if (sync) await state.device.flush()
      this.countCommit(batch.length, records.length, payloadBytes, sync)
      for (const record of records) state.active.add(record)
      state.active.walEnd = end
      state.active.walEndSequence = this.wal.state.nextSequence
      this.committedLsn = records[records.length - 1]!.lsn
      for (const op of batch) op.resolve()
    } catch (error) {
      const failure = state.fail(error)
      for (const op of batch) op.reject(failure)
    } finally {
      this.committing = false
    }
    if (this.pressure() >= 1) this.freeze()
    this.pump()
  }

  private countCommit(writes: number, records: number, bytes: number, synced: boolean): void {
    const commits = this.commits
    commits.commits++
    commits.writes += writes
    commits.records += records
    commits.bytes += bytes
    if (synced) commits.syncedCommits++
    this.groupCommitSizes.observe(writes)
  }

  private rejectQueue(error: CubbyError): void {
    const queued = this.queue
    this.queue = []
    this.queueBytes = 0
    for (const op of queued) op.reject(error)
    this.admitNext()
  }

  // -------------------------------------------------------------------------
  // Flushing

  private startFlushLoop(): void {
    if (this.flushLoop !== undefined) return
    this.flushLoop = this.runFlushes().finally(() => {
      this.flushLoop = undefined
      const waiters = this.flushWaiters.splice(0)
      for (const wake of waiters) wake()
    })
  }

  private async runFlushes(): Promise<void> {
    const state = this.state
    try {
      while (state.failure === undefined) {
        if (state.frozen !== undefined) {
          await this.flusher.flushFrozen()
          if (this.pressure() >= 1) this.freeze()
        } else if (state.iterators === 0 && this.flusher.splitsWanted() > 0) {
          if (!(await this.flusher.splitWhileNeeded())) break
        } else {
          break
        }
        const waiters = this.flushWaiters.splice(0)
        for (const wake of waiters) wake()
        this.pump()
      }
    } catch (error) {
      state.fail(error)
    }
    this.pump()
  }

  /** Resolves after the next flush-loop milestone (a buffer applied, or the loop ending). */
  private async flushMilestone(): Promise<void> {
    if (this.flushLoop === undefined) return
    await new Promise<void>((wake) => this.flushWaiters.push(wake))
  }

  /** Applies everything written before this call to the buckets. */
  async flush(): Promise<void> {
    if (this.status === 'closed') throw closedError()
    if (this.state.readOnly) return
    await this.settleQueue()
    // Writes accepted before this call have settled, so their frames are written; later ones may be in flight.
    const target = this.committedLsn
    for (;;) {
      if (this.state.failure !== undefined) throw this.state.refusal()
      if (this.state.superblock.checkpointLsn >= target) return
      if (this.state.frozen === undefined) this.freeze()
      if (this.flushLoop === undefined) {
        if (this.state.failure !== undefined) throw this.state.refusal()
        assert.ok(this.state.superblock.checkpointLsn >= target, 'nothing to flush, yet the checkpoint lags the log')
        return
      }
      await this.flushMilestone()
    }
  }

  /** Waits until every write accepted before this call has settled (writes settle in order). */
  private async settleQueue(): Promise<void> {
    const last = this.lastOp
    if (last === undefined || last.settled) return
    await new Promise<void>((wake) => this.settledWaiters.push({ op: last, wake }))
  }

  private wakeSettled(): void {
    if (this.settledWaiters.length === 0) return
    const waiting = this.settledWaiters
    this.settledWaiters = []
    for (const waiter of waiting) {
      if (waiter.op.settled) waiter.wake()
      else this.settledWaiters.push(waiter)
    }
  }

  // -------------------------------------------------------------------------
  // Iteration

  /**
   * Every pair exactly once: flush, then walk the buckets in order, taking
   * newer values (and deletions) from the write buffers. Splits wait while an
   * iterator is open, so no key moves between buckets under it. A read-only
   * store cannot flush what its open recovered from the log: it hands out
   * those records first, then skips their keys in the buckets.
   */
  async *entries(): AsyncGenerator<[Buffer, Buffer]> {
    if (this.status !== 'open') throw closedError()
    const state = this.state
    state.iterators++
    try {
      await this.flush()
      await this.flusher.splitIdle()
      if (state.readOnly && state.frozen !== undefined) {
        for (const at of state.frozen.liveOffsets()) {
          const record = state.frozen.recordAt(at)
          if (record.deleted) continue
          const value = record.value !== undefined ? Buffer.from(record.value) : ((await this.reader.lookup(record.key, true)) as Buffer | undefined)
          if (value !== undefined) yield [Buffer.from(record.key), value]
        }
      }
      const chains = new ChainReader(state, ITERATOR_BATCH_BUCKETS, false)
      const buckets = state.bucketCount()
      for (let first = 0; first < buckets; first += ITERATOR_BATCH_BUCKETS) {
        if (!this.isOpen) throw closedError()
        const batch: number[] = []
        for (let bucket = first; bucket < Math.min(buckets, first + ITERATOR_BATCH_BUCKETS); bucket++) batch.push(bucket)
        for (const chain of await chains.read(batch)) {
          for (const entry of chain.entries) {
            const bucketHash = hashKey(entry.key, 0, entry.key.length, this.hash).bucketHash
            let buffer = state.active
            let at = buffer.find(entry.key, 0, entry.key.length, bucketHash)
            if (at < 0 && state.frozen !== undefined) {
              buffer = state.frozen
              at = buffer.find(entry.key, 0, entry.key.length, bucketHash)
            }
            if (at >= 0) {
              if (buffer.isDeleted(at) || state.readOnly) continue
              if (!buffer.hasExtent(at)) {
                yield [entry.key, buffer.copyValue(at)]
                continue
              }
            } else if (entry.value !== undefined) {
              yield [entry.key, entry.value]
              continue
            }
            // The value lives in an extent: read it through the read path, which handles races with writers.
            const value = (await this.reader.lookup(entry.key, true)) as Buffer | undefined
            if (value !== undefined) yield [entry.key, value]
          }
        }
      }
    } finally {
      state.iterators--
      if (state.iterators === 0 && !state.readOnly && this.status === 'open') this.startFlushLoop()
    }
  }

  // -------------------------------------------------------------------------
  // Stats and lifecycle

  stats(): EngineStats {
    const state = this.state
    const superblock = state.superblock
    const buckets = bucketCount(superblock)
    const device = state.device.stats()
    const deviceCache = state.device.cacheChargeBytes?.() ?? 0
    const memory = {
      cache: state.cache.memoryBytes,
      deviceCache,
      writeBuffer: state.active.memoryBytes + (state.frozen?.memoryBytes ?? 0) + (state.spare?.memoryBytes ?? 0),
      commitQueue: this.queueBytes,
      logBuffer: this.wal.bufferBytes,
      ioBuffers: this.reader.memoryBytes + this.flusher.memoryBytes + this.extentBudget.usedBytes,
      bitmap: state.allocator.memoryBytes,
      device: device.memoryBytes - deviceCache,
    }
    return {
      keys: superblock.keys,
      buckets,
      loadFactor: superblock.entryBytes / (buckets * BUCKET_CAPACITY),
      overflowBuckets: superblock.overflowBuckets,
      overflowBlocks: superblock.overflowBlocks,
      bufferedWrites: state.active.size + (state.frozen?.size ?? 0),
      level: superblock.level,
      splitPointer: superblock.splitPointer,
      generation: superblock.generation,
      flushSteps: this.flusher.stepsCommitted,
      splits: this.flusher.splitsDone,
      writeStalls: { ...this.stalls },
      recovery: { ...this.recovery },
      log: { ...this.commits },
      cache: { hits: state.cache.hits, misses: state.cache.misses },
      memory: { total: Object.values(memory).reduce((sum, part) => sum + part, 0), ...memory },
      device: {
        mode: device.mode,
        ioPath: state.device.ioPath,
        reads: device.reads,
        writes: device.writes,
        bytesRead: device.bytesRead,
        bytesWritten: device.bytesWritten,
        flushes: device.flushes,
        trims: device.trims,
        logicalBytes: device.logicalBytes,
        physicalBytes: device.physicalBytes,
        ...compressionStats(device),
      },
    }
  }

  /** The block device's own statistics, with what only its mode has (the compressed device's cleaning, for one). */
  deviceStats(): DeviceStats {
    return this.state.device.stats()
  }

  /**
   * Settles every write already accepted, flushes the write buffers (unless
   * the store failed or is read-only), waits for reads in flight, and closes
   * the device. Rejects (after closing) when that flush fails: acknowledged
   * writes are still in the log, and the next open applies them. Idempotent;
   * later calls return the same promise.
   */
  close(): Promise<void> {
    if (this.closing === undefined) this.closing = this.shutDown()
    return this.closing
  }

  private async shutDown(): Promise<void> {
    this.status = 'closing'
    let flushError: unknown
    try {
      await this.settleQueue()
      if (this.state.failure === undefined && !this.state.readOnly) await this.flush()
    } catch (error) {
      flushError = error
    }
    while (this.flushLoop !== undefined) await this.flushLoop
    await this.reader.drain()
    this.status = 'closed'
    this.rejectQueue(closedError())
    await this.state.device.close()
    // The store had not failed before close() (it would not have flushed): this close's flush failed, so say so.
    if (flushError !== undefined) throw this.state.failure ?? flushError
  }
}

/** The compressed device's compression and cleaning figures, or what they are without compression. */
function compressionStats(device: DeviceStats): { compressionRatio: number; liveBytes: number; cleaningBytesMoved: number; cleaningWriteAmplification: number } {
  const compressed = device as Partial<CompressedDeviceStats>
  return {
    compressionRatio: compressed.compressionRatio ?? 1,
    liveBytes: compressed.liveBytes ?? device.logicalBytes,
    cleaningBytesMoved: compressed.cleaningBytesMoved ?? 0,
    cleaningWriteAmplification: compressed.cleaningWriteAmplification ?? 1,
  }
}
