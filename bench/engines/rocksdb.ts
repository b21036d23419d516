/**
 * Engine runner: RocksDB through @nxtedition/rocksdb (an abstract-level
 * binding). Run as a child process by the benchmark.
 *
 * Memory budget: `cacheSize` is RocksDB's block cache. The binding has no
 * write_buffer_size option; it sizes memtables through `memtableMemoryBudget`
 * together with `compaction: 'level'` (RocksDB's OptimizeLevelStyleCompaction:
 * each memtable is a quarter of the budget). So the budget is set to 4 × the
 * benchmark's write buffer, making each memtable the benchmark's write-buffer
 * size; RocksDB may keep up to 6 of them while flushes are behind. Everything
 * else is the binding's default (ZSTD on levels 2 and up, bloom filters).
 * Writes pass `sync` through; reads are the async `get`.
 */

import { EngineUnavailable, requirePackage, type EngineAdapter, type EngineConfig, type EngineCounters, type OpenInfo } from './adapter'
import { serveEngine } from '../lib/child'

interface RocksLevelInstance {
  open(): Promise<void>
  put(key: Buffer, value: Buffer, options: { sync: boolean }): Promise<void>
  get(key: Buffer): Promise<Buffer>
  close(): Promise<void>
}

interface RocksModule {
  RocksLevel: new (location: string, options: Record<string, unknown>) => RocksLevelInstance
}

const cacheSizeMax = 2 ** 32 - 1

export class RocksDbAdapter implements EngineAdapter {
  private db: RocksLevelInstance | undefined
  private sync = false

  async open(config: EngineConfig): Promise<OpenInfo> {
    if (config.cacheSizeBytes > cacheSizeMax) {
      throw new EngineUnavailable(`@nxtedition/rocksdb takes cacheSize as a 32-bit count; ${config.cacheSizeBytes} does not fit`)
    }
    const { RocksLevel } = requirePackage<RocksModule>('@nxtedition/rocksdb')
    const options = {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
      cacheSize: config.cacheSizeBytes,
      compaction: 'level',
      memtableMemoryBudget: 4 * config.writeBufferSizeBytes,
    }
    this.db = new RocksLevel(config.directory, options)
    await this.db.open()
    this.sync = config.sync
    return {
      options: { ...options, sync: config.sync },
      notes: [
        'block cache = cacheSize; memtable = write buffer (memtableMemoryBudget = 4 × write buffer, up to 6 memtables)',
        'reads go through the OS page cache (no direct I/O), bounded by the memory cgroup',
      ],
    }
  }

  private store(): RocksLevelInstance {
    if (this.db === undefined) throw new Error('RocksDB is not open')
    return this.db
  }

  put(key: Buffer, value: Buffer): Promise<void> {
    return this.store().put(key, value, { sync: this.sync })
  }

  async get(key: Buffer): Promise<Buffer | undefined> {
    try {
      return await this.store().get(key)
    } catch (error) {
      if ((error as { code?: unknown }).code === 'LEVEL_NOT_FOUND') return undefined
      throw error
    }
  }

  async flush(): Promise<void> {}

  counters(): EngineCounters {
    return {}
  }

  async close(): Promise<void> {
    await this.db?.close()
    this.db = undefined
  }
}

if (require.main === module) serveEngine(new RocksDbAdapter())
