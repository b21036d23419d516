/**
 * The public API: `open()`, `plan()` and the CubbyDB handle (docs/api.md).
 *
 * Every call is checked here in named stages before the engine is touched
 * (after better-sqlite3's lib/database.js): the handle's state, then each
 * argument, then the encoding of keys and values into owned bytes. A call
 * rejected at any stage changes nothing; a batch with one bad operation
 * applies none. Misuse rejects with CUBBY_INVALID_KEY / _VALUE / _ARGUMENT,
 * use after close() with CUBBY_CLOSED; errors from below (I/O, corruption)
 * pass through with their own codes.
 *
 * Opening decides what the target holds (src/device/open.ts, then the
 * engine's superblock probe) and never overwrites other people's data: a
 * missing or empty target is created; anything else that is not a store is
 * CUBBY_NOT_A_STORE unless `overwrite: true`.
 *
 * Reads issued in the same tick reach the device as one batch (the engine's
 * reader collects them until a microtask runs); getMany() issues all its keys
 * at once for that reason.
 */

import * as fs from 'node:fs'
import { CubbyError, ErrorCode, closedError, invalidArgument } from './errors'
import { type CreateDeviceOptions, createDevice, openDevice, openFileVolume, probeVolume, type CompressionMode } from './device'
import { BLOCK_SIZE, type BlockDevice, type Volume } from './device/types'
import { Engine, type EngineStats, type WriteInput, probeStore } from './engine/engine'
import { MAX_KEY_BYTES, MAX_VALUE_BYTES } from './engine/format'
import { minimumStoreBlocks } from './engine/layout'
import { type Plan, planStore } from './engine/sizing'
import { type MetricsOptions, renderMetrics, validateMetricsOptions } from './metrics/collect'
import { OP } from './metrics/operations'

/** The LZ4 block map's cache when cacheSize is smaller: 256 pages, the map of 260K buckets. */
export const MIN_MAP_CACHE_BYTES = 1024 * 1024

/**
 * Compression of a new store when the `compression` option is not given:
 * the LZ4 software layer, which makes the empty space of buckets free on
 * drives that do not compress in hardware. 'none' is for drives that do.
 */
export const DEFAULT_COMPRESSION: CompressionMode = 'lz4'

/** The default of every option of open() that has one (docs/api.md, the options table). */
export const DEFAULTS = {
  sync: true,
  cacheSize: 64 * 1024 * 1024,
  writeBufferSize: 32 * 1024 * 1024,
  readOnly: false,
  create: true,
  overwrite: false,
  expectedKeys: 100_000,
  keySize: 24,
  valueSize: 100,
} as const

/** Smallest write buffer: room for the largest record (a 1 KiB key with a 2 KiB inline value) many times over. */
const MIN_WRITE_BUFFER_BYTES = 1024 * 1024
/** A new image file gets room for this many times its expected keys unless `size` says otherwise. */
const DEFAULT_GROWTH_ROOM = 64
const MIN_DEFAULT_SIZE_BYTES = 4 * 1024 * 1024 * 1024
const MAX_DEFAULT_SIZE_BYTES = 16 * 1024 ** 4

/** A key: a string (its UTF-8 bytes) or bytes, 1 to 1024 of them. A string and a byte array with the same bytes name the same key. */
export type Key = string | Uint8Array
/** A value: a string (its UTF-8 bytes) or bytes, 0 to 64 MiB. Values come back as Buffers. */
export type Value = string | Uint8Array

