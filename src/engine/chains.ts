/**
 * Reading whole bucket chains (primary block + overflow blocks), decoded, for
 * flush steps and iteration.
 *
 * Blocks come from the flush overlay, then the cache, then the device in one
 * batch per chain depth (all primaries, then all first overflow blocks, ...).
 * Every block is verified. A chain whose block fails verification is read
 * again when a write happened since the read began (an iterator can race a
 * flush step); otherwise the failure is CUBBY_CORRUPT naming the block.
 */

import { corrupt } from '../errors'
import type { BlockRequest } from '../device/types'
import { type ChainEntry, checkChainBlock, decodeEntries, newChainHeader, readChainHeader } from './bucket'
import { BLOCK_SIZE } from './format'
import type { StoreState } from './state'

/** A chain as read: its blocks' LBAs (bucket first), LSN and entries. */
export interface Chain {
  bucket: number
  lbas: number[]
  lsn: number
  entries: ChainEntry[]
}

/** Longest chain a read follows before calling it corrupt (a loop in the links). */
const MAX_CHAIN_BLOCKS = 4096
const MAX_ATTEMPTS = 16

export class ChainReader {
  private buffer: Buffer | undefined
  private readonly header = newChainHeader()
  /** Next free block of the read buffer in the current read() call. */
  private cursor = 0

  constructor(
    private readonly state: StoreState,
    /** Most buckets one call reads. */
    readonly maxBuckets: number,
    /**
     * Whether entries are views into the read buffer (valid until the next
     * read(): flush steps) rather than copies (iteration hands them out).
     */
    private readonly views: boolean,
  ) {}

  /** Blocks of the read buffer: room for every primary block and as many overflow blocks. */
  private get capacity(): number {
    return 2 * this.maxBuckets
  }

  get memoryBytes(): number {
    return this.buffer?.length ?? 0
  }

  /** Reads and decodes the chains of `buckets` (at most maxBuckets). */
  async read(buckets: readonly number[]): Promise<Chain[]> {
    const chains: Chain[] = buckets.map((bucket) => ({ bucket, lbas: [this.state.bucketLba(bucket)], lsn: 0, entries: [] }))
    let attempts = 0
    let open = chains.slice()
    this.cursor = 0
    while (open.length > 0) {
      const epoch = this.state.writeEpoch
      const retry: Chain[] = []
      const next: Chain[] = []
      await this.readRound(open, epoch, retry, next)
      if (retry.length > 0) {
        attempts++
        for (const chain of retry) {
          chain.lbas = [this.state.bucketLba(chain.bucket)]
          chain.entries = []
        }
      }
      open = next.concat(retry)
      if (attempts > MAX_ATTEMPTS) throw corrupt(`bucket ${retry[0]!.bucket}: its chain kept changing while it was read`)
    }
    return chains
  }

  /** Reads the last listed block of each chain in `open`; sorts chains into retry / next / done. */
  private async readRound(open: Chain[], epoch: number, retry: Chain[], next: Chain[]): Promise<void> {
    const requests: BlockRequest[] = []
    const sources: Array<{ buffer: Buffer; offset: number }> = []
    const buffer = this.readBuffer()
    // Entries may stay views of this round's blocks only if no later round reuses them.
    const views = this.views && this.cursor + open.length <= this.capacity
    const first = views ? this.cursor : 0
    for (const chain of open) {
      const lba = chain.lbas[chain.lbas.length - 1]!
      const overlay = this.state.overlay.get(lba)
      const cached = overlay === undefined ? this.state.cache.lookup(lba) : -1
      if (overlay !== undefined || cached >= 0) {
        // Overlay and cache blocks change under us: read a copy into the buffer.
        const offset = (first + sources.length) * BLOCK_SIZE
        if (overlay !== undefined) overlay.buffer.copy(buffer, offset, overlay.offset, overlay.offset + BLOCK_SIZE)
        else {
          const from = this.state.cache.offsetOf(cached)
          this.state.cache.bufferOf(cached).copy(buffer, offset, from, from + BLOCK_SIZE)
        }
        sources.push({ buffer, offset })
      } else {
        const offset = (first + sources.length) * BLOCK_SIZE
        requests.push({ lba, buffer, bufferOffset: offset })
        sources.push({ buffer, offset })
      }
    }
    if (views) this.cursor += open.length
    if (requests.length > 0) await this.state.device.read(requests)
    const raced = epoch !== this.state.writeEpoch
    open.forEach((chain, index) => {
      const { buffer: block, offset } = sources[index]!
      const lba = chain.lbas[chain.lbas.length - 1]!
      const overflow = chain.lbas.length > 1
      const kind = overflow ? 'overflow' : 'bucket'
      let reason = checkChainBlock(block, offset, lba, kind, chain.bucket, this.state.storeTag)
      const header = reason === undefined ? readChainHeader(block, offset, this.header) : undefined
      if (header !== undefined && overflow && header.lsn !== chain.lsn) reason = `has LSN ${header.lsn}, its chain ${chain.lsn}`
      if (reason === undefined) reason = decodeEntries(block, offset, chain.entries, views)
      if (reason !== undefined) {
        if (raced) retry.push(chain)
        else throw corrupt(`${kind} block ${lba} (bucket ${chain.bucket}) ${reason}`)
        return
      }
      if (!overflow) chain.lsn = header!.lsn
      if (header!.next !== 0) {
        if (chain.lbas.length >= MAX_CHAIN_BLOCKS) throw corrupt(`bucket ${chain.bucket}: its overflow chain is longer than ${MAX_CHAIN_BLOCKS} blocks (a loop?)`)
        chain.lbas.push(header!.next)
        next.push(chain)
      }
    })
  }

  private readBuffer(): Buffer {
    if (this.buffer === undefined) this.buffer = this.state.device.allocate(this.capacity)
    return this.buffer
  }
}
