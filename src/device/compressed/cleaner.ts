/**
 * Cleaner: gives back the space of overwritten and trimmed blocks by copying
 * the live records of mostly-dead segments to the log head (segment cleaning
 * as in Sprite LFS; victims by cost-benefit, SegmentTable.chooseVictims).
 *
 * One round: choose victims (at least `minimumVictims`, more while the
 * copies still fit under the promised bound, up to `maximumVictims`, so a
 * big store pays for two checkpoints per many segments cleaned, not per
 * few); for each, read the whole
 * segment (one volume read into one segment-sized buffer), walk its chunks
 * of the current incarnation, and for every record the map still points at,
 * append a copy (same payload, new header and CRC) and repoint the map. The
 * check and the copy happen under the device's append lock, so a newer
 * write of the same block always wins. Then a checkpoint commits, after
 * which the emptied victims are marked dead, and a second one after which
 * they are discarded and become free.
 *
 * Bounds: one segment buffer; at most `maximumVictims` segments read per
 * round; it never blocks reads (they keep using the old location until the
 * map moves, and retry if a location is reused under them).
 *
 * When it runs: the device kicks it after writes; it then runs rounds back
 * to back while data-area use exceeds the start ratio times live bytes +
 * reserve (or free segments are down to the reserve), and stops at the
 * first round that frees nothing. Writers wait for it (`makeProgress()`)
 * when use passes the hard bound or free segments run out. A victim with an
 * unreadable chunk is skipped and remembered, never dropped: its blocks stay
 * where they are.
 *
 * Idle cleaning: once no write has come for `idleDelayMs`, it runs small
 * rounds (at most `idleVictims` segments each, least utilized first, only
 * those under `idleMaxUtilization`) while use exceeds `idleRatio` times
 * live bytes, so dead records of a finished load or burst do not linger
 * until the next burst pushes use past the start ratio. The first write
 * seen stops it after the victim in hand (that round still commits); the
 * ordinary policy takes over. Rounds are the same as the busy ones, so the
 * same crash rules hold: a freed segment is reused only after the second
 * checkpoint past the copies. Each step of a round (one chunk's records
 * under the append lock) is short, so it never holds the event loop long.
 *
 * Who calls this: CompressedBlockDevice only.
 */

import { crc32c } from '../../util/crc32c'
import { BLOCK_SIZE, type Volume } from '../types'
import { BlockMap } from './block-map'
import {
  CHUNK_ALIGNMENT_BYTES,
  RECORD_HEADER_BYTES,
  RecordKind,
  chunkRecordStart,
  decodeChunkHeader,
  makeEntry,
  readRecord,
  recordFootprint,
  sealRecord,
  type Geometry,
  type RecordKindValue,
} from './format'
import type { Health, LogWriter } from './log'
import type { Mapper } from './mapper'
import { SegmentState, type SegmentTable } from './segments'

export interface CleanerHost {
  readonly geometry: Geometry
  readonly volume: Volume
  readonly health: Health
  readonly map: BlockMap
  readonly mapper: Mapper
  readonly segments: SegmentTable
  readonly log: LogWriter
  /** Runs `body` holding the device's append lock. */
  withAppendLock<T>(body: () => Promise<T>): Promise<T>
  /** Cuts a checkpoint (after any in flight) and waits for it to commit. */
  checkpointNow(): Promise<void>
  /** Segments that the next checkpoint commit will free. */
  waitingSegments(): number
  readonly closing: boolean
}

export interface CleanerPolicy {
  /** Clean when data-area bytes in use exceed liveBytes * startRatio + reserveBytes. */
  startRatio: number
  /** Segments kept free for the cleaner: writers see CUBBY_FULL rather than use them. */
  reserveSegments: number
  /** Victims per round: at least this many (the reserve holds them)... */
  minimumVictims: number
  /** ... and at most this many. */
  maximumVictims: number
  /** The promised bound on data-area use: liveBytes * boundRatio + reserveBytes. */
  boundRatio: number
  /** Victims fuller than this are not worth copying. */
  maxVictimUtilization: number
  /** Quiet time (no writes) after which idle cleaning starts; 0 turns idle cleaning off. */
  idleDelayMs: number
  /** Idle cleaning runs while data-area use exceeds liveBytes * idleRatio + head and successor... */
  idleRatio: number
  /** ... on segments less utilized than this ... */
  idleMaxUtilization: number
  /** ... at most this many per round (two checkpoints each). */
  idleVictims: number
}

