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

export class SegmentTable {
  readonly liveBytes: Uint32Array
  readonly incarnations: Uint32Array
  /** CRC seed of each segment's incarnation (records are checksummed with it). */
  readonly seeds: Uint32Array
  readonly states: Uint8Array
  /** Value of `clock` when the segment was last appended to (the age of its data). */
  private readonly writtenAt: Float64Array
  freeCount = 0
  liveTotal = 0
  /** Bytes ever removed from live (only grows): new garbage shows as a change here. */
  removedTotal = 0
  /** Segments in state USED, CLEANING or DEAD (they take physical space). */
  sealedCount = 0
  nextIncarnation: number
  /** Advances by one per segment filled: the time unit of cost-benefit cleaning. */
  clock = 0

  constructor(
    readonly segmentCount: number,
    readonly segmentBytes: number,
    liveBytes: Uint32Array,
    incarnations: Uint32Array,
    nextIncarnation: number,
  ) {
    assert(liveBytes.length === segmentCount && incarnations.length === segmentCount)
    this.liveBytes = liveBytes
    this.incarnations = incarnations
    this.seeds = new Uint32Array(segmentCount)
    this.states = new Uint8Array(segmentCount)
    this.writtenAt = new Float64Array(segmentCount)
    this.nextIncarnation = nextIncarnation === 0 ? 1 : nextIncarnation
    for (let segment = 0; segment < segmentCount; segment++) {
      this.seeds[segment] = incarnationSeed(incarnations[segment]!)
      this.liveTotal += liveBytes[segment]!
    }
  }

  memoryBytes(): number {
    return this.segmentCount * (4 + 4 + 4 + 1 + 8)
  }

  /** Sets the states from a checkpoint: head and successor as given, FREE where nothing is live. */
  classify(head: number, successor: number): void {
    this.freeCount = 0
    this.sealedCount = 0
    for (let segment = 0; segment < this.segmentCount; segment++) {
      if (segment === head) this.states[segment] = SegmentState.HEAD
      else if (segment === successor) this.states[segment] = SegmentState.SUCCESSOR
      else if (this.liveBytes[segment] === 0) {
        this.states[segment] = SegmentState.FREE
        this.freeCount++
      } else {
        this.states[segment] = SegmentState.USED
        this.sealedCount++
      }
    }
  }

  /** Marks a segment reached by log replay as part of the log (it may be FREE in the checkpoint). */
  claimForReplay(segment: number, incarnation: number): void {
    const state = this.states[segment]
    if (state === SegmentState.FREE) {
      this.freeCount--
      this.states[segment] = SegmentState.USED
      this.sealedCount++
    }
    this.setIncarnation(segment, incarnation)
  }

  setState(segment: number, state: SegmentStateValue): void {
    const before = this.states[segment]!
    if (before === state) return
    if (before === SegmentState.FREE) this.freeCount--
    if (state === SegmentState.FREE) this.freeCount++
    const sealed = (value: number) => value === SegmentState.USED || value === SegmentState.CLEANING || value === SegmentState.DEAD
    if (sealed(before)) this.sealedCount--
    if (sealed(state)) this.sealedCount++
    this.states[segment] = state
  }

  setIncarnation(segment: number, incarnation: number): void {
    this.incarnations[segment] = incarnation
    this.seeds[segment] = incarnationSeed(incarnation)
  }

  /** Reserves the lowest-numbered FREE segment as a successor, with a new incarnation; undefined if none is free. */
  allocate(): number | undefined {
    if (this.freeCount === 0) return undefined
    const segment = this.states.indexOf(SegmentState.FREE)
    assert(segment >= 0, 'freeCount says a segment is free')
    this.setState(segment, SegmentState.SUCCESSOR)
    const incarnation = this.nextIncarnation
    this.nextIncarnation = this.nextIncarnation >= 0xffff_ffff ? 1 : this.nextIncarnation + 1
    this.setIncarnation(segment, incarnation)
    this.writtenAt[segment] = this.clock
    return segment
  }

  addLive(segment: number, bytes: number): void {
    this.liveBytes[segment]! += bytes
    this.liveTotal += bytes
    this.writtenAt[segment] = this.clock
  }

  removeLive(segment: number, bytes: number): void {
    assert(this.liveBytes[segment]! >= bytes, `segment ${segment} would hold fewer than zero live bytes`)
    this.liveBytes[segment]! -= bytes
    this.liveTotal -= bytes
    this.removedTotal += bytes
  }

  /** Sealed segments with nothing live (not yet marked DEAD). */
  emptySegments(): number[] {
    const empty: number[] = []
    for (let segment = 0; segment < this.segmentCount; segment++) {
      if (this.states[segment] === SegmentState.USED && this.liveBytes[segment] === 0) empty.push(segment)
    }
    return empty
  }

  /** At a checkpoint cut: the empty segments become DEAD; returns them. */
  markDead(): number[] {
    const empty = this.emptySegments()
    for (const segment of empty) this.setState(segment, SegmentState.DEAD)
    return empty
  }

  /** A DEAD segment no committed checkpoint needs any more, and discarded: it is FREE. */
  release(segment: number): void {
    assert(this.states[segment] === SegmentState.DEAD && this.liveBytes[segment] === 0, `segment ${segment} released while in use`)
    this.setState(segment, SegmentState.FREE)
    this.setIncarnation(segment, 0)
  }

  /**
   * Up to `count` victims for idle cleaning: the least utilized first
   * (greedy: the most space back per byte copied, age no longer matters
   * once writes have stopped). Only segments below `maxUtilization`, and
   * none in `excluded`.
   */
  leastUtilized(count: number, maxUtilization: number, excluded: ReadonlySet<number>): number[] {
    const scored: Array<{ segment: number; utilization: number }> = []
    for (let segment = 0; segment < this.segmentCount; segment++) {
      if (this.states[segment] !== SegmentState.USED || this.liveBytes[segment] === 0 || excluded.has(segment)) continue
      const utilization = this.liveBytes[segment]! / this.segmentBytes
      if (utilization < maxUtilization) scored.push({ segment, utilization })
    }
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
    for (let segment = 0; segment < this.segmentCount; segment++) {
      if (this.states[segment] !== SegmentState.USED || this.liveBytes[segment] === 0) continue
      const utilization = Math.min(1, this.liveBytes[segment]! / this.segmentBytes)
      if (utilization >= maxUtilization) continue
      const age = 1 + this.clock - this.writtenAt[segment]!
      scored.push({ segment, score: ((1 - utilization) * age) / (1 + utilization) })
    }
    scored.sort((left, right) => right.score - left.score)
    return scored.slice(0, count).map((entry) => entry.segment)
  }
}
