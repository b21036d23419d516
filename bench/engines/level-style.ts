/**
 * What the two abstract-level engines (RocksDB through @nxtedition/rocksdb,
 * LevelDB through classic-level) have in common: Buffer keys and values,
 * `put(key, value, { sync })`, an async `get` that either answers undefined
 * or throws LEVEL_NOT_FOUND for a missing key, and no flush of their own
 * (their write-ahead logs hold what the memtables do).
 */

import type { EngineAdapter, EngineConfig, EngineCounters, OpenInfo } from './adapter'

export interface LevelStyleDatabase {
  open(): Promise<void>
  put(key: Buffer, value: Buffer, options: { sync: boolean }): Promise<void>
  get(key: Buffer): Promise<Buffer | undefined>
  close(): Promise<void>
}

export interface LevelStyleOpening {
  database: LevelStyleDatabase
  options: Record<string, unknown>
  notes: string[]
}

export abstract class LevelStyleAdapter implements EngineAdapter {
  private db: LevelStyleDatabase | undefined
  private sync = false

  /** Construct (not yet open) the engine's database for `config`. */
  protected abstract create(config: EngineConfig): LevelStyleOpening

  async open(config: EngineConfig): Promise<OpenInfo> {
    const opening = this.create(config)
    await opening.database.open()
    this.db = opening.database
    this.sync = config.sync
    return { options: { ...opening.options, sync: config.sync }, notes: opening.notes }
  }

  private store(): LevelStyleDatabase {
    if (this.db === undefined) throw new Error('the database is not open')
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
