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

import { requirePackage, type EngineConfig } from './adapter'
import { LevelStyleAdapter, type LevelStyleDatabase, type LevelStyleOpening } from './level-style'
import { serveEngine } from '../lib/child'

interface ClassicLevelModule {
  ClassicLevel: new (location: string, options: Record<string, unknown>) => LevelStyleDatabase
}

export class LevelDbAdapter extends LevelStyleAdapter {
  protected create(config: EngineConfig): LevelStyleOpening {
    const { ClassicLevel } = requirePackage<ClassicLevelModule>('classic-level')
    const options = {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
      cacheSize: config.cacheSizeBytes,
      writeBufferSize: config.writeBufferSizeBytes,
    }
    return {
      database: new ClassicLevel(config.directory, options),
      options,
      notes: [
        'block cache = cacheSize; memtable = writeBufferSize',
        'tables are memory-mapped: reads go through the OS page cache, bounded by the memory cgroup, with read-around on each page fault',
      ],
    }
  }
}

if (require.main === module) serveEngine(new LevelDbAdapter())
