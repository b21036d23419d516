// Space and memory of a real store (issue 4's Done-when figures).
//
// For each key count (default 1M and 3M) a child process loads that many
// YCSB-style keys (24 bytes) with random values (default 100 bytes) into a
// new image file with the default options, flushes, lets idle cleaning
// finish and closes; then a second child opens the store with the default
// options and serves 100,000 uniform GETs. Reported:
//  - physical space: allocated blocks of the image file (st_blocks × 512)
//    against the raw key + value bytes;
//  - serving RSS after the GETs (in the serving process, which never saw
//    the load's garbage), and the store's own memory accounting;
// and the parent derives memory per key = (RSS at the larger count − RSS at
// the smaller) / (difference in keys).
//
// Usage: npm run bench:space -- [--keys 1000000,3000000] [--value-size 100]
//        [--compression lz4|none] [--runs N] [--serves N] [--serve-flags FLAGS]
//        [--dir DIR]
// Each load is served by --serves processes (default 5), and its serving
// RSS is their median (--serve-flags "FLAGS", repeatable, serves it as many
// times again under node FLAGS, e.g. --single-threaded-gc, whose GC helper
// threads otherwise move RSS by megabytes from process to process); with --runs N every count is loaded N times (in
// rounds) and memory per key is taken from the medians of those.
// Data goes under --dir (default os.tmpdir(), on the ext4 disk), deleted after.

import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { openDevice, openFileVolume, probeVolume, CompressedBlockDevice } from '../src/device'
import { spaceBreakdown, type SpaceBreakdown } from '../src/device/compressed/space'
import { bucketCount, decodeSuperblock, type Superblock } from '../src/engine/superblock'

interface Sample {
  keys: number
  valueSize: number
  compression: string
  rawBytes: number
  fileAllocatedBytes: number
  logicalBytes: number
  physicalBytes: number
  rssBytes: number
  /** Where the RSS is: anonymous vs file-backed pages (/proc/self/status), and V8's view (process.memoryUsage()). */
  rss: { anonBytes: number; fileBytes: number; heapTotalBytes: number; heapUsedBytes: number; externalBytes: number; arrayBuffersBytes: number }
  storeMemoryBytes: number
  storeMemory: Record<string, number>
  /** Serving RSS of every serving process of this load, smallest first (rssBytes is their median). */
  servingRssRuns: number[]
  /** The same for each further set of node flags given with --serve-flags. */
  variants: Array<{ flags: string; rssRuns: number[] }>
  loadSeconds: number
  /** Serving phase: how long the GETs took, and the longest the event loop was held (idle cleaning runs then). */
  serveSeconds: number
  maxEventLoopDelayMs: number
  maxBusyGapMs: number
  breakdown?: SpaceBreakdown
}

const KEY_BYTES = 24
const GETS = 100_000

function keyOf(index: number): Buffer {
  return Buffer.from(`user${String(index).padStart(KEY_BYTES - 4, '0')}`)
}

function statusBytes(field: string): number {
  const status = fs.readFileSync('/proc/self/status', 'utf8')
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)
  return match === null ? 0 : Number(match[1]) * 1024
}

/** Waits (up to a minute) until idle cleaning has stopped moving bytes. */
async function settle(db: { stats(): { device: { cleaningBytesMoved: number } } }): Promise<void> {
  let last = -1
  let still = 0
  for (let waited = 0; waited < 60_000 && still < 3; waited += 300) {
    await new Promise((resolve) => setTimeout(resolve, 300))
    const moved = db.stats().device.cleaningBytesMoved
    still = moved === last ? still + 1 : 0
    last = moved
  }
}

type LoadSample = Pick<Sample, 'keys' | 'valueSize' | 'compression' | 'rawBytes' | 'fileAllocatedBytes' | 'logicalBytes' | 'physicalBytes' | 'loadSeconds' | 'breakdown'>
type ServeSample = Pick<Sample, 'rssBytes' | 'rss' | 'storeMemoryBytes' | 'storeMemory' | 'serveSeconds' | 'maxEventLoopDelayMs' | 'maxBusyGapMs'>

/** Loaded from the package build, exactly as a user would. */
function cubby(): typeof import('../src/index') {
  return require(path.join(__dirname, '..', '..', 'dist', 'index.js')) as typeof import('../src/index')
}

