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
import { DelegatingVolume } from '../device/delegating'

export class BorrowedVolume extends DelegatingVolume {
  override get growable(): boolean {
    return false
  }
  override get readOnly(): boolean {
    return true
  }

  override async write(): Promise<void> {
    throw this.refusal()
  }

  override async sync(): Promise<void> {
    throw this.refusal()
  }

  override async discard(): Promise<void> {
    throw this.refusal()
  }

  override async grow(): Promise<void> {
    throw this.refusal()
  }

  override async close(): Promise<void> {}

  private refusal(): CubbyError {
    return new CubbyError(ErrorCode.READ_ONLY, `${this.path} is being checked: nothing is written to it`, { path: this.path })
  }
}
