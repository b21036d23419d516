// The corruption fuzzer of test/reliability-corruption.test.ts and the soak:
// closed stores (both modes) whose structures are damaged on purpose, by
// seed, then judged.
//
// Damage: bit flips, overwritten ranges, zeroed blocks, swapped blocks, one
// block copied over another (a misdirected write), truncation. Targets, by
// the layout read from the store: raw mode's superblocks, journal slots, log
// ring, buckets, overflow blocks, value extents, bitmap; lz4 mode's header,
// checkpoint slots, map page copies, segment chunks and records, and (as
// "logical" damage written through the device, as if the bytes went bad
// before compression) the engine's blocks inside it.
//
// Judgement: opening and every read (get, has, iteration, a write and flush,
// close) either gives the right answer or fails with CUBBY_CORRUPT /
// CUBBY_NOT_A_STORE / CUBBY_VERSION; never a wrong value, an untyped error,
// or a hang (every call runs under a timeout). checkStore reports a problem
// whenever anything failed, and whenever the damage hit a structure it
// verifies. Salvage copies only right pairs. One exception is allowed and
// documented (docs/reliability.md): in raw mode an all-zero primary bucket is
// an empty bucket, so a bucket zeroed on the device (a lost write) reads as
// empty; checkStore finds it by the superblock's key count.
import { type CubbyDB, openOnVolume } from '../../src/db'
import { CompressedBlockDevice, MemoryBacking, MemoryVolume, seededRandom } from '../../src/device'
import { BorrowedVolume } from '../../src/check/borrowed'
import { type CheckReport, checkVolume, salvageVolume } from '../../src/check'
import { checkpointSlotOffset, mapPageOffset, type Geometry } from '../../src/device/compressed/format'
import { BLOCK_SIZE } from '../../src/engine/format'
import { bucketOf, hashKey, newKeyHash } from '../../src/engine/hash'
import { type Superblock, bucketCount, decodeSuperblock } from '../../src/engine/superblock'
import type { BlockDevice } from '../../src/device/types'
import { RawBlockDevice } from '../../src/device/raw'
import { contents } from './store'
import { SMALL_LZ4, type Compression } from './power'

export const FUZZ_STORE = { size: 32 * 1024 * 1024, expectedKeys: 120, keySize: 9, valueSize: 60, writeBufferSize: 1024 * 1024, cacheSize: 0 }
/** Each call on a damaged store must settle within this; longer is a hang. */
const CALL_TIMEOUT_MS = 15_000
const TOLERATED = new Set(['CUBBY_CORRUPT', 'CUBBY_NOT_A_STORE', 'CUBBY_VERSION'])

/** A block of the engine's layout and what it is. */
interface Target {
  structure: string
  lba: number
  /** The check verifies this block: damage to it must be reported. */
  checked: boolean
}

export interface FuzzStore {
  compression: Compression
  backing: MemoryBacking
  /** Expected value of every key ever written (undefined: deleted). */
  model: Map<string, Buffer | undefined>
  superblock: Superblock
  /** Engine blocks by class (logical LBAs). */
  targets: Target[]
  /** lz4 only: the device's geometry and where its structures lie on the volume. */
  geometry: Geometry | undefined
  volumeTargets: Array<{ structure: string; offset: number; length: number; checked: boolean }>
}

/** Builds a closed store with splits, overflow chains, extents and deletions; notes where everything lies. */
export async function buildFuzzStore(compression: Compression, seed: number): Promise<FuzzStore> {
  const random = seededRandom(seed)
  const volume = new MemoryVolume({ size: 0 })
  const db = await openOnVolume(volume, { ...FUZZ_STORE, compression }, { fresh: true, lz4: SMALL_LZ4 })
  const model = new Map<string, Buffer | undefined>()
  for (let index = 0; index < 700; index++) {
    const key = `key-${Math.floor(random() * 600)}`
    const roll = random()
    if (roll < 0.1 && model.has(key)) {
      await db.del(key, { sync: false })
      model.set(key, undefined)
      continue
    }
    // Some values near the inline limit crowd buckets into overflow chains; a few go to extents.
    const length = roll < 0.16 ? 1800 + Math.floor(random() * 200) : roll < 0.2 ? 3000 + Math.floor(random() * 6000) : Math.floor(random() * 80)
    const value = Buffer.alloc(length)
    for (let byte = 0; byte < length; byte++) value[byte] = Math.floor(random() * 256)
    await db.put(key, value, { sync: false })
    model.set(key, value)
  }
  await db.close()
  const backing = volume.backing
  const { superblock, targets, geometry, volumeTargets } = await describe(compression, backing)
  return { compression, backing, model, superblock, targets, geometry, volumeTargets }
}