/** Makes the store and loads it; waits for idle cleaning to finish, closes, and measures the space. */
async function loadChild(file: string, keys: number, valueSize: number, compression: 'lz4' | 'none'): Promise<LoadSample> {
  const started = performance.now()
  const db = await cubby().open(file, { expectedKeys: keys, valueSize, compression, sync: false })
  const inFlight = new Set<Promise<void>>()
  for (let index = 0; index < keys; index++) {
    const promise: Promise<void> = db.put(keyOf(index), randomBytes(valueSize)).then(() => void inFlight.delete(promise))
    inFlight.add(promise)
    if (inFlight.size >= 64) await Promise.race(inFlight)
  }
  await Promise.all(inFlight)
  await db.flush()
  const loadSeconds = (performance.now() - started) / 1000
  await settle(db)
  const stats = db.stats()
  await db.close()
  return {
    keys,
    valueSize,
    compression,
    rawBytes: keys * (KEY_BYTES + valueSize),
    fileAllocatedBytes: fs.statSync(file).blocks * 512,
    logicalBytes: stats.device.logicalBytes,
    physicalBytes: stats.device.physicalBytes,
    loadSeconds,
    breakdown: compression === 'lz4' ? await breakdownOf(file) : undefined,
  }
}

/**
 * Serving memory, in a process of its own (the load's garbage and allocator
 * fragmentation are not the serving store's): opens the loaded store with
 * the default options, serves uniform GETs until its caches are warm, and
 * measures RSS after garbage collection.
 */
async function serveChild(file: string, keys: number, valueSize: number): Promise<ServeSample> {
  const db = await cubby().open(file, { create: false })
  const serveStarted = performance.now()
  const delay = monitorEventLoopDelay({ resolution: 1 })
  delay.enable()
  // The longest gap between event-loop turns during which this process was on the CPU (a shared, noisy machine
  // also stalls the loop by not running it at all; that shows in the plain delay).
  let last = performance.now()
  let lastCpu = process.cpuUsage()
  let busyGapMs = 0
  let serving = true
  const tick = () => {
    const now = performance.now()
    const cpu = process.cpuUsage()
    const cpuMs = (cpu.user - lastCpu.user + cpu.system - lastCpu.system) / 1000
    busyGapMs = Math.max(busyGapMs, Math.min(now - last, cpuMs))
    last = now
    lastCpu = cpu
    if (serving) setImmediate(tick)
  }
  setImmediate(tick)
  let state = 0x9e3779b9
  for (let done = 0; done < GETS; done += 32) {
    const batch: Array<Promise<Buffer | undefined>> = []
    for (let index = 0; index < 32; index++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0
      batch.push(db.get(keyOf(state % keys)))
    }
    for (const value of await Promise.all(batch)) if (value?.length !== valueSize) throw new Error('a loaded key read back wrong')
  }
  delay.disable()
  serving = false
  const serveSeconds = (performance.now() - serveStarted) / 1000
  // Collect garbage twice (the second pass frees what the first one's finalizers let go).
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  await new Promise((resolve) => setTimeout(resolve, 100))
  gc?.()
  const servingRss = statusBytes('VmRSS')
  const usage = process.memoryUsage()
  const rss = {
    anonBytes: statusBytes('RssAnon'),
    fileBytes: statusBytes('RssFile'),
    heapTotalBytes: usage.heapTotal,
    heapUsedBytes: usage.heapUsed,
    externalBytes: usage.external,
    arrayBuffersBytes: usage.arrayBuffers,
  }
  const stats = db.stats()
  await db.close()
  return {
    rssBytes: servingRss,
    rss,
    storeMemoryBytes: stats.memory.total,
    storeMemory: stats.memory,
    serveSeconds,
    maxEventLoopDelayMs: delay.max / 1e6,
    maxBusyGapMs: busyGapMs,
  }
}

/** Reopens the closed store read-only and sorts its physical bytes (src/device/compressed/space.ts) by the engine's regions. */
async function breakdownOf(file: string): Promise<SpaceBreakdown | undefined> {
  const volume = await openFileVolume(file, { readOnly: true })
  const content = await probeVolume(volume)
  if (content !== 'lz4') {
    await volume.close()
    return undefined
  }
  const device = (await openDevice(volume, content)) as CompressedBlockDevice
  try {
    const blocks = device.allocate(2)
    await device.read([0, 1].map((lba) => ({ lba, buffer: blocks, bufferOffset: lba * 4096 })))
    let superblock: Superblock | undefined
    for (const at of [0, 4096]) {
      const read = decodeSuperblock(blocks, at)
      if (read.kind === 'valid' && (superblock === undefined || read.superblock.generation > superblock.generation)) superblock = read.superblock
    }
    if (superblock === undefined) return undefined
    const regionEnd = superblock.regionStart + superblock.regionBlocks
    return await spaceBreakdown(device, [
      { name: 'superblock', start: 0, end: superblock.journalStart },
      { name: 'journal', start: superblock.journalStart, end: superblock.journalStart + 2 * superblock.journalSlotBlocks },
      { name: 'wal', start: superblock.walStart, end: superblock.walStart + superblock.walBlocks },
      { name: 'bitmap', start: superblock.bitmapStart, end: superblock.bitmapStart + superblock.bitmapBlocks },
      { name: 'buckets', start: superblock.regionStart, end: superblock.regionStart + bucketCount(superblock) },
      { name: 'heap', start: regionEnd - superblock.heapSpan, end: regionEnd },
    ])
  } finally {
    await device.close()
  }
}

