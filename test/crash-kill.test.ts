// kill -9 at random moments: a writer process issues sync writes (puts,
// deletes, batches, large values, bucket splits as the store grows) to an
// image file and is SIGKILLed after a random delay. The expected state lives
// outside the store: the writer records each write before issuing it and
// each acknowledgement after its promise resolved, in a file of its own. After every kill the
// store must open and equal the result of a prefix of the issued writes that
// holds every acknowledged one.
//
// KILL_CYCLES=<n> runs n cycles (default 24).
import test from 'ava'
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { open } from '../src/db'
import { type IssuedWrite, applyWrites, matchingPrefix, writeWorkload } from './helpers/crash'
import { seededRandom } from './helpers/store'

const CYCLES = Number(process.env.KILL_CYCLES ?? 24)
const SEED = 4242
const WRITER = path.join(__dirname, 'helpers', 'kill-writer.js')

interface Cycle {
  issued: number
  acked: number
}

/** Runs the writer from write `start` until it is killed after `delayMs` of writing. */
function runWriter(file: string, start: number, delayMs: number): Promise<Cycle> {
  const recordFile = `${file}.record`
  fs.writeFileSync(recordFile, '')
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, file, String(SEED), String(start), recordFile], { stdio: ['ignore', 'pipe', 'pipe'] })
    let errors = ''
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk: string) => {
      if (chunk.includes('ready')) setTimeout(() => child.kill('SIGKILL'), delayMs)
    })
    child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()))
    child.on('error', reject)
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') {
        reject(new Error(`the writer exited with ${code}: ${errors}`))
        return
      }
      let issued = start - 1
      let acked = start - 1
      for (const line of fs.readFileSync(recordFile, 'utf8').split('\n')) {
        if (line.startsWith('issue ')) issued = Math.max(issued, Number(line.slice(6)))
        else if (line.startsWith('ack ')) acked = Math.max(acked, Number(line.slice(4)))
      }
      resolve({ issued: issued + 1, acked: acked + 1 })
    })
  })
}

/** How the recovered state differs from the acknowledged writes: the first few keys, with the last write that touched each. */
function describeDifference(writes: readonly IssuedWrite[], acked: number, state: ReadonlyMap<string, Buffer>): string {
  const expected = applyWrites(writes.slice(0, acked))
  const keys = new Set([...expected.keys(), ...state.keys()])
  const differences: string[] = []
  for (const key of keys) {
    const want = expected.get(key)
    const got = state.get(key)
    if (want === undefined ? got === undefined : got !== undefined && want.equals(got)) continue
    let last = -1
    writes.forEach((write, index) => {
      if (write.operations.some((operation) => operation.key === key)) last = index
    })
    differences.push(`${key}: want ${want?.length ?? 'none'} bytes, got ${got?.length ?? 'none'} (last written by write ${last})`)
  }
  return `${differences.length} keys differ from the acknowledged state: ${differences.slice(0, 8).join('; ')}`
}

test.serial(`a writer killed with SIGKILL at random moments never loses an acknowledged write (${CYCLES} cycles)`, async (t) => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'cubby-kill-'))
  const file = path.join(directory, 'store.img')
  const random = seededRandom(SEED)
  const next = writeWorkload(SEED, 3000)
  const workload: Array<ReturnType<typeof next>> = []
  const operationsOf = (index: number): ReturnType<typeof next> => {
    while (workload.length <= index) workload.push(next())
    return workload[index]!
  }
  const writes: IssuedWrite[] = []
  let applied = 0
  let totalAcked = 0
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const delayMs = 30 + Math.floor(random() * 400)
    const { issued, acked } = await runWriter(file, applied, delayMs)
    while (writes.length < issued) writes.push({ operations: operationsOf(writes.length), status: 'pending' })
    writes.length = issued
    for (let index = applied; index < issued; index++) writes[index]!.status = index < acked ? 'acked' : 'pending'
    totalAcked += acked - applied
    const db = await open(file, { create: false })
    const state = new Map<string, Buffer>()
    for await (const [key, value] of db.entries()) state.set(key.toString(), value)
    const stats = db.stats()
    await db.close()
    const prefix = matchingPrefix(writes, state)
    if (process.env.KILL_TRACE !== undefined) fs.appendFileSync(process.env.KILL_TRACE, `cycle ${cycle} start ${applied} issued ${issued} acked ${acked} prefix ${prefix} delay ${delayMs}\n`)
    t.true(prefix >= acked, `cycle ${cycle} (killed after ${delayMs} ms, ${acked} acknowledged of ${issued} issued): recovered state is no prefix holding every acknowledged write`)
    if (prefix < 0) {
      t.log(`store kept at ${file} for inspection; ${describeDifference(writes, acked, state)}`)
      return
    }
    // Writes past the prefix were lost with the process; the writer issues them again (the workload is deterministic).
    writes.length = prefix
    for (const write of writes) write.status = 'acked'
    applied = prefix
    if (cycle === CYCLES - 1) t.log(`${CYCLES} kills; ${totalAcked} acknowledged writes; final store ${stats.keys} keys in ${stats.buckets} buckets`)
  }
  fs.rmSync(directory, { recursive: true, force: true })
})