/** Options of open(); unknown names are refused with CUBBY_INVALID_ARGUMENT. */
export interface OpenOptions {
  /** Default for writes: resolve only once durable (default true). */
  sync?: boolean
  /**
   * Bytes of cache (default 64 MiB), one budget for everything cached that grows with the store: the LZ4 block map's pages
   * first (4 bytes per block in use, ~1 MiB per 3M small keys; each page spares a device read for 1016 buckets), bucket
   * blocks in the rest. 0 disables the bucket cache; the map then still keeps up to 1 MiB.
   */
  cacheSize?: number
  /** Bytes of write buffers, active and flushing together (default 32 MiB). */
  writeBufferSize?: number
  /** Open for reading only (default false). */
  readOnly?: boolean
  /** Create the store if the target is missing or empty (default true). */
  create?: boolean
  /** Format a target that holds something other than a store (default false). */
  overwrite?: boolean
  /** How a new store keeps its blocks (default DEFAULT_COMPRESSION). */
  compression?: CompressionMode
  /** Sizing hint for a new store: keys it will hold (default 100,000; it grows past this). */
  expectedKeys?: number
  /** Sizing hint for a new store: typical key bytes (default 24). */
  keySize?: number
  /** Sizing hint for a new store: typical value bytes (default 100). */
  valueSize?: number
  /** Logical bytes of a new image file (default: room for 64× expectedKeys, at least 4 GiB; sparse). */
  size?: number
}

/** Options of put(), del() and batch(). */
export interface WriteOptions {
  /** Resolve only once durable (default: the store's `sync` option). */
  sync?: boolean
}

/** One operation of batch(): a put of `value` under `key`, or a delete of `key`. */
export type BatchOperation = { type: 'put'; key: Key; value: Value } | { type: 'del'; key: Key }

/** What plan() sizes for. */
export interface PlanOptions {
  /** Keys the store is to hold (1 to 2^40). */
  keys: number
  /** Typical key size in bytes (default 24). */
  keySize?: number
  /** Typical value size in bytes (default 100). */
  valueSize?: number
}

/** A snapshot of a store's state and counters: stats() (docs/api.md has every field). */
export type Stats = EngineStats

interface Settings {
  sync: boolean
  cacheSize: number
  writeBufferSize: number
  readOnly: boolean
  create: boolean
  overwrite: boolean
  compression: CompressionMode
  expectedKeys: number
  keySize: number
  valueSize: number
  size: number | undefined
}

const OPTION_NAMES = new Set([
  'sync',
  'cacheSize',
  'writeBufferSize',
  'readOnly',
  'create',
  'overwrite',
  'compression',
  'expectedKeys',
  'keySize',
  'valueSize',
  'size',
])

// ---------------------------------------------------------------------------
// Argument stages

function checkOptionsObject(options: unknown, what: string): Record<string, unknown> {
  if (options === undefined) return {}
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw invalidArgument(`${what} must be an object`)
  return options as Record<string, unknown>
}

function booleanOption(options: Record<string, unknown>, name: string, fallback: boolean): boolean {
  const value = options[name]
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw invalidArgument(`option ${name} must be a boolean, not ${describe(value)}`)
  return value
}

function integerOption(options: Record<string, unknown>, name: string, fallback: number, minimum: number, maximum = Number.MAX_SAFE_INTEGER): number {
  const value = options[name]
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < minimum || value > maximum) {
    throw invalidArgument(`option ${name} must be an integer from ${minimum} to ${maximum}, not ${describe(value)}`)
  }
  return value
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value)
  return typeof value
}

/** Stage 1 of open(): the options, each checked and defaulted. */
function validateOpenOptions(raw: unknown): Settings {
  const options = checkOptionsObject(raw, 'the options')
  for (const name of Object.keys(options)) if (!OPTION_NAMES.has(name)) throw invalidArgument(`unknown option ${JSON.stringify(name)}`)
  const compression = options.compression ?? DEFAULT_COMPRESSION
  if (compression !== 'lz4' && compression !== 'none') throw invalidArgument(`option compression must be 'lz4' or 'none', not ${describe(compression)}`)
  const size = options.size === undefined ? undefined : integerOption(options, 'size', 0, BLOCK_SIZE)
  return {
    sync: booleanOption(options, 'sync', DEFAULTS.sync),
    cacheSize: integerOption(options, 'cacheSize', DEFAULTS.cacheSize, 0),
    writeBufferSize: integerOption(options, 'writeBufferSize', DEFAULTS.writeBufferSize, MIN_WRITE_BUFFER_BYTES),
    readOnly: booleanOption(options, 'readOnly', DEFAULTS.readOnly),
    create: booleanOption(options, 'create', DEFAULTS.create),
    overwrite: booleanOption(options, 'overwrite', DEFAULTS.overwrite),
    compression,
    expectedKeys: integerOption(options, 'expectedKeys', DEFAULTS.expectedKeys, 1, 2 ** 40),
    keySize: integerOption(options, 'keySize', DEFAULTS.keySize, 1, MAX_KEY_BYTES),
    valueSize: integerOption(options, 'valueSize', DEFAULTS.valueSize, 0, MAX_VALUE_BYTES),
    size,
  }
}

