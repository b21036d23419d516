/**
 * The benchmark's settings and its command-line flags.
 *
 * `parseArguments` turns flags into a `BenchConfig` on top of a set of
 * defaults (the full run's, or the quick run's). Counts take decimal
 * suffixes (100k, 10M); byte sizes take binary ones (64MiB, 1GiB; K/M/G mean
 * the same). A bad flag is an error naming the flag, never silently ignored.
 */

import { tmpdir } from 'node:os'
import { ENGINE_ORDER, isEngineId, type EngineId } from '../engines/registry'
import { KEY_SIZE_MAX, KEY_SIZE_MIN, VALUE_TAG_BYTES } from './keys'
import { isWorkloadId, WORKLOAD_ORDER, type WorkloadId } from './workloads'

export type SkewedDistribution = 'uniform' | 'zipfian'

export interface BenchConfig {
  engines: EngineId[]
  /** Record counts, ascending: load to each, measure memory; workloads run at the last. */
  recordStages: number[]
  valueSizes: number[]
  keySize: number
  /** Measured operations per workload phase. */
  operations: number
  /** Unmeasured operations before each workload phase. */
  warmupOperations: number
  /** Reads of the short C phase after each load stage, for serving memory. */
  probeOperations: number
  /** Time limit of one measured workload phase (its warm-up gets a quarter of it more). */
  phaseSeconds: number
  /** Time limit of one load stage; an engine that misses it is reported as such. */
  loadSeconds: number
  /** Operations outstanding at once; also fio's queue depth. */
  concurrency: number
  seed: number
  theta: number
  workloads: WorkloadId[]
  distributions: SkewedDistribution[]
  memoryLimitBytes: number
  cacheSizeBytes: number
  writeBufferSizeBytes: number
  sync: boolean
  /** Where data directories go (a fresh one under it per run). */
  directory: string
  /** Where results are written; null to write none (the quick run). */
  outputDirectory: string | null
  label: string
  fio: boolean
  fioSeconds: number
  fioSizeBytes: number
  /** A block device to run on (destroying its contents), or null for files. */
  device: string | null
  isolate: boolean
  /** Keep the memory limit during loads too (by default loads run unlimited). */
  limitLoads: boolean
  dropCaches: boolean
}

const MiB = 1024 * 1024

export const FULL_RUN_DEFAULTS: BenchConfig = {
  engines: [...ENGINE_ORDER],
  recordStages: [1_000_000, 4_000_000, 10_000_000],
  valueSizes: [100, 400],
  keySize: 24,
  operations: 1_000_000,
  warmupOperations: 100_000,
  probeOperations: 200_000,
  phaseSeconds: 60,
  loadSeconds: 1800,
  concurrency: 32,
  seed: 1,
  theta: 0.99,
  workloads: [...WORKLOAD_ORDER],
  distributions: ['uniform', 'zipfian'],
  memoryLimitBytes: 512 * MiB,
  cacheSizeBytes: 64 * MiB,
  writeBufferSizeBytes: 16 * MiB,
  sync: false,
  directory: tmpdir(),
  outputDirectory: 'bench/results',
  label: 'reference run',
  fio: true,
  fioSeconds: 10,
  fioSizeBytes: 1024 * MiB,
  device: null,
  isolate: true,
  limitLoads: false,
  dropCaches: true,
}

export const USAGE = `npm run bench -- [flags]        (npm run bench:quick -- [flags] for the quick run)

  --records N[,N…]         record counts to load in turn; workloads run at the last   (1M,4M,10M)
  --value-sizes N[,N…]     value sizes in bytes, one full pass each                   (100,400)
  --key-size N             key size in bytes, ${KEY_SIZE_MIN}..${KEY_SIZE_MAX}                                 (24)
  --operations N           measured operations per workload                           (1M)
  --warmup-operations N    unmeasured operations before each workload                 (100k)
  --probe-operations N     reads after each load stage, for serving memory            (200k)
  --phase-seconds S        time limit of a workload phase                             (60)
  --load-seconds S         time limit of a load stage                                 (1800)
  --concurrency N          operations outstanding at once; fio's queue depth          (32)
  --seed N                 seed of every random choice                                (1)
  --theta X                zipfian constant                                           (0.99)
  --engines a,b,…          cubbydb-lz4, cubbydb-none, rocksdb, lmdb, leveldb          (all)
  --workloads A,B,…        of A, B, C, D, F (E does not apply to a hash store)        (A,B,C,F,D)
  --distributions u,z      uniform and/or zipfian, for A, B, C and F                  (both)
  --memory-limit BYTES     memory cgroup limit per engine process                     (512MiB)
  --cache-size BYTES       block/bucket cache of every engine that has one            (64MiB)
  --write-buffer-size B    memtable/write buffer of every engine that has one         (16MiB)
  --sync                   every write durable before it is acknowledged              (off)
  --dir PATH               where data directories go (must not be tmpfs)              (os.tmpdir())
  --out PATH               where results go                                           (bench/results)
  --label TEXT             title of the results
  --fio-seconds S          length of each fio job                                     (10)
  --fio-size BYTES         size of fio's test file                                    (1GiB)
  --no-fio                 skip the device measurement
  --no-cgroup              do not confine engines to memory cgroups
  --limit-loads            keep the memory limit while loading too (loads are unlimited by default)
  --no-drop-caches         do not drop the page cache between phases
  --device /dev/X --i-know-this-destroys=/dev/X
                           run on a block device: it is reformatted (ext4 for the
                           other engines, raw for CubbyDB) and everything on it is lost
`

