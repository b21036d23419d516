/**
 * The one interface every engine runner implements.
 *
 * Each engine runs in its own child process (see lib/child.ts); the adapter is
 * the only engine-specific code there. `open` loads the engine's package
 * lazily, so nothing of the engine is in the process until the parent has
 * moved it into its memory cgroup. An engine whose package or build is
 * missing throws `EngineUnavailable`, and the benchmark reports it as skipped
 * with that reason instead of running anything in its place.
 */

export interface EngineConfig {
  /** An empty directory on the benchmark's file system that the engine owns. */
  directory: string
  /** Where a store that lives in one file or device goes: an image path or /dev node. */
  storePath: string
  /** True when `storePath` is a block device the user agreed may be destroyed. */
  storeIsDevice: boolean
  keySize: number
  valueSize: number
  /** Keys the store will hold at the end of the run (a sizing hint). */
  expectedKeys: number
  cacheSizeBytes: number
  writeBufferSizeBytes: number
  /** Whether each write must be durable before it is acknowledged. */
  sync: boolean
}

export interface OpenInfo {
  /** The options the engine was opened with, recorded in the results. */
  options: Record<string, unknown>
  /** How the engine's memory budget and durability map onto the benchmark's. */
  notes: string[]
}

/** Counters only the engine itself can give. Absent fields are unknown. */
export interface EngineCounters {
  /** Device read operations since open. */
  deviceReads?: number
  /** The engine's own account of its memory, by part, in bytes. */
  memory?: Record<string, number>
  logicalBytes?: number
  physicalBytes?: number
  keys?: number
}

export interface EngineAdapter {
  open(config: EngineConfig): Promise<OpenInfo>
  put(key: Buffer, value: Buffer): Promise<unknown>
  /** May answer synchronously (LMDB reads straight from its memory map). */
  get(key: Buffer): Promise<Uint8Array | undefined> | Uint8Array | undefined
  /** Push buffered writes to the engine's files, where the engine has a way to. */
  flush(): Promise<void>
  counters(): EngineCounters
  close(): Promise<void>
}

export class EngineUnavailable extends Error {
  constructor(reason: string) {
    super(reason)
    this.name = 'EngineUnavailable'
  }
}

/** Load an engine's package, turning "not installed" into EngineUnavailable. */
export function requirePackage<T>(name: string): T {
  try {
    return require(name) as T
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error)
    throw new EngineUnavailable(`package ${name} does not load: ${message}`)
  }
}