function validatePlanOptions(raw: unknown): Required<PlanOptions> {
  const options = checkOptionsObject(raw, 'plan() options')
  for (const name of Object.keys(options)) if (name !== 'keys' && name !== 'keySize' && name !== 'valueSize') throw invalidArgument(`unknown plan() option ${JSON.stringify(name)}`)
  if (options.keys === undefined) throw invalidArgument('plan() needs keys')
  return {
    keys: integerOption(options, 'keys', 0, 1, 2 ** 40),
    keySize: integerOption(options, 'keySize', DEFAULTS.keySize, 1, MAX_KEY_BYTES),
    valueSize: integerOption(options, 'valueSize', DEFAULTS.valueSize, 0, MAX_VALUE_BYTES),
  }
}

function validateWriteOptions(raw: unknown, fallback: boolean): boolean {
  const options = checkOptionsObject(raw, 'write options')
  for (const name of Object.keys(options)) if (name !== 'sync') throw invalidArgument(`unknown write option ${JSON.stringify(name)}`)
  return booleanOption(options, 'sync', fallback)
}

/** Stage 2 of every keyed call: the key as owned UTF-8 / raw bytes, 1..1024 of them. */
function encodeKey(key: unknown): Buffer {
  if (typeof key === 'string') {
    const length = Buffer.byteLength(key, 'utf8')
    if (length === 0 || length > MAX_KEY_BYTES) throw new CubbyError(ErrorCode.INVALID_KEY, `a key must be 1 to ${MAX_KEY_BYTES} bytes, not ${length}`)
    return Buffer.from(key, 'utf8')
  }
  if (key instanceof Uint8Array) {
    if (key.length === 0 || key.length > MAX_KEY_BYTES) throw new CubbyError(ErrorCode.INVALID_KEY, `a key must be 1 to ${MAX_KEY_BYTES} bytes, not ${key.length}`)
    return Buffer.from(key)
  }
  throw new CubbyError(ErrorCode.INVALID_KEY, `a key must be a string or a Uint8Array, not ${describe(key)}`)
}

/** Stage 2 of puts: the value as owned bytes, at most 64 MiB. */
function encodeValue(value: unknown): Buffer {
  if (typeof value === 'string') {
    const length = Buffer.byteLength(value, 'utf8')
    if (length > MAX_VALUE_BYTES) throw new CubbyError(ErrorCode.INVALID_VALUE, `a value must be at most ${MAX_VALUE_BYTES} bytes, not ${length}`)
    return Buffer.from(value, 'utf8')
  }
  if (value instanceof Uint8Array) {
    if (value.length > MAX_VALUE_BYTES) throw new CubbyError(ErrorCode.INVALID_VALUE, `a value must be at most ${MAX_VALUE_BYTES} bytes, not ${value.length}`)
    return Buffer.from(value)
  }
  throw new CubbyError(ErrorCode.INVALID_VALUE, `a value must be a string or a Uint8Array, not ${describe(value)}`)
}

