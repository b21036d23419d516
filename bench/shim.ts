/**
 * bench:shim: the native shim's 4 KiB random read and write, at queue depth
 * 1 and 32, through a NativeVolume, measured beside fio on the same file in
 * the same run. Each workload runs as several pairs of short runs, fio and
 * the shim back to back (alternating which goes first), so that load from
 * other work on the machine hits both alike; figures are medians over the
 * pairs, and each ratio is the median of the pairs' own ratios.
 *
 *   npm run bench:shim -- [--file PATH] [--size 2g] [--seconds 2] [--pairs 8] [--paths io_uring,threadpool]
 *
 * The file (default: cubbydb-bench-shim.img in os.tmpdir()) is created and
 * filled once with non-zero data, so reads hit the device rather than holes.
 * Both sides use O_DIRECT; a file system without it is refused, since the
 * numbers would be the page cache's.
 *
 * Targets (issue 2): shim random-read IOPS at queue depth 32 at least 0.8x
 * fio's; queue-depth-1 read latency within 1.3x of fio's.
 */

import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { openFileVolume, type NativeVolume } from '../src/device'
import { ensureFio } from './lib/fio'
import { runFio } from './shim/fio'
import { IO_BYTES, runShim, type Workload, type WorkloadResult } from './shim/workload'

interface Options {
  file: string
  sizeBytes: number
  seconds: number
  pairs: number
  paths: Array<'io_uring' | 'threadpool'>
}

const WORKLOADS: Workload[] = [
  { operation: 'read', queueDepth: 1 },
  { operation: 'read', queueDepth: 32 },
  { operation: 'write', queueDepth: 1 },
  { operation: 'write', queueDepth: 32 },
]

