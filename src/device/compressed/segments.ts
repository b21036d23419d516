/**
 * SegmentTable: the state, live bytes and incarnation of every segment, the
 * allocator of new log segments and the cleaner's choice of victims.
 *
 * States (in memory only; a checkpoint records live bytes and incarnations,
 * docs/format.md 3.3):
 *   FREE       holds nothing anyone needs; may be handed out by allocate().
 *   USED       written, sealed; its live bytes may fall to 0.
 *   DEAD       was USED with nothing live at a checkpoint cut; becomes FREE
 *              (release()) when the *next* checkpoint commits, so the
 *              previous checkpoint, which may still need it, stays a
 *              complete fallback until then.
 *   HEAD       the segment the log is appending to.
 *   SUCCESSOR  reserved for when the head is full (its index is already in
 *              durable chunk headers, so it cannot go to anyone else).
 *   CLEANING   USED, and the cleaner is copying its live records out.
 *
 * Invariants: liveBytes never goes below zero (asserted); `liveTotal` is
 * the sum of liveBytes; `freeCount` counts FREE segments; exactly one HEAD
 * and one SUCCESSOR once the device is open.
 *
 * Memory follows use, not the planned size of the store: the per-segment
 * state (21 bytes a segment) is held in chunks of SEGMENTS_PER_CHUNK
 * segments, made only up to the highest segment that is not *blank* (FREE,
 * nothing live, incarnation 0), and the trailing chunks are dropped again
 * when their last segment goes blank. Every segment at or beyond
 * `highWater` is blank; loops over segments stop there. The allocator hands
 * out the lowest-numbered FREE segment, so the segments in use stay packed
 * at the low end and `highWater` tracks the data area actually used.
 *
 * Who calls this: CompressedBlockDevice, the log writer, the recovery, the
 * checkpointer and the cleaner; all synchronous.
 */

import assert from 'node:assert'
import { incarnationSeed } from './format'

export const SegmentState = {
  FREE: 0,
  USED: 1,
  HEAD: 2,
  SUCCESSOR: 3,
  CLEANING: 4,
  DEAD: 5,
} as const
export type SegmentStateValue = (typeof SegmentState)[keyof typeof SegmentState]

/** Segments per chunk of the table's state (a power of two: a chunk is 21 KiB). */
export const SEGMENTS_PER_CHUNK = 1024
const CHUNK_SHIFT = 10
const CHUNK_MASK = SEGMENTS_PER_CHUNK - 1
/** Bytes of state per segment: live bytes, incarnation, seed, state, writtenAt. */
const BYTES_PER_SEGMENT = 4 + 4 + 4 + 1 + 8
/** CRC seed of incarnation 0, the seed of a blank segment. */
const BLANK_SEED = incarnationSeed(0)

/** The state of SEGMENTS_PER_CHUNK consecutive segments (of fewer in the data area's last chunk). */
class Chunk {
  readonly liveBytes: Uint32Array
  readonly incarnations: Uint32Array
  /** CRC seed of each segment's incarnation (records are checksummed with it). */
  readonly seeds: Uint32Array
  readonly states: Uint8Array
  /** Value of `clock` when the segment was last appended to (the age of its data). */
  readonly writtenAt: Float64Array

  constructor(readonly length: number) {
    this.liveBytes = new Uint32Array(length)
    this.incarnations = new Uint32Array(length)
    this.seeds = new Uint32Array(length).fill(BLANK_SEED)
    this.states = new Uint8Array(length)
    this.writtenAt = new Float64Array(length)
  }

  /** True when every segment of the chunk is FREE with nothing live and incarnation 0. */
  blank(): boolean {
    for (let index = 0; index < this.length; index++) {
      if (this.states[index] !== SegmentState.FREE || this.liveBytes[index] !== 0 || this.incarnations[index] !== 0) return false
    }
    return true
  }
}

/** The live bytes and incarnations of segments [0, count), copied; every segment from `count` on has both 0. */
export interface SegmentSnapshot {
  count: number
  liveBytes: Uint32Array
  incarnations: Uint32Array
}