function encodeBatch(operations: unknown): WriteInput[] {
  if (!Array.isArray(operations)) throw invalidArgument('batch() takes an array of operations')
  return operations.map((operation: unknown, index) => {
    if (operation === null || typeof operation !== 'object') throw invalidArgument(`batch operation ${index} must be an object`)
    const { type, key, value } = operation as { type?: unknown; key?: unknown; value?: unknown }
    try {
      if (type === 'put') return { key: encodeKey(key), value: encodeValue(value) }
      if (type === 'del') return { key: encodeKey(key), value: undefined }
    } catch (error) {
      if (error instanceof CubbyError) throw new CubbyError(error.code, `batch operation ${index}: ${error.message}`)
      throw error
    }
    throw invalidArgument(`batch operation ${index} has type ${describe(type)}; it must be 'put' or 'del'`)
  })
}

// ---------------------------------------------------------------------------
// The handle

type HandleStatus = 'open' | 'closing' | 'closed'

/**
 * An open store (made by open()): get, getMany, has, put, del, batch,
 * iteration, flush, stats, metrics and close. Every method rejects with
 * CUBBY_CLOSED once close() has been called.
 */
export class CubbyDB implements AsyncDisposable {
  private status: HandleStatus = 'open'
  private closing: Promise<void> | undefined

  /** Made by open() and openOnVolume(); not for use by callers. @internal */
  constructor(
    /** The path (or volume name) the store was opened from. */
    readonly path: string,
    private readonly engine: Engine,
    private readonly settings: Settings,
  ) {}

  /** Whether the handle is open (false once close() is called). */
  get isOpen(): boolean {
    return this.status === 'open'
  }

  /** Whether the store was opened with `readOnly: true`. */
  get readOnly(): boolean {
    return this.settings.readOnly
  }

  /** The value of `key`, or undefined when it is not in the store. */
  get(key: Key): Promise<Buffer | undefined> {
    const started = performance.now()
    try {
      this.checkOpen()
      return this.engine.get(encodeKey(key), started)
    } catch (error) {
      return this.engine.meter.refuse(OP.get, started, error)
    }
  }

  /** The values of `keys`, in order (undefined where missing). All reads go to the device as one batch. */
  getMany(keys: readonly Key[]): Promise<Array<Buffer | undefined>> {
    const started = performance.now()
    try {
      this.checkOpen()
      if (!Array.isArray(keys)) throw invalidArgument('getMany() takes an array of keys')
      const encoded = keys.map((key) => encodeKey(key))
      return this.engine.meter.track(OP.getMany, started, Promise.all(encoded.map((bytes) => this.engine.get(bytes))))
    } catch (error) {
      return this.engine.meter.refuse(OP.getMany, started, error)
    }
  }

  /** Whether `key` is in the store (never reads a large value). */
  has(key: Key): Promise<boolean> {
    const started = performance.now()
    try {
      this.checkOpen()
      return this.engine.has(encodeKey(key), started)
    } catch (error) {
      return this.engine.meter.refuse(OP.has, started, error)
    }
  }

  /** Sets `key` to `value`; resolves once durable (with `sync`, the default) or handed to the device. */
  put(key: Key, value: Value, options?: WriteOptions): Promise<void> {
    const started = performance.now()
    try {
      this.checkWritable()
      const sync = validateWriteOptions(options, this.settings.sync)
      return this.engine.write([{ key: encodeKey(key), value: encodeValue(value) }], sync, OP.put, started)
    } catch (error) {
      return this.engine.meter.refuse(OP.put, started, error)
    }
  }

  /** Deletes `key` (a missing key is not an error); durability as for put(). */
  del(key: Key, options?: WriteOptions): Promise<void> {
    const started = performance.now()
    try {
      this.checkWritable()
      const sync = validateWriteOptions(options, this.settings.sync)
      return this.engine.write([{ key: encodeKey(key), value: undefined }], sync, OP.del, started)
    } catch (error) {
      return this.engine.meter.refuse(OP.del, started, error)
    }
  }

  /** Applies every operation, or (after any crash, or on a rejected argument) none. */
  batch(operations: readonly BatchOperation[], options?: WriteOptions): Promise<void> {
    const started = performance.now()
    try {
      this.checkWritable()
      const sync = validateWriteOptions(options, this.settings.sync)
      const inputs = encodeBatch(operations)
      if (inputs.length > 0) return this.engine.write(inputs, sync, OP.batch, started)
      this.engine.meter.settle(OP.batch, started, 0)
      return Promise.resolve()
    } catch (error) {
      return this.engine.meter.refuse(OP.batch, started, error)
    }
  }

