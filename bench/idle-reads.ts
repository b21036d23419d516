/**
 * GETs right after a load, against idle cleaning (the idle-cleaning policy
 * work): copies a loaded lz4 image (made by `perf.js load`, so it still has
 * the dead records of the load), opens the copy READ-WRITE, so that idle
 * cleaning may run as it does right after a real load, and serves uniform
 * GETs at a queue depth for `--seconds`; then stays at rest (no operations)
 * for `--rest` seconds and reports physical use again, to show the store
 * still gets its space back.
 *
 *   node dist-test/bench/idle-reads.js --image IMG --lib DIST [--idle-ms 250]
 *        [--seconds 10] [--rest 10] [--queue-depth 32] [--work FILE]
 *
 * `--lib` is a build's dist/ directory (so two builds can be run side by
 * side); `--idle-ms 0` turns idle cleaning off (the ceiling). Prints one
 * JSON line: GET/s, CPU µs per GET, bytes the process read from storage
 * per GET (/proc/self/io, so the cleaner's segment reads count), idle
 * cleaning's bytes moved during the GETs, and physical bytes at open,
 * after the GETs and after the rest.
 */

import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { performance } from 'node:perf_hooks'
import { keyFor, valueMatches } from './lib/keys'

function argument(name: string, fallback?: string): string {
  const index = process.argv.indexOf(`--${name}`)
  const value = index >= 0 ? process.argv[index + 1] : fallback
  if (value === undefined) throw new Error(`--${name} is required`)
  return value
}

function storageIo(): { read: number; written: number } {
  const text = fs.readFileSync('/proc/self/io', 'utf8')
  const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)`, 'm').exec(text)?.[1] ?? 0)
  return { read: field('read_bytes'), written: field('write_bytes') }
}

interface Db {
  get(key: Uint8Array): Promise<Buffer | undefined>
  stats(): { keys: number; device: { physicalBytes: number; cleaningBytesMoved: number } }
  close(): Promise<void>
}

async function main(): Promise<void> {
  const image = argument('image')
  const lib = path.resolve(argument('lib'))
  const idleMs = Number(argument('idle-ms', '250'))
  const seconds = Number(argument('seconds', '10'))
  const rest = Number(argument('rest', '10'))
  const queueDepth = Number(argument('queue-depth', '32'))
  const work = argument('work', `${image}.work`)
  fs.rmSync(work, { force: true })
  execFileSync('cp', ['--sparse=always', image, work])
  const { openOnVolume } = require(path.join(lib, 'db.js')) as { openOnVolume: (volume: unknown, options: unknown, context: unknown) => Promise<Db> }
  const { openFileVolume } = require(path.join(lib, 'device', 'file.js')) as { openFileVolume: (file: string) => Promise<unknown> }
  const db = await openOnVolume(await openFileVolume(work), { cacheSize: 0 }, { lz4: { idleCleaningMs: idleMs } })
  const moved = () => db.stats().device.cleaningBytesMoved
  const physicalAtOpen = db.stats().device.physicalBytes
  const keys = db.stats().keys
  const VALUE_BYTES = 100
  let wrong = 0
  let operations = 0
  const movedBefore = moved()
  const ioBefore = storageIo()
  const cpuBefore = process.cpuUsage()
  const started = performance.now()
  const deadline = started + seconds * 1000
  await Promise.all(
    Array.from({ length: queueDepth }, async (_, worker) => {
      let state = (worker * 7919 + 1) >>> 0
      while (performance.now() < deadline) {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0
        const number = state % keys
        const value = await db.get(keyFor(number, 24))
        if (value === undefined || !valueMatches(value, number, VALUE_BYTES)) wrong++
        operations++
      }
    }),
  )
  const elapsed = (performance.now() - started) / 1000
  const cpu = process.cpuUsage(cpuBefore)
  const io = storageIo()
  const movedDuring = moved() - movedBefore
  const physicalAfterGets = db.stats().device.physicalBytes
  await new Promise((resolve) => setTimeout(resolve, rest * 1000))
  const physicalAfterRest = db.stats().device.physicalBytes
  await db.close()
  fs.rmSync(work, { force: true })
  if (wrong > 0) throw new Error(`${wrong} GETs returned a missing or wrong value`)
  console.log(
    JSON.stringify({
      idleMs,
      getsPerSecond: Math.round(operations / elapsed),
      cpuMicrosPerGet: Math.round(((cpu.user + cpu.system) / operations) * 10) / 10,
      readKiBPerGet: Math.round(((io.read - ioBefore.read) / operations / 1024) * 100) / 100,
      writtenMiBDuringGets: Math.round((io.written - ioBefore.written) / 1048576),
      cleanerMovedMiBDuringGets: Math.round(movedDuring / 1048576),
      physicalMiB: { open: Math.round(physicalAtOpen / 1048576), afterGets: Math.round(physicalAfterGets / 1048576), afterRest: Math.round(physicalAfterRest / 1048576) },
    }),
  )
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exitCode = 1
})
