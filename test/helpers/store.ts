// Helpers shared by the engine and API tests: stores on memory volumes
// (fresh, reopened, or behind a fault injector), a seeded random source,
// and small assertions about error codes.
import type { ExecutionContext } from 'ava'
import { openOnVolume, type CubbyDB, type OpenOptions } from '../../src/db'
import { FaultyVolume, MemoryBacking, MemoryVolume, seededRandom } from '../../src/device'
import type { CubbyErrorCode } from '../../src/errors'

export { seededRandom }

/** A small store for tests: 64 MiB logical, sized for a few thousand keys, small buffers so flushes happen. */
export const SMALL_STORE: OpenOptions = {
  size: 64 * 1024 * 1024,
  expectedKeys: 2000,
  keySize: 12,
  valueSize: 40,
  writeBufferSize: 1024 * 1024,
  cacheSize: 256 * 1024,
}

/** Opens a new store on a fresh memory backing; returns both. */
export async function memoryStore(options: OpenOptions = {}): Promise<{ db: CubbyDB; backing: MemoryBacking }> {
  const volume = new MemoryVolume({ size: 0 })
  const db = await openOnVolume(volume, { ...SMALL_STORE, ...options }, { fresh: true })
  return { db, backing: volume.backing }
}

/** Opens the store held by `backing` again (the previous opener must be closed or dead). */
export async function reopen(backing: MemoryBacking, options: OpenOptions = {}): Promise<CubbyDB> {
  return openOnVolume(new MemoryVolume({}, backing), { ...SMALL_STORE, ...options })
}

/** Opens the store held by `backing` behind a fault injector. */
export async function faultyStore(backing: MemoryBacking, options: OpenOptions = {}): Promise<{ db: CubbyDB; faulty: FaultyVolume }> {
  const faulty = new FaultyVolume(new MemoryVolume({}, backing))
  const db = await openOnVolume(faulty, { ...SMALL_STORE, ...options })
  return { db, faulty }
}

/** Asserts that `promise` rejects with a CubbyError of `code`; returns the error. */
export async function rejectsWith(t: ExecutionContext, promise: Promise<unknown>, code: CubbyErrorCode, message?: string): Promise<Error> {
  const error = await t.throwsAsync(promise, undefined, message)
  t.is((error as { code?: string } | undefined)?.code, code, `${message ?? ''} ${error?.message ?? ''}`)
  return error as Error
}

/** Collects every [key, value] pair of the store as latin1 key -> value. */
export async function contents(db: CubbyDB): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>()
  for await (const [key, value] of db.entries()) {
    const name = key.toString('latin1')
    if (out.has(name)) throw new Error(`entries() returned ${JSON.stringify(name)} twice`)
    out.set(name, value)
  }
  return out
}