export class SegmentTable {
  /** Chunk i holds segments [i * SEGMENTS_PER_CHUNK, (i + 1) * SEGMENTS_PER_CHUNK). */
  private readonly chunks: Chunk[] = []
  /** No segment below it is FREE: allocate() searches from here. At most highWater. */
  private lowestFree = 0
  freeCount: number
  liveTotal = 0
  /** Bytes ever removed from live (only grows): new garbage shows as a change here. */
  removedTotal = 0
  /** Segments in state USED, CLEANING or DEAD (they take physical space). */
  sealedCount = 0
  nextIncarnation: number
  /** Advances by one per segment filled: the time unit of cost-benefit cleaning. */
  clock = 0

  /**
   * A table of `segmentCount` segments, all FREE until classify(). `initial`
   * (a checkpoint's tables, one entry per segment) gives their live bytes and
   * incarnations; it is copied up to its last segment that is not blank, and
   * not kept.
   */
  constructor(
    readonly segmentCount: number,
    readonly segmentBytes: number,
    nextIncarnation: number,
    initial?: { liveBytes: ArrayLike<number>; incarnations: ArrayLike<number> },
  ) {
    this.nextIncarnation = nextIncarnation === 0 ? 1 : nextIncarnation
    this.freeCount = segmentCount
    if (initial === undefined) return
    assert(initial.liveBytes.length === segmentCount && initial.incarnations.length === segmentCount)
    let top = segmentCount - 1
    while (top >= 0 && initial.liveBytes[top] === 0 && initial.incarnations[top] === 0) top--
    for (let segment = 0; segment <= top; segment++) {
      const chunk = this.chunkFor(segment)
      const index = segment & CHUNK_MASK
      chunk.liveBytes[index] = initial.liveBytes[segment]!
      chunk.incarnations[index] = initial.incarnations[segment]!
      chunk.seeds[index] = incarnationSeed(initial.incarnations[segment]!)
      this.liveTotal += initial.liveBytes[segment]!
    }
  }

  /** Segments the table holds state for; every segment from here on is blank (FREE, nothing live, incarnation 0). */
  get highWater(): number {
    const last = this.chunks.length - 1
    return last < 0 ? 0 : last * SEGMENTS_PER_CHUNK + this.chunks[last]!.length
  }

  memoryBytes(): number {
    let segments = 0
    for (const chunk of this.chunks) segments += chunk.length
    return segments * BYTES_PER_SEGMENT
  }

  stateOf(segment: number): SegmentStateValue {
    const chunk = this.chunks[segment >>> CHUNK_SHIFT]
    return chunk === undefined ? SegmentState.FREE : (chunk.states[segment & CHUNK_MASK] as SegmentStateValue)
  }

  liveBytesOf(segment: number): number {
    const chunk = this.chunks[segment >>> CHUNK_SHIFT]
    return chunk === undefined ? 0 : chunk.liveBytes[segment & CHUNK_MASK]!
  }

  incarnationOf(segment: number): number {
    const chunk = this.chunks[segment >>> CHUNK_SHIFT]
    return chunk === undefined ? 0 : chunk.incarnations[segment & CHUNK_MASK]!
  }

  /** CRC seed of the segment's incarnation (records are checksummed with it). */
  seedOf(segment: number): number {
    const chunk = this.chunks[segment >>> CHUNK_SHIFT]
    return chunk === undefined ? BLANK_SEED : chunk.seeds[segment & CHUNK_MASK]!
  }

  /** The chunk holding `segment`, made (with every chunk below it) if it does not exist yet. */
  private chunkFor(segment: number): Chunk {
    assert(Number.isSafeInteger(segment) && segment >= 0 && segment < this.segmentCount, `segment ${segment} is outside the data area`)
    const wanted = segment >>> CHUNK_SHIFT
    while (this.chunks.length <= wanted) {
      const first = this.chunks.length * SEGMENTS_PER_CHUNK
      this.chunks.push(new Chunk(Math.min(SEGMENTS_PER_CHUNK, this.segmentCount - first)))
    }
    return this.chunks[wanted]!
  }