export class Cleaner {
  /** Record bytes the cleaner appended (copies of live records). */
  bytesMoved = 0
  segmentsCleaned = 0
  rounds = 0
  /** Victims left alone because a chunk in them did not verify. */
  readonly unreadable = new Set<number>()
  private running: Promise<void> | undefined
  private buffer: Buffer | undefined
  /** SegmentTable.removedTotal when a run last freed nothing: no new garbage since means no use kicking again. */
  private futileAt = -1
  /** Idle cleaning: rounds run, segments emptied, and whether a run is under way. */
  idleRounds = 0
  idleSegmentsCleaned = 0
  private idleRunning = false
  /** performance.now() of the last write the device reported (kick). */
  private lastActivity = 0
  private idleTimer: ReturnType<typeof setTimeout> | undefined
  /** SegmentTable.removedTotal when an idle run last stopped for lack of progress. */
  private idleFutileAt = -1

  constructor(
    private readonly host: CleanerHost,
    readonly policy: CleanerPolicy,
  ) {}

  memoryBytes(): number {
    return this.buffer?.length ?? 0
  }

  /**
   * The fixed reserve of the space bound: the segments kept free for
   * cleaning, the head and its successor, and one round of victims.
   */
  get reserveBytes(): number {
    return (this.policy.reserveSegments + 2 + this.policy.minimumVictims) * this.host.geometry.segmentBytes
  }

  /** Data-area bytes in use: sealed segments whole, the head as far as written. */
  usedBytes(): number {
    return this.host.segments.sealedCount * this.host.geometry.segmentBytes + this.host.log.headFill
  }

  /** Whether physical use is above the point where cleaning should start. */
  wanted(): boolean {
    const { segments } = this.host
    if (segments.freeCount <= this.policy.reserveSegments) return segments.sealedCount > 0
    return this.usedBytes() > segments.liveTotal * this.policy.startRatio + this.reserveBytes
  }

  /** Starts background rounds if they are wanted, none runs, and there is new garbage since the last futile run. */
  kick(): void {
    this.noteActivity()
    if (this.running !== undefined || this.host.closing || this.host.health.failure !== undefined) return
    if (this.host.segments.removedTotal === this.futileAt || !this.wanted()) return
    this.run().catch(() => undefined)
  }

  /** Runs rounds now (or joins the running ones) until cleaning is no longer wanted or stops helping. */
  async makeProgress(): Promise<void> {
    // A writer is waiting: an idle run under way yields to busy rounds after its victim in hand.
    this.noteActivity()
    await this.run(true)
  }

  async idle(): Promise<void> {
    while (this.running !== undefined) await this.running.catch(() => undefined)
  }

  // ------------------------------------------------------------ idle cleaning

  /** A write happened: idle cleaning stops, and starts again `idleDelayMs` after the last one. */
  noteActivity(): void {
    this.lastActivity = performance.now()
    this.armIdle(this.policy.idleDelayMs)
  }