async function describe(compression: Compression, backing: MemoryBacking): Promise<Pick<FuzzStore, 'superblock' | 'targets' | 'geometry' | 'volumeTargets'>> {
  const volume = new MemoryVolume({ readOnly: true }, backing)
  const device: BlockDevice = compression === 'lz4' ? await CompressedBlockDevice.open(new BorrowedVolume(volume)) : new RawBlockDevice(new BorrowedVolume(volume))
  try {
    const read = async (lba: number): Promise<Buffer> => {
      const buffer = device.allocate(1)
      await device.read([{ lba, buffer, bufferOffset: 0 }])
      return buffer
    }
    const copies = [decodeSuperblock(await read(0), 0), decodeSuperblock(await read(1), 0)]
    const superblocks = copies.flatMap((copy) => (copy.kind === 'valid' ? [copy.superblock] : []))
    const superblock = superblocks.reduce((best, copy) => (copy.generation > best.generation ? copy : best))
    const targets: Target[] = [
      { structure: 'superblock', lba: superblock.generation % 2, checked: true },
      { structure: 'superblock', lba: 1 - (superblock.generation % 2), checked: true },
    ]
    const current = superblock.journalStart + (superblock.generation % 2) * superblock.journalSlotBlocks
    targets.push({ structure: 'journal', lba: current, checked: true })
    const older = superblock.journalStart + ((superblock.generation + 1) % 2) * superblock.journalSlotBlocks
    targets.push({ structure: 'journal (older slot)', lba: older, checked: false })
    for (let index = 0; index < 4; index++) targets.push({ structure: 'log', lba: superblock.walStart + ((superblock.checkpointWalBlock + index) % superblock.walBlocks), checked: false })
    targets.push({ structure: 'bitmap', lba: superblock.bitmapStart, checked: true })
    for (let bucket = 0; bucket < bucketCount(superblock); bucket++) targets.push({ structure: 'bucket', lba: superblock.regionStart + bucket, checked: true })
    const regionEnd = superblock.regionStart + superblock.regionBlocks
    for (let lba = regionEnd - superblock.heapSpan; lba < regionEnd; lba++) {
      const block = await read(lba)
      if (block.toString('latin1', 0, 8) === 'CUBBY-OV') targets.push({ structure: 'overflow', lba, checked: true })
      else if (block.some((byte) => byte !== 0)) targets.push({ structure: 'extent', lba, checked: true })
    }
    if (compression !== 'lz4') return { superblock, targets, geometry: undefined, volumeTargets: [] }
    const lz4 = device as CompressedBlockDevice
    const geometry = lz4.geometry
    const volumeTargets: FuzzStore['volumeTargets'] = [
      { structure: 'lz4-header', offset: 0, length: 128, checked: true },
      { structure: 'lz4-checkpoint (newest)', offset: checkpointSlotOffset(geometry, 0), length: 512, checked: true },
      { structure: 'lz4-checkpoint (other)', offset: checkpointSlotOffset(geometry, 1), length: 512, checked: true },
    ]
    for (const page of lz4.map.pagesInUse()) {
      const state = lz4.map.pageState(page)
      if (state === 0) continue
      volumeTargets.push({ structure: 'lz4-map (current copy)', offset: mapPageOffset(geometry, page, state - 1), length: 4096, checked: true })
      volumeTargets.push({ structure: 'lz4-map (other copy)', offset: mapPageOffset(geometry, page, 2 - state), length: 4096, checked: false })
    }
    for (let segment = 0; segment < lz4.segments.highWater; segment++) {
      if (lz4.segments.liveBytesOf(segment) === 0) continue
      const start = geometry.dataOffset + segment * geometry.segmentBytes
      volumeTargets.push({ structure: 'lz4-segment (chunk header)', offset: start, length: 128, checked: true })
      volumeTargets.push({ structure: 'lz4-segment (records)', offset: start + 128, length: geometry.segmentBytes - 128, checked: false })
    }
    return { superblock, targets, geometry, volumeTargets }
  } finally {
    await device.close()
    await volume.close()
  }
}