  /** Drops trailing chunks whose segments are all blank. */
  private dropBlankChunks(): void {
    while (this.chunks.length > 0 && this.chunks[this.chunks.length - 1]!.blank()) this.chunks.pop()
    this.lowestFree = Math.min(this.lowestFree, this.highWater)
  }

  /** Sets the states from a checkpoint: head and successor as given, FREE where nothing is live. */
  classify(head: number, successor: number): void {
    if (head >= 0) this.chunkFor(head)
    if (successor >= 0) this.chunkFor(successor)
    this.freeCount = this.segmentCount - this.highWater
    this.sealedCount = 0
    this.lowestFree = 0
    this.chunks.forEach((chunk, chunkIndex) => {
      for (let index = 0; index < chunk.length; index++) {
        const segment = chunkIndex * SEGMENTS_PER_CHUNK + index
        if (segment === head) chunk.states[index] = SegmentState.HEAD
        else if (segment === successor) chunk.states[index] = SegmentState.SUCCESSOR
        else if (chunk.liveBytes[index] === 0) {
          chunk.states[index] = SegmentState.FREE
          this.freeCount++
        } else {
          chunk.states[index] = SegmentState.USED
          this.sealedCount++
        }
      }
    })
  }

  setState(segment: number, state: SegmentStateValue): void {
    const before = this.stateOf(segment)
    if (before === state) return
    const chunk = this.chunkFor(segment)
    if (before === SegmentState.FREE) this.freeCount--
    if (state === SegmentState.FREE) {
      this.freeCount++
      this.lowestFree = Math.min(this.lowestFree, segment)
    }
    const sealed = (value: number) => value === SegmentState.USED || value === SegmentState.CLEANING || value === SegmentState.DEAD
    if (sealed(before)) this.sealedCount--
    if (sealed(state)) this.sealedCount++
    chunk.states[segment & CHUNK_MASK] = state
  }

  setIncarnation(segment: number, incarnation: number): void {
    if (incarnation === 0 && this.chunks[segment >>> CHUNK_SHIFT] === undefined) return
    const chunk = this.chunkFor(segment)
    chunk.incarnations[segment & CHUNK_MASK] = incarnation
    chunk.seeds[segment & CHUNK_MASK] = incarnationSeed(incarnation)
  }

  /** The lowest-numbered FREE segment, if any. */
  private lowestFreeSegment(): number | undefined {
    for (let chunkIndex = this.lowestFree >>> CHUNK_SHIFT; chunkIndex < this.chunks.length; chunkIndex++) {
      const first = chunkIndex * SEGMENTS_PER_CHUNK
      const found = this.chunks[chunkIndex]!.states.indexOf(SegmentState.FREE, Math.max(0, this.lowestFree - first))
      if (found >= 0) return first + found
    }
    return this.highWater < this.segmentCount ? this.highWater : undefined
  }

  /** Reserves the lowest-numbered FREE segment as a successor, with a new incarnation; undefined if none is free. */
  allocate(): number | undefined {
    if (this.freeCount === 0) return undefined
    const segment = this.lowestFreeSegment()
    assert(segment !== undefined, 'freeCount says a segment is free')
    this.setState(segment, SegmentState.SUCCESSOR)
    this.lowestFree = segment + 1
    const incarnation = this.nextIncarnation
    this.nextIncarnation = this.nextIncarnation >= 0xffff_ffff ? 1 : this.nextIncarnation + 1
    this.setIncarnation(segment, incarnation)
    this.chunkFor(segment).writtenAt[segment & CHUNK_MASK] = this.clock
    return segment
  }

  addLive(segment: number, bytes: number): void {
    const chunk = this.chunkFor(segment)
    chunk.liveBytes[segment & CHUNK_MASK]! += bytes
    chunk.writtenAt[segment & CHUNK_MASK] = this.clock
    this.liveTotal += bytes
  }

  removeLive(segment: number, bytes: number): void {
    assert(this.liveBytesOf(segment) >= bytes, `segment ${segment} would hold fewer than zero live bytes`)
    if (bytes === 0) return
    this.chunks[segment >>> CHUNK_SHIFT]!.liveBytes[segment & CHUNK_MASK]! -= bytes
    this.liveTotal -= bytes
    this.removedTotal += bytes
  }

