/**
 * Engine runner: LMDB through lmdb (lmdb-js). Run as a child process by the
 * benchmark.
 *
 * Memory budget: LMDB has no cache or write buffer of its own; it reads and
 * writes through a memory map, so its "cache" is the OS page cache, which the
 * memory cgroup bounds like every other engine's. Its mapped pages count in
 * its RSS (RssFile), which is why the results show anonymous memory beside
 * RSS. Values and keys are stored as raw bytes (`encoding: 'binary'`), with
 * lmdb-js's own compression off. lmdb-js batches the writes issued together
 * into one transaction; `noSync` is set when the benchmark does not ask for
 * durable writes. `noReadAhead` is set as LMDB's documentation advises for
 * random reads when the store is larger than memory, which is the case this
 * benchmark is about. `get` is synchronous (lmdb-js's normal read path).
 */

import { join } from 'node:path'
import { requirePackage, type EngineAdapter, type EngineConfig, type EngineCounters, type OpenInfo } from './adapter'
import { serveEngine } from '../lib/child'

interface LmdbDatabase {
  put(key: Buffer, value: Buffer): Promise<boolean>
  get(key: Buffer): Buffer | undefined
  flushed: Promise<boolean>
  close(): Promise<void>
}

interface LmdbModule {
  open(options: Record<string, unknown>): LmdbDatabase
}

export class LmdbAdapter implements EngineAdapter {
  private db: LmdbDatabase | undefined

  async open(config: EngineConfig): Promise<OpenInfo> {
    const lmdb = requirePackage<LmdbModule>('lmdb')
    const options = {
      path: join(config.directory, 'store.mdb'),
      encoding: 'binary',
      keyEncoding: 'binary',
      compression: false,
      noSync: !config.sync,
      noReadAhead: true,
    }
    this.db = lmdb.open(options)
    return {
      options,
      notes: [
        'no cache or write-buffer settings: LMDB serves reads from its memory map (the OS page cache, bounded by the memory cgroup)',
        'get is synchronous, so reads do not overlap with each other',
        'noReadAhead (MDB_NORDAHEAD), which LMDB recommends for random reads of a store larger than memory: otherwise each page fault reads 128 KiB around it',
      ],
    }
  }

  private store(): LmdbDatabase {
    if (this.db === undefined) throw new Error('LMDB is not open')
    return this.db
  }

  put(key: Buffer, value: Buffer): Promise<boolean> {
    return this.store().put(key, value)
  }

  get(key: Buffer): Buffer | undefined {
    return this.store().get(key)
  }

  async flush(): Promise<void> {
    await this.store().flushed
  }

  counters(): EngineCounters {
    return {}
  }

  async close(): Promise<void> {
    await this.db?.close()
    this.db = undefined
  }
}

if (require.main === module) serveEngine(new LmdbAdapter())