export interface Damage {
  description: string
  /** The check must report a problem for it. */
  checked: boolean
  /** Primary buckets (LBAs) that are all zeros after the damage: they read as empty (raw mode's documented blind spot). */
  zeroedBuckets: Set<number>
}

type Mutation = 'flip' | 'overwrite' | 'zero' | 'swap' | 'copy'
const MUTATIONS: Mutation[] = ['flip', 'flip', 'overwrite', 'zero', 'swap', 'copy']

function mutateBytes(bytes: Buffer, mutation: 'flip' | 'overwrite' | 'zero', random: () => number): void {
  if (mutation === 'zero') bytes.fill(0)
  else if (mutation === 'flip') {
    for (let flips = 1 + Math.floor(random() * 3); flips > 0; flips--) {
      // Headers and entries are at the start of blocks: aim there more often.
      const span = random() < 0.7 ? Math.min(bytes.length, 512) : bytes.length
      const at = Math.floor(random() * span)
      bytes[at] = bytes[at]! ^ (1 << Math.floor(random() * 8))
    }
  } else {
    const from = Math.floor(random() * bytes.length)
    const to = Math.min(bytes.length, from + 1 + Math.floor(random() * 64))
    for (let index = from; index < to; index++) bytes[index] = Math.floor(random() * 256)
  }
}

/**
 * A damaged copy of `store` (the store itself is left alone): one mutation
 * of one target, by seed. `layer` picks raw bytes of the volume ('volume') or
 * engine blocks written through the lz4 device ('logical').
 */
export async function damage(store: FuzzStore, seed: number): Promise<{ backing: MemoryBacking; damage: Damage }> {
  const random = seededRandom(seed)
  const backing = store.backing.clone()
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!
  const zeroedBuckets = new Set<number>()
  const isBucket = (lba: number) => lba >= store.superblock.regionStart && lba < store.superblock.regionStart + bucketCount(store.superblock)
  if (random() < 0.06) {
    const cut = Math.floor((random() * backing.size) / 512) * 512
    backing.size = cut
    return { backing, damage: { description: `truncated to ${cut} bytes`, checked: true, zeroedBuckets } }
  }
  const mutation = pick(MUTATIONS)
  if (store.compression === 'lz4' && random() < 0.55) {
    const target = pick(store.volumeTargets)
    const offset = target.offset + Math.floor((random() * Math.max(1, target.length - 4096)) / 512) * 512
    const length = Math.min(4096, target.length)
    const bytes = Buffer.alloc(length)
    backing.read(offset, bytes, 0, length)
    if (mutation === 'swap' || mutation === 'copy') {
      const other = pick(store.volumeTargets)
      const otherBytes = Buffer.alloc(length)
      backing.read(other.offset, otherBytes, 0, length)
      backing.write(offset, otherBytes, 0, length)
      if (mutation === 'swap') backing.write(other.offset, bytes, 0, length)
      const changed = !otherBytes.equals(bytes)
      return {
        backing,
        damage: { description: `${mutation} ${length} bytes of ${target.structure} @${offset} with ${other.structure} @${other.offset}`, checked: changed && (target.checked || (mutation === 'swap' && other.checked)), zeroedBuckets },
      }
    }
    const before = Buffer.from(bytes)
    mutateBytes(bytes, mutation, random)
    backing.write(offset, bytes, 0, length)
    return { backing, damage: { description: `${mutation} in ${target.structure} @${offset} (+${length})`, checked: target.checked && !before.equals(bytes), zeroedBuckets } }
  }
  const target = pick(store.targets)
  const blocks = new LogicalBlocks(store, backing)
  try {
    const block = await blocks.read(target.lba)
    if (mutation === 'swap' || mutation === 'copy') {
      const other = pick(store.targets)
      const otherBlock = await blocks.read(other.lba)
      await blocks.write(target.lba, otherBlock)
      if (mutation === 'swap') await blocks.write(other.lba, block)
      if (isBucket(target.lba) && otherBlock.every((byte) => byte === 0)) zeroedBuckets.add(target.lba)
      if (mutation === 'swap' && isBucket(other.lba) && block.every((byte) => byte === 0)) zeroedBuckets.add(other.lba)
      const same = otherBlock.equals(block)
      return { backing, damage: { description: `${mutation} ${target.structure} LBA ${target.lba} with ${other.structure} LBA ${other.lba}`, checked: !same && (target.checked || (mutation === 'swap' && other.checked)), zeroedBuckets } }
    }
    const before = Buffer.from(block)
    mutateBytes(block, mutation, random)
    await blocks.write(target.lba, block)
    if (isBucket(target.lba) && block.every((byte) => byte === 0)) zeroedBuckets.add(target.lba)
    return { backing, damage: { description: `${mutation} ${target.structure} LBA ${target.lba}${blocks.logical ? ' (through the lz4 device)' : ''}`, checked: target.checked && !before.equals(block), zeroedBuckets } }
  } finally {
    await blocks.close()
  }
}