export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

const countSuffixes: Record<string, number> = { '': 1, k: 1e3, K: 1e3, m: 1e6, M: 1e6, g: 1e9, G: 1e9 }

/** "100k" → 100000, "10M" → 10000000, "1e6" → 1000000. */
export function parseCount(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?(?:e\d+)?)([kKmMgG]?)$/.exec(text.trim())
  const value = match === null ? Number.NaN : Number(match[1]) * (countSuffixes[match[2] ?? ''] ?? Number.NaN)
  if (!Number.isInteger(value) || value < 0) throw new UsageError(`${flag} takes a whole count such as 100000 or 100k, got "${text}"`)
  return value
}

const byteSuffixes: Record<string, number> = { '': 1, b: 1, k: 1024, kib: 1024, m: MiB, mib: MiB, g: 1024 * MiB, gib: 1024 * MiB }

/** "64MiB" → 67108864, "1G" → 1073741824, "4096" → 4096. */
export function parseBytes(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text.trim())
  const multiplier = match === null ? undefined : byteSuffixes[(match[2] ?? '').toLowerCase()]
  const value = match === null || multiplier === undefined ? Number.NaN : Math.round(Number(match[1]) * multiplier)
  if (!Number.isInteger(value) || value < 0) throw new UsageError(`${flag} takes a size such as 64MiB or 1GiB, got "${text}"`)
  return value
}

function parseSeconds(text: string, flag: string): number {
  const value = Number(text)
  if (!(value > 0)) throw new UsageError(`${flag} takes a number of seconds > 0, got "${text}"`)
  return value
}

function parseList<T>(text: string, flag: string, parseItem: (item: string) => T): T[] {
  const items = text.split(',').map((item) => item.trim()).filter((item) => item !== '')
  if (items.length === 0) throw new UsageError(`${flag} needs at least one item`)
  return items.map(parseItem)
}

const booleanFlags = new Set(['--sync', '--no-fio', '--no-cgroup', '--limit-loads', '--no-drop-caches', '--help'])

