/**
 * Findings: what a check or a salvage found, gathered as it goes.
 *
 * Problems are bounded (MAX_LISTED_PROBLEMS are listed; the rest are only
 * counted, under the count 'problems not listed'), so a store damaged
 * everywhere cannot make the report grow without limit. Counts name what was
 * checked ('buckets', 'extents', ...) and what an open would still do
 * ('log frames to replay', ...).
 *
 * Only CubbyErrors become problems: any other error thrown while checking is
 * a bug in the checker and propagates.
 *
 * Who uses it: src/check/*.ts.
 */

import { CubbyError, ErrorCode, type CubbyErrorCode } from '../errors'
import type { CheckProblem } from '../check'

/** Problems listed in a report; more are counted, not listed. */
export const MAX_LISTED_PROBLEMS = 1000

export class Findings {
  readonly problems: CheckProblem[] = []
  readonly counts: Record<string, number> = {}
  /** Problems found, listed or not. */
  total = 0

  add(structure: string, location: string, code: CubbyErrorCode, message: string): void {
    this.total++
    if (this.problems.length < MAX_LISTED_PROBLEMS) this.problems.push({ structure, location, code, message })
    else this.count('problems not listed')
  }

  corrupt(structure: string, location: string, message: string): void {
    this.add(structure, location, ErrorCode.CORRUPT, message)
  }

  /** Records `error` (a CubbyError) as a problem of `structure` at `location`; rethrows anything else. */
  fromError(structure: string, location: string, error: unknown): void {
    if (!(error instanceof CubbyError)) throw error
    this.add(structure, location, error.code, error.message)
  }

  count(name: string, by = 1): void {
    this.counts[name] = (this.counts[name] ?? 0) + by
  }

  /** Whether any problem concerns one of `structures`. */
  has(...structures: string[]): boolean {
    return this.problems.some((problem) => structures.includes(problem.structure))
  }
}

/** Calls `onProgress` at most every PROGRESS_STEP units of work, and at the end. */
export class Progress {
  private done = 0
  private reported = 0

  constructor(
    private readonly onProgress: ((done: number, total: number) => void) | undefined,
    public total: number,
  ) {}

  advance(units: number): void {
    this.done += units
    // Every 1% of the total, or every 256 units on large stores.
    const step = Math.max(1, Math.min(256, Math.floor(this.total / 100)))
    if (this.onProgress !== undefined && (this.done - this.reported >= step || this.done >= this.total)) {
      this.reported = this.done
      this.onProgress(Math.min(this.done, this.total), this.total)
    }
  }

  finish(): void {
    if (this.onProgress !== undefined && this.reported < this.total) this.onProgress(this.total, this.total)
  }
}