function parseBytes(text: string): number {
  const match = /^(\d+)([kmgt]?)$/i.exec(text)
  if (match === null) throw new Error(`not a size: ${text}`)
  const unit = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[match[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't']
  return Number(match[1]) * unit
}

function parseOptions(argv: string[]): Options {
  const options: Options = { file: path.join(os.tmpdir(), 'cubbydb-bench-shim.img'), sizeBytes: 2 * 2 ** 30, seconds: 2, pairs: 8, paths: ['io_uring'] }
  for (let index = 0; index < argv.length; index += 2) {
    const value = argv[index + 1]
    if (value === undefined) throw new Error(`${argv[index]} needs a value`)
    switch (argv[index]) {
      case '--file': options.file = value; break
      case '--size': options.sizeBytes = parseBytes(value); break
      case '--seconds': options.seconds = Number(value); break
      case '--pairs': options.pairs = Number(value); break
      case '--paths': options.paths = value.split(',') as Options['paths']; break
      default: throw new Error(`unknown option ${argv[index]}`)
    }
  }
  return options
}

/** Creates the file and fills it with non-zero bytes, unless a full one of the right size is already there. */
async function prepareFile(options: Options): Promise<void> {
  const existing = fs.existsSync(options.file) ? fs.statSync(options.file) : undefined
  if (existing !== undefined && existing.size === options.sizeBytes && existing.blocks * 512 >= options.sizeBytes) return
  console.log(`filling ${options.file} (${options.sizeBytes / 2 ** 20} MiB)...`)
  const volume = await openFileVolume(options.file, { create: true })
  try {
    await volume.grow(options.sizeBytes)
    const chunk = 4 * 2 ** 20
    const buffers = Array.from({ length: 4 }, (_, index) => volume.allocate(chunk).fill(0x5a + index))
    for (let offset = 0; offset < options.sizeBytes; offset += chunk * buffers.length) {
      await Promise.all(
        buffers.map((buffer, index) => {
          const at = offset + index * chunk
          return at < options.sizeBytes ? volume.write([{ offset: at, length: Math.min(chunk, options.sizeBytes - at), buffer, bufferOffset: 0 }]) : undefined
        }),
      )
    }
    await volume.sync()
  } finally {
    await volume.close()
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((left, right) => left - right)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

interface Row {
  workload: Workload
  fio: WorkloadResult
  shim: WorkloadResult
  /** Median over the pairs of shim / fio. */
  ratios: WorkloadResult
}

/** Medians of each figure over the pairs, and the medians of the pairs' shim/fio ratios. */
function summarize(workload: Workload, pairs: Array<{ fio: WorkloadResult; shim: WorkloadResult }>): Row {
  const keys = ['iops', 'latencyMeanMicroseconds', 'latencyP50Microseconds', 'latencyP99Microseconds', 'cpuMicrosecondsPerIo'] as const
  const medians = (pick: (pair: { fio: WorkloadResult; shim: WorkloadResult }, key: (typeof keys)[number]) => number): WorkloadResult => {
    const result = {} as Record<(typeof keys)[number], number>
    for (const key of keys) result[key] = median(pairs.map((pair) => pick(pair, key)))
    return result
  }
  return {
    workload,
    fio: medians((pair, key) => pair.fio[key] ?? Number.NaN),
    shim: medians((pair, key) => pair.shim[key] ?? Number.NaN),
    ratios: medians((pair, key) => (pair.shim[key] ?? Number.NaN) / (pair.fio[key] ?? Number.NaN)),
  }
}

function name(workload: Workload): string {
  return `rand${workload.operation} QD${workload.queueDepth}`
}

function format(value: number, digits = 0): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '-'
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2))
  const fio = ensureFio((line) => console.log(line))
  if ('missing' in fio) throw new Error(fio.missing)
  await prepareFile(options)
  console.log(`${fio.version}, Node ${process.version}, Linux ${os.release()}, ${os.cpus().length} CPUs`)
  console.log(
    `file ${options.file}, ${options.sizeBytes / 2 ** 20} MiB, ${IO_BYTES}-byte I/O, O_DIRECT; ${options.pairs} pairs of ${options.seconds} s runs per workload; medians\n`,
  )

  const verdicts: string[] = []
  for (const ioPath of options.paths) {
    const volume: NativeVolume = await openFileVolume(options.file, { ioPath })
    try {
      if (!volume.directIo) throw new Error(`${options.file} is on a file system without O_DIRECT: the numbers would be the page cache's`)
      const rows: Row[] = []
      for (const workload of WORKLOADS) {
        const pairs: Array<{ fio: WorkloadResult; shim: WorkloadResult }> = []
        await runShim(volume, workload, 1)
        for (let pair = 0; pair < options.pairs; pair++) {
          const runFioNow = () => runFio(options.file, options.sizeBytes, workload, options.seconds)
          const fioFirst = pair % 2 === 0 ? runFioNow() : undefined
          const shim = await runShim(volume, workload, options.seconds)
          pairs.push({ fio: fioFirst ?? runFioNow(), shim })
        }
        rows.push(summarize(workload, pairs))
      }

      console.log(`shim on ${ioPath} vs fio (io_uring engine)`)
      console.log('workload       |   fio IOPS |  shim IOPS | ratio | fio p50 µs | shim p50 | ratio | fio p99 µs | shim p99 | ratio | shim CPU µs/IO')
      for (const { workload, fio, shim, ratios } of rows) {
        const columns = [
          name(workload).padEnd(14),
          format(fio.iops).padStart(10),
          format(shim.iops).padStart(10),
          format(ratios.iops, 2).padStart(5),
          format(fio.latencyP50Microseconds, 1).padStart(10),
          format(shim.latencyP50Microseconds, 1).padStart(8),
          format(ratios.latencyP50Microseconds, 2).padStart(5),
          format(fio.latencyP99Microseconds, 1).padStart(10),
          format(shim.latencyP99Microseconds, 1).padStart(8),
          format(ratios.latencyP99Microseconds, 2).padStart(5),
          format(shim.cpuMicrosecondsPerIo ?? Number.NaN, 1).padStart(14),
        ]
        console.log(columns.join(' | '))
      }
      console.log('')
      const readDeep = rows.find((row) => row.workload.operation === 'read' && row.workload.queueDepth === 32)!
      const readShallow = rows.find((row) => row.workload.operation === 'read' && row.workload.queueDepth === 1)!
      const iopsRatio = readDeep.ratios.iops
      const latencyRatio = readShallow.ratios.latencyP50Microseconds
      const meanRatio = readShallow.ratios.latencyMeanMicroseconds
      verdicts.push(`${ioPath}: randread QD32 IOPS ${format(iopsRatio, 2)}x fio (target >= 0.80): ${iopsRatio >= 0.8 ? 'met' : 'NOT met'}`)
      verdicts.push(
        `${ioPath}: randread QD1 latency p50 ${format(latencyRatio, 2)}x fio, mean ${format(meanRatio, 2)}x (target <= 1.30): ${latencyRatio <= 1.3 ? 'met' : 'NOT met'}`,
      )
    } finally {
      await volume.close()
    }
  }
  for (const verdict of verdicts) console.log(verdict)
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
