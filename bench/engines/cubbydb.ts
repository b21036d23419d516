/**
 * Engine runner: CubbyDB, through its public API only. Run as a child process
 * by the benchmark, with the compression mode as its argument: `lz4` or `none`.
 *
 * The adapter loads the package the way a user would, `require('cubbydb')`
 * (the package root, i.e. the compiled dist/index.js), and calls the API that
 * issue 3 fixes: `open(path, options)`, then `put`, `get`, `flush`, `stats`,
 * `close`. It declares the part of that API it relies on (below) rather than
 * importing engine types, so it compiles whether or not the engine is in the
 * tree; when the package does not export `open`, the engine is reported as
 * "cubbydb engine not built in this tree — skipped" and nothing runs.
 *
 * Options passed to open: `expectedKeys` and `valueSize` (sizing hints),
 * `cacheSize` and `writeBufferSize` (the benchmark's memory budget),
 * `compression`, `sync`. The store is an image file in the engine's directory,
 * or the /dev device the user agreed to destroy (the parent zeroes its first
 * MiB first, so `open` formats it). Device reads come from
 * `stats().device.reads`; memory parts from `stats().memory`.
 */

import { EngineUnavailable, type EngineAdapter, type EngineConfig, type EngineCounters, type OpenInfo } from './adapter'
import { serveEngine } from '../lib/child'

export type CubbyCompression = 'lz4' | 'none'

interface CubbyOpenOptions {
  create: boolean
  expectedKeys: number
  valueSize: number
  cacheSize: number
  writeBufferSize: number
  compression: CubbyCompression
  sync: boolean
}

interface CubbyStats {
  keys: number
  memory: { total: number } & Record<string, number>
  device: { reads: number; writes: number; bytesRead: number; bytesWritten: number; logicalBytes: number; physicalBytes: number }
}

interface CubbyStore {
  put(key: Uint8Array, value: Uint8Array): Promise<void>
  get(key: Uint8Array): Promise<Buffer | undefined>
  flush(): Promise<void>
  stats(): CubbyStats
  close(): Promise<void>
}

interface CubbyModule {
  open(path: string, options: CubbyOpenOptions): Promise<CubbyStore>
}

export const CUBBYDB_NOT_BUILT = 'cubbydb engine not built in this tree'

/** Load the package root; EngineUnavailable when the engine is not there. */
export function loadCubbyModule(): CubbyModule {
  let loaded: unknown
  try {
    loaded = require('cubbydb')
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error)
    throw new EngineUnavailable(`${CUBBYDB_NOT_BUILT}: the package does not load (${message}); run npm run build`)
  }
  if (typeof (loaded as Partial<CubbyModule>).open !== 'function') {
    throw new EngineUnavailable(`${CUBBYDB_NOT_BUILT}: the package exports no open()`)
  }
  return loaded as CubbyModule
}

function flattenNumbers(record: Record<string, unknown>, prefix = ''): Record<string, number> {
  const flat: Record<string, number> = {}
  for (const [name, value] of Object.entries(record)) {
    if (typeof value === 'number') flat[prefix + name] = value
    else if (value !== null && typeof value === 'object') Object.assign(flat, flattenNumbers(value as Record<string, unknown>, `${prefix}${name}.`))
  }
  return flat
}

export class CubbyDbAdapter implements EngineAdapter {
  private readonly compression: CubbyCompression
  private db: CubbyStore | undefined

  constructor(compression: CubbyCompression) {
    this.compression = compression
  }

  async open(config: EngineConfig): Promise<OpenInfo> {
    const cubby = loadCubbyModule()
    const options: CubbyOpenOptions = {
      create: true,
      expectedKeys: config.expectedKeys,
      valueSize: config.valueSize,
      cacheSize: config.cacheSizeBytes,
      writeBufferSize: config.writeBufferSizeBytes,
      compression: this.compression,
      sync: config.sync,
    }
    this.db = await cubby.open(config.storePath, options)
    return {
      options: { path: config.storePath, ...options },
      notes: ['bucket cache = cacheSize; write buffer = writeBufferSize', 'direct I/O: reads bypass the OS page cache'],
    }
  }

  private store(): CubbyStore {
    if (this.db === undefined) throw new Error('CubbyDB is not open')
    return this.db
  }

  put(key: Buffer, value: Buffer): Promise<void> {
    return this.store().put(key, value)
  }

  get(key: Buffer): Promise<Buffer | undefined> {
    return this.store().get(key)
  }

  flush(): Promise<void> {
    return this.store().flush()
  }

  counters(): EngineCounters {
    if (this.db === undefined) return {}
    const stats = this.db.stats()
    return {
      deviceReads: stats.device.reads,
      memory: flattenNumbers(stats.memory),
      logicalBytes: stats.device.logicalBytes,
      physicalBytes: stats.device.physicalBytes,
      keys: stats.keys,
    }
  }

  async close(): Promise<void> {
    await this.db?.close()
    this.db = undefined
  }
}

function compressionFromArguments(argument: string | undefined): CubbyCompression {
  if (argument === 'lz4' || argument === 'none') return argument
  throw new Error(`the CubbyDB runner takes its compression mode as its argument (lz4 or none), got ${argument}`)
}

if (require.main === module) serveEngine(new CubbyDbAdapter(compressionFromArguments(process.argv[2])))