  /** Stops the idle timer (at close); a run under way stops at its next check of `closing`. */
  stopIdle(): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer)
    this.idleTimer = undefined
  }

  private armIdle(delay: number): void {
    if (this.policy.idleDelayMs <= 0 || this.idleTimer !== undefined || this.host.closing) return
    this.idleTimer = setTimeout(() => this.onIdleTimer(), Math.max(1, delay))
    this.idleTimer.unref()
  }

  private onIdleTimer(): void {
    this.idleTimer = undefined
    if (this.host.closing || this.host.health.failure !== undefined) return
    const quiet = performance.now() - this.lastActivity
    if (quiet < this.policy.idleDelayMs) return this.armIdle(this.policy.idleDelayMs - quiet)
    // Busy cleaning still running: look again later.
    if (this.running !== undefined) return this.armIdle(this.policy.idleDelayMs)
    if (!this.idleWanted()) return
    this.runIdle().catch(() => undefined)
  }

  /** Victims an idle round would take now. */
  private idleVictims(): number[] {
    return this.host.segments.leastUtilized(this.policy.idleVictims, this.policy.idleMaxUtilization, this.unreadable)
  }

  /** Whether idle cleaning has work: emptied segments to free, or use above the idle ratio with a victim worth copying. */
  idleWanted(): boolean {
    const { segments, geometry } = this.host
    if (segments.emptySegments().length > 0 || this.host.waitingSegments() > 0) return true
    if (segments.removedTotal === this.idleFutileAt) return false
    if (this.usedBytes() <= segments.liveTotal * this.policy.idleRatio + 2 * geometry.segmentBytes) return false
    return this.idleVictims().length > 0
  }

  /** Whether a write came since `since` (performance.now()). */
  private activeSince(since: number): boolean {
    return this.lastActivity >= since
  }

  private runIdle(): Promise<void> {
    const started = performance.now()
    const rounds = (async () => {
      this.idleRunning = true
      while (this.idleWanted() && !this.activeSince(started) && !this.host.closing && this.host.health.failure === undefined) {
        const usedBefore = this.usedBytes()
        const freeBefore = this.host.segments.freeCount
        const cleanedBefore = this.segmentsCleaned
        this.idleRounds++
        await this.round(this.idleVictims(), () => this.activeSince(started))
        this.idleSegmentsCleaned += this.segmentsCleaned - cleanedBefore
        if (this.usedBytes() >= usedBefore && this.host.segments.freeCount <= freeBefore) {
          this.idleFutileAt = this.host.segments.removedTotal
          break
        }
      }
    })().finally(() => {
      this.idleRunning = false
      this.running = undefined
      this.buffer = undefined
      // Writes came while it ran: their own quiet period decides when to go on.
      if (this.activeSince(started)) this.armIdle(this.policy.idleDelayMs)
    })
    this.running = rounds
    return rounds
  }

  /** True while an idle run is under way (for tests and statistics). */
  get idleCleaning(): boolean {
    return this.idleRunning
  }

  private run(atLeastOnce = false): Promise<void> {
    if (this.running !== undefined) return this.running
    const rounds = (async () => {
      let first = atLeastOnce
      while ((first || this.wanted()) && !this.host.closing && this.host.health.failure === undefined) {
        first = false
        const usedBefore = this.usedBytes()
        const freeBefore = this.host.segments.freeCount
        await this.round(this.busyVictims())
        // Stop when a round gained nothing: copying would only churn.
        if (this.usedBytes() >= usedBefore && this.host.segments.freeCount <= freeBefore) {
          this.futileAt = this.host.segments.removedTotal
          break
        }
      }
    })().finally(() => {
      this.running = undefined
      this.buffer = undefined
    })
    this.running = rounds
    return rounds
  }

  /** Victims this round may take: each adds its live copy to use before it frees its segment. */
  private victimBudget(): number {
    const { segments, geometry } = this.host
    const headroom = segments.liveTotal * this.policy.boundRatio + this.reserveBytes - this.usedBytes()
    const fitting = Math.floor(headroom / geometry.segmentBytes)
    return Math.max(this.policy.minimumVictims, Math.min(this.policy.maximumVictims, fitting))
  }

  /** Victims of a busy round, best first by cost-benefit. */
  private busyVictims(): number[] {
    const budget = this.victimBudget()
    return this.host.segments
      .chooseVictims(budget + this.unreadable.size, this.policy.maxVictimUtilization)
      .filter((segment) => !this.unreadable.has(segment))
      .slice(0, budget)
  }

  /**
   * One round: clean `victims` (until `interrupted` says stop), then
   * checkpoint twice so they are free.
   */
  private async round(victims: readonly number[], interrupted: () => boolean = () => false): Promise<void> {
    const { segments, geometry } = this.host
    this.rounds++
    const emptyBefore = segments.emptySegments().length + this.host.waitingSegments()
    let moved = false
    for (const victim of victims) {
      if (this.host.closing || this.host.health.failure !== undefined || interrupted()) break
      // Copying needs room: never start a victim whose live bytes the free segments cannot take.
      const room = (segments.freeCount - 1) * geometry.segmentBytes + (geometry.segmentBytes - this.host.log.headFill)
      if (room < (segments.liveBytesOf(victim) * 5) / 4 + 2 * CHUNK_ALIGNMENT_BYTES) break
      await this.clean(victim)
      moved = true
    }
    if (!moved && emptyBefore === 0) return
    // The first checkpoint marks the emptied victims dead, the second frees them
    // (a segment is reused only after the checkpoint after the one that saw it empty).
    await this.host.checkpointNow()
    if (this.host.waitingSegments() > 0 && !this.host.closing) await this.host.checkpointNow()
  }

  /** Copies the live records of `victim` to the log head. */
  private async clean(victim: number): Promise<void> {
    const { geometry, volume, segments } = this.host
    segments.setState(victim, SegmentState.CLEANING)
    try {
      this.buffer ??= volume.allocate(geometry.segmentBytes)
      const buffer = this.buffer
      await volume.read([{ offset: geometry.dataOffset + victim * geometry.segmentBytes, length: geometry.segmentBytes, buffer, bufferOffset: 0 }])
      const incarnation = segments.incarnationOf(victim)
      const seed = segments.seedOf(victim)
      const recordStart = chunkRecordStart(geometry.granuleBytes)
      for (let at = 0; at + CHUNK_ALIGNMENT_BYTES <= geometry.segmentBytes; ) {
        const header = decodeChunkHeader(geometry, buffer, at)
        if (header === undefined || header.segment !== victim || header.offset !== at || header.incarnation !== incarnation) {
          at += CHUNK_ALIGNMENT_BYTES
          continue
        }
        const start = at + recordStart
        const end = start + header.recordBytes
        if (crc32c(buffer, start, end) !== header.dataCrc) {
          this.unreadable.add(victim)
          return
        }
        await this.moveChunk(victim, buffer, start, end, seed)
        at += header.chunkBytes
      }
      if (segments.liveBytesOf(victim) === 0) this.segmentsCleaned++
      else this.unreadable.add(victim)
    } finally {
      if (segments.stateOf(victim) === SegmentState.CLEANING) segments.setState(victim, SegmentState.USED)
    }
  }

  private async moveChunk(victim: number, buffer: Buffer, start: number, end: number, seed: number): Promise<void> {
    const { geometry, map } = this.host
    const candidates: Array<{ at: number; lba: number; kind: number; storedBytes: number }> = []
    for (let at = start; at < end; ) {
      const record = readRecord(buffer, at, end, seed)
      if (record === undefined) break
      if (record.kind !== RecordKind.TRIM) candidates.push({ at, ...record })
      at += recordFootprint(record.storedBytes, geometry.granuleBytes)
    }
    if (candidates.length === 0) return
    const pages = candidates.map((candidate) => BlockMap.pageOf(candidate.lba))
    await map.loadAndPin(pages)
    try {
      await this.host.withAppendLock(async () => {
        for (const candidate of candidates) {
          const address = victim * geometry.segmentBytes + candidate.at
          const recordBytes = RECORD_HEADER_BYTES + candidate.storedBytes
          if (map.lookup(candidate.lba) !== makeEntry(address, recordBytes, geometry.granuleBytes)) continue
          await this.copy(buffer, candidate.at, candidate.lba, candidate.kind, candidate.storedBytes)
        }
      })
    } finally {
      map.unpinAll(pages)
    }
  }

  /** Appends a copy of the record at buffer[at] and points the map at it. Append lock held. */
  private async copy(buffer: Buffer, at: number, lba: number, kind: number, storedBytes: number): Promise<void> {
    const { geometry, log, segments, mapper } = this.host
    const footprint = recordFootprint(storedBytes, geometry.granuleBytes)
    const placement = await log.place(footprint)
    buffer.copy(placement.buffer, placement.at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + storedBytes)
    placement.buffer.fill(0, placement.at + RECORD_HEADER_BYTES + storedBytes, placement.at + footprint)
    sealRecord(placement.buffer, placement.at, lba, kind as RecordKindValue, storedBytes, BLOCK_SIZE, segments.seedOf(placement.segment))
    mapper.assign(lba, makeEntry(placement.address, RECORD_HEADER_BYTES + storedBytes, geometry.granuleBytes))
    this.bytesMoved += footprint
  }
}
