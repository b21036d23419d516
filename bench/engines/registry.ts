/**
 * The engines the benchmark knows: for each, its label and the runner script
 * (compiled next to this file) that the parent starts as a child process.
 */

export type EngineId = 'cubbydb-lz4' | 'cubbydb-none' | 'rocksdb' | 'lmdb' | 'leveldb'

export interface EngineEntry {
  id: EngineId
  label: string
  /** Runner script, relative to this directory once compiled. */
  script: string
  arguments: string[]
  /** Whether the engine keeps its whole store in one file or device (storePath). */
  singleFileStore: boolean
  /** npm package whose version the results record. */
  packageName: string
}

export const ENGINES: Readonly<Record<EngineId, EngineEntry>> = {
  'cubbydb-lz4': { id: 'cubbydb-lz4', label: 'CubbyDB lz4', script: 'cubbydb.js', arguments: ['lz4'], singleFileStore: true, packageName: 'cubbydb' },
  'cubbydb-none': { id: 'cubbydb-none', label: 'CubbyDB none', script: 'cubbydb.js', arguments: ['none'], singleFileStore: true, packageName: 'cubbydb' },
  rocksdb: { id: 'rocksdb', label: 'RocksDB', script: 'rocksdb.js', arguments: [], singleFileStore: false, packageName: '@nxtedition/rocksdb' },
  lmdb: { id: 'lmdb', label: 'LMDB', script: 'lmdb.js', arguments: [], singleFileStore: false, packageName: 'lmdb' },
  leveldb: { id: 'leveldb', label: 'LevelDB', script: 'leveldb.js', arguments: [], singleFileStore: false, packageName: 'classic-level' },
}

export const ENGINE_ORDER: readonly EngineId[] = ['cubbydb-lz4', 'cubbydb-none', 'rocksdb', 'lmdb', 'leveldb']

export function isEngineId(text: string): text is EngineId {
  return Object.prototype.hasOwnProperty.call(ENGINES, text)
}

export function isCubbyDb(id: EngineId): boolean {
  return id === 'cubbydb-lz4' || id === 'cubbydb-none'
}