  /** Every [key, value] pair exactly once, in no particular order. */
  entries(): AsyncIterableIterator<[Buffer, Buffer]> {
    return this.iterate((key, value) => [key, value])
  }

  /** Every key exactly once, in no particular order. */
  keys(): AsyncIterableIterator<Buffer> {
    return this.iterate((key) => key)
  }

  /** Every value once, in no particular order. */
  values(): AsyncIterableIterator<Buffer> {
    return this.iterate((_key, value) => value)
  }

  /** Same as entries(): `for await (const [key, value] of db)`. */
  [Symbol.asyncIterator](): AsyncIterableIterator<[Buffer, Buffer]> {
    return this.entries()
  }

  /** Applies every write made before the call to its bucket and checkpoints the log (durability does not need it). */
  async flush(): Promise<void> {
    this.checkOpen()
    await this.engine.flush()
  }

  /** A snapshot of the store's state, counters and memory by part (throws CUBBY_CLOSED once closed). */
  stats(): Stats {
    this.checkOpen()
    return this.engine.stats()
  }

  /**
   * The store's metrics as an OpenMetrics text exposition (or Prometheus text
   * 0.0.4 with `format: 'prometheus'`), for a `/metrics` endpoint: operations
   * by kind and result, latency histograms, device I/O, memory by part,
   * compression, cleaning, group commit, flushes and write stalls.
   */
  metrics(options?: MetricsOptions): string {
    this.checkOpen()
    const settings = validateMetricsOptions(options)
    const engine = this.engine
    return renderMetrics({ stats: engine.stats(), device: engine.deviceStats(), groupCommitSizes: engine.groupCommitSizes, operations: engine.meter }, settings)
  }

  /** Settles every pending call, flushes, and closes. Idempotent. */
  close(): Promise<void> {
    if (this.closing === undefined) {
      this.status = 'closing'
      this.closing = this.engine.close().finally(() => {
        this.status = 'closed'
      })
    }
    return this.closing
  }

