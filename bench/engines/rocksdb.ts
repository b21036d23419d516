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
 * else is the binding's default (ZSTD on levels 2 and up, bloom filters, reads
 * with pread and no read-ahead). Writes pass `sync` through; reads are the
 * async `get`.
 */

import { EngineUnavailable, requirePackage, type EngineConfig } from './adapter'
import { LevelStyleAdapter, type LevelStyleDatabase, type LevelStyleOpening } from './level-style'
import { serveEngine } from '../lib/child'

interface RocksModule {
  RocksLevel: new (location: string, options: Record<string, unknown>) => LevelStyleDatabase
}

const cacheSizeMax = 2 ** 32 - 1

export class RocksDbAdapter extends LevelStyleAdapter {
  protected create(config: EngineConfig): LevelStyleOpening {
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
    return {
      database: new RocksLevel(config.directory, options),
      options,
      notes: [
        'block cache = cacheSize; memtable = write buffer (memtableMemoryBudget = 4 × write buffer, up to 6 memtables)',
        'reads go through the OS page cache (no direct I/O), bounded by the memory cgroup',
      ],
    }
  }
}

if (require.main === module) serveEngine(new RocksDbAdapter())