function printBreakdown(sample: Sample): void {
  const b = sample.breakdown
  if (b === undefined) return
  const raw = sample.rawBytes
  const line = (label: string, bytes: number, note = '') =>
    console.log(`    ${label.padEnd(34)} ${mib(bytes).padStart(8)} MiB  ${(bytes / raw).toFixed(3)}× raw${note}`)
  console.log(
    `  where the ${mib(sample.fileAllocatedBytes)} MiB go (granule ${b.granuleBytes} B, ${b.segmentsInUse} of ${b.segmentCount} segments of ${b.segmentBytes / 1024} KiB in use):`,
  )
  line('metadata (header, checkpoints, map)', b.metadataBytes)
  line('live records', b.live.recordBytes, ` (${b.live.blocks.toLocaleString()} blocks; estimate ${mib(b.liveEstimateBytes)} MiB)`)
  line('  of which LZ4 payload', b.live.payloadBytes)
  line('  of which record headers', b.live.headerBytes)
  line('  of which granule padding', b.live.granulePaddingBytes)
  for (const [name, region] of Object.entries(b.regions)) {
    line(`  live in ${name}`, region.recordBytes, ` (${region.blocks.toLocaleString()} blocks, ${region.blocks === 0 ? 0 : Math.round(region.payloadBytes / region.blocks)} B payload each)`)
  }
  line('dead records', b.deadRecordBytes)
  line('trim records', b.trimRecordBytes)
  line('chunk headers + padding', b.chunkHeaderBytes + b.chunkPaddingBytes)
  line('unwritten segment tails (holes)', b.unwrittenTailBytes)
}

function runChild<T>(args: string[], nodeFlags: string[] = []): Promise<T> {
  return new Promise((resolve, reject) => {
    const process_ = spawn(process.execPath, ['--expose-gc', ...nodeFlags, __filename, '--child', ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    let output = ''
    process_.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    process_.on('error', reject)
    process_.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`child ${args.join(' ')} exited with ${code}`))
      resolve(JSON.parse(output.trim().split('\n').pop()!) as T)
    })
  })
}

/**
 * One load, then `serves` serving processes on the loaded store: the sample
 * is the serving process with the median RSS (a process's RSS moves by
 * megabytes with where the allocator happened to put things; serving is
 * cheap to repeat, loading is not).
 */
async function measure(file: string, keys: number, valueSize: number, compression: string, serves: number, flagSets: string[]): Promise<Sample> {
  const loaded = await runChild<LoadSample>(['load', file, String(keys), String(valueSize), compression])
  const servedBy: ServeSample[][] = []
  // Alternating the flag sets, so a drift of the machine falls on each alike.
  for (let serve = 0; serve < serves; serve++) {
    for (const [index, flags] of flagSets.entries()) {
      const sample = await runChild<ServeSample>(['serve', file, String(keys), String(valueSize)], flags.split(' ').filter((flag) => flag !== ''))
      ;(servedBy[index] ??= []).push(sample)
    }
  }
  for (const served of servedBy) served.sort((left, right) => left.rssBytes - right.rssBytes)
  const first = servedBy[0]!
  return {
    ...loaded,
    ...first[(first.length - 1) >> 1]!,
    servingRssRuns: first.map((sample) => sample.rssBytes),
    variants: servedBy.slice(1).map((served, index) => ({ flags: flagSets[index + 1]!, rssRuns: served.map((sample) => sample.rssBytes) })),
  }
}

const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1)

