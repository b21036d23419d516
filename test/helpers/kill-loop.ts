// The kill loop (after RocksDB's db_crashtest.py): a writer process
// (./kill-writer.ts) under mixed load on one store is SIGKILLed at a random
// moment, again and again. The expected state lives outside the store: the
// writer records each write before issuing it and each acknowledgement after
// its promise resolved, in a file of its own, and the workload is
// deterministic, so this process knows every write's operations. After each
// kill:
//  - checkStore on the store as the kill left it may only report what a crash
//    leaves and an open repairs;
//  - the store opens, and equals the result of a prefix of the issued writes
//    that holds every acknowledged one (in-flight writes may or may not be
//    there; nothing out of order; no batch half there);
//  - closed again, it checks healthy.
// Writes past that prefix died with the process; the next writer issues
// them again. test/reliability-kill.test.ts runs a few cycles per target;
// bench/soak.ts runs thousands.
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { open } from '../../src/db'
import { checkStore } from '../../src/check'
import { seededRandom } from '../../src/device'
import { type IssuedWrite, type Operation, applyWrites, matchingPrefix, writeWorkload } from './crash'
import { contents } from './store'
import { type Compression, onlyCrashLeftovers } from './power'

/** The store the writer opens: it grows to 15× its expected keys, so buckets split. */
export const KILL_STORE = { expectedKeys: 200, keySize: 9, valueSize: 40, size: 256 * 1024 * 1024, writeBufferSize: 2 * 1024 * 1024 }
const WRITER = path.join(__dirname, 'kill-writer.js')
/** A writer that prints nothing this long after it was spawned is stuck. */
const WRITER_START_TIMEOUT_MS = 60_000

/** One write of the kill workload. */
export interface KillWrite {
  operations: Operation[]
  sync: boolean
  /** Whether the write must survive the process dying once it resolved. */
  survivesKill: boolean
  /** The writer calls flush() after issuing it. */
  flushAfter: boolean
}

/** The deterministic workload of the kill loop: puts, deletes and batches over 3000 keys, values up to 12 KB. */
export function killWorkload(seed: number, compression: Compression): () => KillWrite {
  const next = writeWorkload(seed, 3000)
  const random = seededRandom(seed ^ 0x5eed)
  return () => {
    const sync = random() < (compression === 'lz4' ? 0.85 : 0.5)
    return { operations: next(), sync, survivesKill: sync || compression === 'none', flushAfter: random() < 0.03 }
  }
}

export interface KillTarget {
  /** An image file (created by the first writer) or a block device. */
  path: string
  compression: Compression
}

export interface KillFigures {
  cycles: number
  issued: number
  acknowledged: number
  /** In-flight writes found in the store after a kill, and lost with the process. */
  inFlightKept: number
  inFlightLost: number
  /** Bytes the lz4 cleaner had moved by the last cycle (0 in raw mode). */
  cleanedBytes: number
  buckets: number
  keys: number
  failures: string[]
}

interface WriterRun {
  issued: number
  acked: number
}

/** Runs the writer from write `start` until it is killed `delayMs` after it is ready. */
function runWriter(target: KillTarget, seed: number, start: number, delayMs: number): Promise<WriterRun> {
  const recordFile = path.join(os.tmpdir(), `cubby-kill-${process.pid}-${start}-${delayMs}.record`)
  fs.writeFileSync(recordFile, '')
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, target.path, target.compression, String(seed), String(start), recordFile], { stdio: ['ignore', 'pipe', 'pipe'] })
    let errors = ''
    const stuck = setTimeout(() => child.kill('SIGKILL'), WRITER_START_TIMEOUT_MS)
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk: string) => {
      if (chunk.includes('ready')) {
        clearTimeout(stuck)
        setTimeout(() => child.kill('SIGKILL'), delayMs)
      }
    })
    child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()))
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(stuck)
      if (signal !== 'SIGKILL' || errors.length > 0) {
        reject(new Error(`the writer exited with ${code ?? signal}: ${errors}`))
        return
      }
      let issued = start - 1
      let acked = start - 1
      for (const line of fs.readFileSync(recordFile, 'utf8').split('\n')) {
        if (line.startsWith('issue ')) issued = Math.max(issued, Number(line.slice(6)))
        else if (line.startsWith('ack ')) acked = Math.max(acked, Number(line.slice(4)))
      }
      fs.rmSync(recordFile, { force: true })
      resolve({ issued: issued + 1, acked: acked + 1 })
    })
  })
}

/**
 * Runs `cycles` kill cycles on `target` (a new or empty store). Stops at the
 * first failure, leaving the store as it was for inspection.
 */
export async function killLoop(target: KillTarget, cycles: number, seed: number, delayMs: { min: number; max: number }): Promise<KillFigures> {
  const figures: KillFigures = { cycles: 0, issued: 0, acknowledged: 0, inFlightKept: 0, inFlightLost: 0, cleanedBytes: 0, buckets: 0, keys: 0, failures: [] }
  const random = seededRandom(seed * 7919)
  const next = killWorkload(seed, target.compression)
  // Writes from `applied` on, generated once each; the state before them is `base`.
  let base = new Map<string, Buffer>()
  let applied = 0
  let pending: IssuedWrite[] = []
  for (let cycle = 0; cycle < cycles; cycle++) {
    const delay = delayMs.min + Math.floor(random() * (delayMs.max - delayMs.min))
    const run = await runWriter(target, seed, applied, delay)
    while (pending.length < run.issued - applied) pending.push({ operations: next().operations, status: 'pending' })
    pending.forEach((write, index) => (write.status = applied + index < run.acked ? 'acked' : 'pending'))
    const label = `${target.compression} on ${target.path}, cycle ${cycle} (killed ${delay} ms after it was ready; writes ${applied}..${run.issued}, ${run.acked} acknowledged)`
    const before = await checkStore(target.path)
    if (!onlyCrashLeftovers(before)) figures.failures.push(`${label}: the killed store checks with ${JSON.stringify(before.problems.slice(0, 3))}`)
    let state: Map<string, Buffer>
    try {
      const db = await open(target.path, { create: false })
      try {
        state = await contents(db)
      } finally {
        await db.close()
      }
    } catch (error) {
      figures.failures.push(`${label}: the store does not open: ${(error as Error).message}`)
      break
    }
    const prefix = matchingPrefix(pending.slice(0, run.issued - applied), state, base)
    if (prefix < 0) {
      figures.failures.push(`${label}: the store is no prefix of the issued writes holding every acknowledged one`)
      break
    }
    const after = await checkStore(target.path)
    if (!after.healthy) figures.failures.push(`${label}: reopened and closed, the store checks with ${JSON.stringify(after.problems.slice(0, 3))}`)
    figures.cycles++
    figures.issued += run.issued - applied
    figures.acknowledged += Math.max(0, run.acked - applied)
    figures.inFlightKept += Math.max(0, applied + prefix - Math.max(run.acked, applied))
    figures.inFlightLost += run.issued - (applied + prefix)
    figures.cleanedBytes = after.counts['lz4 cleaner bytes moved'] ?? 0
    figures.buckets = after.counts.buckets ?? 0
    figures.keys = after.counts.keys ?? 0
    // Writes past the prefix died with the process: the next writer issues them again.
    base = applyWrites(pending.slice(0, prefix), base)
    pending = pending.slice(prefix)
    applied += prefix
    if (figures.failures.length > 0) break
  }
  return figures
}
