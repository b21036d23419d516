/**
 * Engine runner: LevelDB through classic-level. Run as a child process by the
 * benchmark.
 *
 * Memory budget: `cacheSize` (LevelDB's block cache) and `writeBufferSize`
 * (its memtable) are set to the benchmark's. Snappy compression stays on, as
 * by default. Writes pass `sync` through; reads are the async `get`.
 *
 * LevelDB memory-maps its table files (on 64-bit Linux, up to 1000 of them)
 * and has no option to read them otherwise, so when its data does not fit in
 * memory each page fault reads around the missing page (the device's
 * read-ahead, 128 KiB by default): that is LevelDB as users get it.
 */

import { requirePackage, type EngineAdapter, type EngineConfig, type EngineCounters, type OpenInfo } from './adapter'
import { serveEngine } from '../lib/child'

interface ClassicLevelInstance {
  open(): Promise<void>
  put(key: Buffer, value: Buffer, options: { sync: boolean }): Promise<void>
  get(key: Buffer): Promise<Buffer | undefined>
  close(): Promise<void>
}

interface ClassicLevelModule {
  ClassicLevel: new (location: string, options: Record<string, unknown>) => ClassicLevelInstance
}

export class LevelDbAdapter implements EngineAdapter {
  private db: ClassicLevelInstance | undefined
  private sync = false

  async open(config: EngineConfig): Promise<OpenInfo> {
    const { ClassicLevel } = requirePackage<ClassicLevelModule>('classic-level')
    const options = {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
      cacheSize: config.cacheSizeBytes,
      writeBufferSize: config.writeBufferSizeBytes,
    }
    this.db = new ClassicLevel(config.directory, options)
    await this.db.open()
    this.sync = config.sync
    return {
      options: { ...options, sync: config.sync },
      notes: [
        'block cache = cacheSize; memtable = writeBufferSize',
        'tables are memory-mapped: reads go through the OS page cache, bounded by the memory cgroup, with read-around on each page fault',
      ],
    }
  }

  private store(): ClassicLevelInstance {
    if (this.db === undefined) throw new Error('LevelDB is not open')
    return this.db
  }

  put(key: Buffer, value: Buffer): Promise<void> {
    return this.store().put(key, value, { sync: this.sync })
  }

  get(key: Buffer): Promise<Buffer | undefined> {
    return this.store().get(key)
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

if (require.main === module) serveEngine(new LevelDbAdapter())