  /** The highest incarnation any segment holds (0 if none). */
  highestIncarnation(): number {
    let highest = 0
    for (const chunk of this.chunks) for (const incarnation of chunk.incarnations) highest = Math.max(highest, incarnation)
    return highest
  }

  /** What a checkpoint records of the segments now: their live bytes and incarnations up to highWater. */
  snapshot(): SegmentSnapshot {
    const count = this.highWater
    const liveBytes = new Uint32Array(count)
    const incarnations = new Uint32Array(count)
    this.chunks.forEach((chunk, chunkIndex) => {
      liveBytes.set(chunk.liveBytes, chunkIndex * SEGMENTS_PER_CHUNK)
      incarnations.set(chunk.incarnations, chunkIndex * SEGMENTS_PER_CHUNK)
    })
    return { count, liveBytes, incarnations }
  }

  /** Sealed segments with nothing live (not yet marked DEAD). */
  emptySegments(): number[] {
    const empty: number[] = []
    this.chunks.forEach((chunk, chunkIndex) => {
      for (let index = 0; index < chunk.length; index++) {
        if (chunk.states[index] === SegmentState.USED && chunk.liveBytes[index] === 0) empty.push(chunkIndex * SEGMENTS_PER_CHUNK + index)
      }
    })
    return empty
  }

  /** At a checkpoint cut: the empty segments become DEAD; returns them. */
  markDead(): number[] {
    const empty = this.emptySegments()
    for (const segment of empty) this.setState(segment, SegmentState.DEAD)
    return empty
  }

  /** A DEAD segment no committed checkpoint needs any more, and discarded: it is FREE (and blank). */
  release(segment: number): void {
    assert(this.stateOf(segment) === SegmentState.DEAD && this.liveBytesOf(segment) === 0, `segment ${segment} released while in use`)
    this.setState(segment, SegmentState.FREE)
    this.setIncarnation(segment, 0)
    if (segment >>> CHUNK_SHIFT === this.chunks.length - 1) this.dropBlankChunks()
  }

  /**
   * Up to `count` victims for idle cleaning: the least utilized first
   * (greedy: the most space back per byte copied, age no longer matters
   * once writes have stopped). Only segments below `maxUtilization`, and
   * none in `excluded`.
   */
  leastUtilized(count: number, maxUtilization: number, excluded: ReadonlySet<number>): number[] {
    const scored: Array<{ segment: number; utilization: number }> = []
    this.chunks.forEach((chunk, chunkIndex) => {
      for (let index = 0; index < chunk.length; index++) {
        const segment = chunkIndex * SEGMENTS_PER_CHUNK + index
        if (chunk.states[index] !== SegmentState.USED || chunk.liveBytes[index] === 0 || excluded.has(segment)) continue
        const utilization = chunk.liveBytes[index]! / this.segmentBytes
        if (utilization < maxUtilization) scored.push({ segment, utilization })
      }
    })
    scored.sort((left, right) => left.utilization - right.utilization)
    return scored.slice(0, count).map((entry) => entry.segment)
  }

  /**
   * Up to `count` victims for cleaning, best first by Rosenblum and
   * Ousterhout's cost-benefit ratio (1 - u) * age / (1 + u), where u is the
   * live fraction. Segments with u >= `maxUtilization` are not worth moving.
   */
  chooseVictims(count: number, maxUtilization: number): number[] {
    const scored: Array<{ segment: number; score: number }> = []
    this.chunks.forEach((chunk, chunkIndex) => {
      for (let index = 0; index < chunk.length; index++) {
        if (chunk.states[index] !== SegmentState.USED || chunk.liveBytes[index] === 0) continue
        const utilization = Math.min(1, chunk.liveBytes[index]! / this.segmentBytes)
        if (utilization >= maxUtilization) continue
        const age = 1 + this.clock - chunk.writtenAt[index]!
        scored.push({ segment: chunkIndex * SEGMENTS_PER_CHUNK + index, score: ((1 - utilization) * age) / (1 + utilization) })
      }
    })
    scored.sort((left, right) => right.score - left.score)
    return scored.slice(0, count).map((entry) => entry.segment)
  }
}