const median = (values: number[]): number => {
  const sorted = [...values].sort((left, right) => left - right)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      keys: { type: 'string', default: '1000000,3000000' },
      'value-size': { type: 'string', default: '100' },
      compression: { type: 'string', default: 'lz4' },
      runs: { type: 'string', default: '1' },
      serves: { type: 'string', default: '5' },
      'serve-flags': { type: 'string', multiple: true },
      dir: { type: 'string', default: os.tmpdir() },
    },
  })
  const counts = values.keys.split(',').map(Number)
  const valueSize = Number(values['value-size'])
  const runs = Number(values.runs)
  const serves = Number(values.serves)
  // The serving processes run with node's defaults, and again with each --serve-flags set given.
  const flagSets = ['', ...(values['serve-flags'] ?? [])]
  const directory = fs.mkdtempSync(path.join(values.dir, 'cubby-space-'))
  const samples = new Map<number, Sample[]>(counts.map((keys) => [keys, []]))
  try {
    // Rounds of every count in turn, so a drift of the machine over the run falls on all counts alike.
    for (let run = 0; run < runs; run++) {
      for (const keys of counts) {
        const file = path.join(directory, `store-${keys}.img`)
        const sample = await measure(file, keys, valueSize, values.compression, serves, flagSets)
        samples.get(keys)!.push(sample)
        fs.rmSync(file)
        console.log(
          `${keys.toLocaleString()} keys (${values.compression}, ${valueSize} B values${runs > 1 ? `, run ${run + 1}` : ''}): ` +
            `file ${mib(sample.fileAllocatedBytes)} MiB allocated for ${mib(sample.rawBytes)} MiB of keys + values = ` +
            `${(sample.fileAllocatedBytes / sample.rawBytes).toFixed(3)}×; device physical ${mib(sample.physicalBytes)} MiB; ` +
            `serving RSS ${mib(sample.rssBytes)} MiB (median of ${sample.servingRssRuns.map(mib).join(', ')}; anon ${mib(sample.rss.anonBytes)}, file ${mib(sample.rss.fileBytes)}; V8 heap ${mib(sample.rss.heapTotalBytes)}, ` +
            `external ${mib(sample.rss.externalBytes)}); store accounts ${mib(sample.storeMemoryBytes)} MiB ` +
            `(${Object.entries(sample.storeMemory)
              .filter(([part, bytes]) => part !== 'total' && bytes > 0)
              .map(([part, bytes]) => `${part} ${(bytes / 1024).toFixed(0)} KiB`)
              .join(', ')}); load ${sample.loadSeconds.toFixed(0)} s; ` +
            `${GETS.toLocaleString()} GETs in ${sample.serveSeconds.toFixed(1)} s, longest event-loop delay ${sample.maxEventLoopDelayMs.toFixed(1)} ms ` +
            `(${sample.maxBusyGapMs.toFixed(1)} ms of it on the CPU)`,
        )
        for (const variant of sample.variants) console.log(`  serving RSS with node ${variant.flags}: median ${mib(median(variant.rssRuns))} MiB of ${variant.rssRuns.map(mib).join(', ')}`)
        if (run === 0) printBreakdown(sample)
      }
    }
  } finally {
    fs.rmSync(directory, { recursive: true, force: true })
  }
  for (let index = 1; index < counts.length; index++) {
    const low = samples.get(counts[index - 1]!)!
    const high = samples.get(counts[index]!)!
    const keys = counts[index]! - counts[index - 1]!
    const range = `from ${counts[index - 1]!.toLocaleString()} to ${counts[index]!.toLocaleString()} keys`
    const perRun = high.map((sample, run) => (sample.rssBytes - low[run]!.rssBytes) / keys)
    const rssPerKey = (median(high.map((sample) => sample.rssBytes)) - median(low.map((sample) => sample.rssBytes))) / keys
    const anonPerKey = (median(high.map((sample) => sample.rss.anonBytes)) - median(low.map((sample) => sample.rss.anonBytes))) / keys
    console.log(
      `memory per key ${range}: ${rssPerKey.toFixed(3)} bytes (median serving RSS difference / key difference` +
        `${runs > 1 ? `; per run ${perRun.map((value) => value.toFixed(3)).join(', ')}` : ''}); anonymous RSS alone ${anonPerKey.toFixed(3)} bytes`,
    )
    // RSS moves by megabytes with the heap and the allocator; the store's own accounting resolves what the store holds.
    for (const [index, flags] of flagSets.slice(1).entries()) {
      const of = (samples: Sample[]) => median(samples.map((sample) => median(sample.variants[index]!.rssRuns)))
      console.log(`memory per key ${range} with node ${flags}: ${((of(high) - of(low)) / keys).toFixed(3)} bytes (median serving RSS difference / key difference)`)
    }
    const accounted = (median(high.map((sample) => sample.storeMemoryBytes)) - median(low.map((sample) => sample.storeMemoryBytes))) / keys
    console.log(`store-accounted memory per key over the same range: ${accounted.toFixed(3)} bytes (stats().memory.total difference / key difference)`)
  }
}

if (process.argv[2] === '--child') {
  const [phase, file, keys, valueSize, compression] = process.argv.slice(3)
  const work = phase === 'load' ? loadChild(file!, Number(keys), Number(valueSize), compression as 'lz4' | 'none') : serveChild(file!, Number(keys), Number(valueSize))
  work.then(
    (sample) => process.stdout.write(`${JSON.stringify(sample)}\n`),
    (error: unknown) => {
      console.error(error)
      process.exitCode = 1
    },
  )
} else {
  void main()
}