/** Reads and writes engine blocks of a damaged copy: raw bytes, or through the lz4 device (then checkpointed). */
class LogicalBlocks {
  private device: CompressedBlockDevice | undefined
  private volume: MemoryVolume | undefined

  constructor(
    private readonly store: FuzzStore,
    private readonly backing: MemoryBacking,
  ) {}

  get logical(): boolean {
    return this.store.compression === 'lz4'
  }

  private async open(): Promise<CompressedBlockDevice> {
    if (this.device === undefined) {
      this.volume = new MemoryVolume({}, this.backing)
      this.device = await CompressedBlockDevice.open(this.volume, SMALL_LZ4)
    }
    return this.device
  }

  async read(lba: number): Promise<Buffer> {
    if (!this.logical) {
      const block = Buffer.alloc(BLOCK_SIZE)
      this.backing.read(lba * BLOCK_SIZE, block, 0, BLOCK_SIZE)
      return block
    }
    const device = await this.open()
    const buffer = device.allocate(1)
    await device.read([{ lba, buffer, bufferOffset: 0 }])
    return Buffer.from(buffer)
  }

  async write(lba: number, block: Buffer): Promise<void> {
    if (!this.logical) {
      this.backing.write(lba * BLOCK_SIZE, block, 0, BLOCK_SIZE)
      return
    }
    const device = await this.open()
    const buffer = device.allocate(1)
    block.copy(buffer)
    await device.write([{ lba, buffer, bufferOffset: 0 }])
  }

  async close(): Promise<void> {
    await this.device?.close()
  }
}

export interface Verdict {
  failure: string | undefined
  opened: boolean
  /** Calls that failed with a tolerated code (the damage was seen). */
  refused: number
  check: CheckReport | undefined
  salvaged: number
}

class Hang extends Error {}

async function settle<T>(what: string, call: () => Promise<T>): Promise<{ value?: T; error?: unknown }> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Hang(`${what} did not settle within ${CALL_TIMEOUT_MS} ms`)), CALL_TIMEOUT_MS)
  })
  try {
    return { value: await Promise.race([call(), timeout]) }
  } catch (error) {
    return { error }
  } finally {
    clearTimeout(timer)
  }
}