/** Parse flags over `defaults`. Returns null when --help was asked for. */
export function parseArguments(argv: readonly string[], defaults: BenchConfig): BenchConfig | null {
  const config: BenchConfig = { ...defaults, engines: [...defaults.engines], recordStages: [...defaults.recordStages] }
  let confirmation: string | null = null
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index] as string
    const equals = argument.indexOf('=')
    const flag = equals > 0 ? argument.slice(0, equals) : argument
    if (booleanFlags.has(flag)) {
      if (equals > 0) throw new UsageError(`${flag} takes no value`)
      if (flag === '--help') return null
      if (flag === '--sync') config.sync = true
      if (flag === '--no-fio') config.fio = false
      if (flag === '--no-cgroup') config.isolate = false
      if (flag === '--limit-loads') config.limitLoads = true
      if (flag === '--no-drop-caches') config.dropCaches = false
      continue
    }
    if (!flag.startsWith('--')) throw new UsageError(`unexpected argument "${argument}"`)
    let value: string
    if (equals > 0) value = argument.slice(equals + 1)
    else {
      const next = argv[index + 1]
      if (next === undefined) throw new UsageError(`${flag} needs a value`)
      value = next
      index++
    }
    switch (flag) {
      case '--records':
        config.recordStages = parseList(value, flag, (item) => parseCount(item, flag))
        break
      case '--value-sizes':
        config.valueSizes = parseList(value, flag, (item) => parseCount(item, flag))
        break
      case '--key-size':
        config.keySize = parseCount(value, flag)
        break
      case '--operations':
        config.operations = parseCount(value, flag)
        break
      case '--warmup-operations':
        config.warmupOperations = parseCount(value, flag)
        break
      case '--probe-operations':
        config.probeOperations = parseCount(value, flag)
        break
      case '--phase-seconds':
        config.phaseSeconds = parseSeconds(value, flag)
        break
      case '--load-seconds':
        config.loadSeconds = parseSeconds(value, flag)
        break
      case '--concurrency':
        config.concurrency = parseCount(value, flag)
        break
      case '--seed':
        config.seed = parseCount(value, flag)
        break
      case '--theta':
        config.theta = Number(value)
        break
      case '--engines':
        config.engines = parseList(value, flag, (item) => {
          if (!isEngineId(item)) throw new UsageError(`${flag}: unknown engine "${item}" (known: ${ENGINE_ORDER.join(', ')})`)
          return item
        })
        break
      case '--workloads':
        config.workloads = parseList(value, flag, (item) => {
          const upper = item.toUpperCase()
          if (upper === 'E') throw new UsageError('workload E (range scans) does not apply to a hash store')
          if (!isWorkloadId(upper)) throw new UsageError(`${flag}: unknown workload "${item}"`)
          return upper
        })
        break
      case '--distributions':
        config.distributions = parseList(value, flag, (item) => {
          if (item !== 'uniform' && item !== 'zipfian') throw new UsageError(`${flag}: "${item}" is neither uniform nor zipfian`)
          return item
        })
        break
      case '--memory-limit':
        config.memoryLimitBytes = parseBytes(value, flag)
        break
      case '--cache-size':
        config.cacheSizeBytes = parseBytes(value, flag)
        break
      case '--write-buffer-size':
        config.writeBufferSizeBytes = parseBytes(value, flag)
        break
      case '--dir':
        config.directory = value
        break
      case '--out':
        config.outputDirectory = value
        break
      case '--label':
        config.label = value
        break
      case '--fio-seconds':
        config.fioSeconds = parseSeconds(value, flag)
        break
      case '--fio-size':
        config.fioSizeBytes = parseBytes(value, flag)
        break
      case '--device':
        config.device = value
        break
      case '--i-know-this-destroys':
        confirmation = value
        break
      default:
        throw new UsageError(`unknown flag ${flag}`)
    }
  }
  validate(config, confirmation)
  return config
}

function validate(config: BenchConfig, confirmation: string | null): void {
  const stages = config.recordStages
  if (stages.some((count, index) => count < 1 || (index > 0 && count <= (stages[index - 1] as number)))) {
    throw new UsageError(`--records must be ascending counts >= 1, got ${stages.join(',')}`)
  }
  if (config.keySize < KEY_SIZE_MIN || config.keySize > KEY_SIZE_MAX) throw new UsageError(`--key-size must be in [${KEY_SIZE_MIN}, ${KEY_SIZE_MAX}]`)
  if (config.valueSizes.some((size) => size < VALUE_TAG_BYTES || size > 1024 * 1024)) {
    throw new UsageError(`--value-sizes must be in [${VALUE_TAG_BYTES}, 1048576] bytes (each value starts with an ${VALUE_TAG_BYTES}-byte tag)`)
  }
  if (config.concurrency < 1 || config.concurrency > 4096) throw new UsageError('--concurrency must be in [1, 4096]')
  if (config.seed >= 2 ** 32) throw new UsageError('--seed must be below 2^32')
  if (!(config.theta > 0 && config.theta < 1)) throw new UsageError('--theta must be in (0, 1)')
  if (config.operations < 1) throw new UsageError('--operations must be >= 1')
  if (config.memoryLimitBytes < 64 * MiB) throw new UsageError('--memory-limit below 64MiB leaves no room for Node itself')
  if (config.device !== null) {
    if (!config.device.startsWith('/dev/')) throw new UsageError(`--device takes a /dev path, got ${config.device}`)
    if (confirmation !== config.device) {
      throw new UsageError(
        `--device ${config.device} destroys everything on ${config.device}; confirm with --i-know-this-destroys=${config.device}`,
      )
    }
  } else if (confirmation !== null) {
    throw new UsageError('--i-know-this-destroys is only meaningful with --device')
  }
}