  /** Same as close(): `await using db = await open(path)` closes the store at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  private iterate<T>(pick: (key: Buffer, value: Buffer) => T): AsyncIterableIterator<T> {
    const engine = this.engine
    const handle = this
    async function* generate(): AsyncGenerator<T> {
      handle.checkOpen()
      for await (const [key, value] of engine.entries()) {
        handle.checkOpen()
        yield pick(key, value)
      }
    }
    return generate()
  }

  private checkOpen(): void {
    if (this.status !== 'open') throw closedError()
  }

  private checkWritable(): void {
    this.checkOpen()
    if (this.settings.readOnly) throw new CubbyError(ErrorCode.READ_ONLY, 'the store is open read-only')
  }
}

// ---------------------------------------------------------------------------
// Opening

/** The sizing model's answer: buckets, logical and physical bytes, overflow. */
export function plan(options: PlanOptions): Plan {
  const checked = validatePlanOptions(options)
  return planStore(checked)
}

/** Logical bytes a new image file gets when `size` is not given: room for 64× the planned keys, at least 4 GiB, at most 16 TiB. */
export function defaultImageBytes(storePlan: Plan): number {
  return Math.min(MAX_DEFAULT_SIZE_BYTES, Math.max(MIN_DEFAULT_SIZE_BYTES, DEFAULT_GROWTH_ROOM * storePlan.logicalBytes))
}

/** Logical blocks of a new store on `volume`. */
function newStoreBlocks(volume: Volume, settings: Settings, storePlan: Plan): number {
  if (!volume.growable) return Math.floor(volume.size / BLOCK_SIZE)
  const bytes = settings.size ?? defaultImageBytes(storePlan)
  const blocks = Math.floor(bytes / BLOCK_SIZE)
  if (blocks < minimumStoreBlocks(storePlan.buckets)) {
    throw invalidArgument(`option size ${bytes} is too small for ${storePlan.buckets} buckets: at least ${minimumStoreBlocks(storePlan.buckets) * BLOCK_SIZE} bytes`)
  }
  return blocks
}

/**
 * Opens (or creates) the store at `path`: an image file, or a block device
 * such as /dev/nvme0n1.
 */
export async function open(path: string, options?: OpenOptions): Promise<CubbyDB> {
  if (typeof path !== 'string' || path.length === 0) throw invalidArgument('open() needs a path: an image file or a block device')
  const settings = validateOpenOptions(options)
  const exists = fs.existsSync(path)
  if (!exists && (!settings.create || settings.readOnly)) {
    throw new CubbyError(ErrorCode.NOT_A_STORE, `${path} does not exist${settings.readOnly ? ' (read-only opens never create)' : ''}`, { path })
  }
  const volume = await openFileVolume(path, { readOnly: settings.readOnly, create: settings.create && !settings.readOnly })
  return openOnVolume(volume, options, { fresh: !exists || volume.size === 0 })
}

export interface VolumeOpenContext {
  /** The volume was created for this open or has zero length: nothing on it needs trimming. */
  fresh?: boolean
  /** Tuning of the lz4 device (small segments and checkpoint intervals make tests reach cleaning quickly). */
  lz4?: CreateDeviceOptions['lz4']
}

/**
 * Opens (or creates) a store on an already open Volume: the seam for tests
 * (MemoryVolume, FaultyVolume) and tools. The volume is closed when the
 * store closes, or when opening fails.
 */
export async function openOnVolume(volume: Volume, options?: OpenOptions, context: VolumeOpenContext = {}): Promise<CubbyDB> {
  let device: BlockDevice | undefined
  try {
    const settings = validateOpenOptions(options)
    const engineSettings = { readOnly: settings.readOnly, cacheSize: settings.cacheSize, writeBufferSize: settings.writeBufferSize }
    const storePlan = planStore({ keys: settings.expectedKeys, keySize: settings.keySize, valueSize: settings.valueSize })
    const mayCreate = settings.create && !settings.readOnly
    // The map's cache is inside cacheSize (the bucket cache yields to it), with a floor so cacheSize 0 still reads once per GET on stores up to ~3M keys.
    const lz4 = { mapCacheBytes: Math.max(settings.cacheSize, MIN_MAP_CACHE_BYTES), ...context.lz4 }
    const content = await probeVolume(volume)
    let engine: Engine
    if (content === 'empty') {
      if (!mayCreate) throw new CubbyError(ErrorCode.NOT_A_STORE, `${volume.path} is empty: no store to open`, { path: volume.path })
      device = await createDevice(volume, { compression: settings.compression, blocks: newStoreBlocks(volume, settings, storePlan), lz4 })
      engine = await Engine.create(device, engineSettings, storePlan, settings.compression === 'none' && context.fresh !== true)
    } else {
      device = await openDevice(volume, content, { lz4 })
      const probe = await probeStore(device)
      if (probe.kind === 'store') {
        engine = await Engine.open(device, engineSettings)
      } else if (content === 'lz4' && probe.kind === 'empty' && mayCreate) {
        // Our own compressed device, created by an open that did not get as far as the superblocks.
        engine = await Engine.create(device, engineSettings, storePlan, false)
      } else if (settings.overwrite && mayCreate) {
        device = await createDevice(volume, { compression: settings.compression, blocks: newStoreBlocks(volume, settings, storePlan), lz4 })
        engine = await Engine.create(device, engineSettings, storePlan, settings.compression === 'none')
      } else {
        throw new CubbyError(
          ErrorCode.NOT_A_STORE,
          `${volume.path} holds data that is not a CubbyDB store; it was left untouched (open with overwrite: true to format it)`,
          { path: volume.path },
        )
      }
    }
    return new CubbyDB(volume.path, engine, settings)
  } catch (error) {
    if (device !== undefined) await device.close().catch(() => undefined)
    else await volume.close().catch(() => undefined)
    throw error
  }
}