/** Judges a damaged copy: opening and reading it, checking and salvaging it. */
export async function judge(store: FuzzStore, backing: MemoryBacking, damage: Damage): Promise<Verdict> {
  const verdict: Verdict = { failure: undefined, opened: false, refused: 0, check: undefined, salvaged: 0 }
  const problems: string[] = []
  const tolerated = (what: string, error: unknown): void => {
    const code = (error as { code?: string }).code
    if (error instanceof Hang || code === undefined || !TOLERATED.has(code)) problems.push(`${what}: ${error instanceof Hang ? '' : `${code ?? 'untyped'} `}${(error as Error)?.message ?? String(error)}`)
    else verdict.refused++
  }
  const hash = newKeyHash()
  const zeroed = (key: string): boolean => {
    if (damage.zeroedBuckets.size === 0) return false
    const bytes = Buffer.from(key)
    const s = store.superblock
    return damage.zeroedBuckets.has(s.regionStart + bucketOf(hashKey(bytes, 0, bytes.length, hash).bucketHash, s.initialBuckets, s.level, s.splitPointer))
  }
  // The check first: an open may repair what it sees, and it must report what reads will see.
  const checked = await settle('checkStore', async () => {
    const volume = new MemoryVolume({ readOnly: true }, backing)
    try {
      return await checkVolume(volume)
    } finally {
      await volume.close()
    }
  })
  if (checked.error !== undefined) problems.push(`checkStore threw: ${(checked.error as Error).message}`)
  verdict.check = checked.value
  const opened = await settle('open', () => openOnVolume(new MemoryVolume({}, backing.clone()), { ...FUZZ_STORE, create: false }, { lz4: SMALL_LZ4 }))
  let db: CubbyDB | undefined = opened.value
  if (opened.error !== undefined) tolerated('open', opened.error)
  if (db !== undefined) {
    verdict.opened = true
    for (const [key, expected] of store.model) {
      const got = await settle(`get ${key}`, () => db!.get(key))
      if (got.error !== undefined) tolerated(`get ${key}`, got.error)
      else if (expected === undefined ? got.value !== undefined : !(got.value?.equals(expected) ?? false)) {
        if (!(got.value === undefined && zeroed(key))) problems.push(`get ${key}: wrong value (${got.value?.length ?? 'none'} bytes, expected ${expected?.length ?? 'none'})`)
      }
      const has = await settle(`has ${key}`, () => db!.has(key))
      if (has.error !== undefined) tolerated(`has ${key}`, has.error)
      else if (has.value !== (expected !== undefined) && !(has.value === false && zeroed(key))) problems.push(`has ${key}: ${has.value}`)
    }
    const listed = await settle('entries', () => contents(db!))
    if (listed.error !== undefined) tolerated('entries', listed.error)
    else {
      for (const [key, value] of listed.value!) {
        if (!(store.model.get(key)?.equals(value) ?? false)) problems.push(`entries() yielded ${key} with a wrong value`)
      }
    }
    const wrote = await settle('put and flush', async () => {
      await db!.put('fuzz-new-key', 'fuzz')
      await db!.flush()
    })
    if (wrote.error !== undefined) tolerated('put and flush', wrote.error)
    const closed = await settle('close', () => db!.close())
    if (closed.error !== undefined) tolerated('close', closed.error)
    db = undefined
  }
  const salvaged = await settle('salvage', async () => {
    const source = new MemoryVolume({ readOnly: true }, backing)
    const target = new MemoryVolume({ size: 0, path: 'salvaged' })
    try {
      const report = await salvageVolume(source, target)
      const copy = await openOnVolume(new MemoryVolume({}, target.backing), { create: false })
      try {
        const pairs = await contents(copy)
        for (const [key, value] of pairs) if (!(store.model.get(key)?.equals(value) ?? false)) problems.push(`salvage copied ${key} with a wrong value`)
        return report.pairs
      } finally {
        await copy.close()
      }
    } finally {
      await source.close()
    }
  })
  if (salvaged.error !== undefined) problems.push(`salvage threw: ${(salvaged.error as Error).message}`)
  verdict.salvaged = salvaged.value ?? 0
  const report = verdict.check
  if (report !== undefined && report.healthy) {
    if (verdict.refused > 0) problems.push(`checkStore said healthy, but ${verdict.refused} calls met the damage`)
    else if (damage.checked) problems.push('checkStore said healthy, but the damage hit a structure it verifies')
    else if (damage.zeroedBuckets.size > 0) problems.push('checkStore said healthy, but a bucket was zeroed')
  }
  if (problems.length > 0) verdict.failure = `${damage.description}: ${problems.slice(0, 4).join('; ')}`
  return verdict
}
