/**
 * readEach() for a Volume or BlockDevice whose reads are all-or-nothing
 * batches anyway (memory, fault injection, test doubles): runs the batch with
 * read() and reports every request when it settles. Only the native volume
 * and the block devices over it report requests one by one as they finish.
 */

import type { CubbyError } from '../errors'
import type { ReportEach } from './types'

/** Reports each of `count` requests when `batch` settles: all succeeded, or all failed with its error. */
export function reportWhenSettled(batch: Promise<void>, count: number, onRequest: ReportEach): void {
  batch.then(
    () => {
      for (let index = 0; index < count; index++) onRequest(index, undefined)
    },
    (error: unknown) => {
      for (let index = 0; index < count; index++) onRequest(index, error as CubbyError)
    },
  )
}
