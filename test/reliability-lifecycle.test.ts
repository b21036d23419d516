// Lifecycle: close() with many operations in flight (gets, puts, batches,
// iterators, a flush) settles every one of them, done or CUBBY_CLOSED, and
// never crashes, at whatever moment it is called; a second opener of a store,
// in this process or another, gets CUBBY_LOCKED (the native volume's lock),
// and so does checkStore; a process that leaves without close()
// (process.exit, an uncaught exception) loses nothing acknowledged. Both
// compression modes, on image files.
//
// Long form: LIFECYCLE_ROUNDS=<n> close-in-flight rounds per mode (default 12).
import test from 'ava'
import { execFile } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { type CubbyDB, open } from '../src/db'
import { checkStore } from '../src/check'
import { seededRandom } from '../src/device'
import { ErrorCode } from '../src/errors'
import { type IssuedWrite, matchingPrefix } from './helpers/crash'
import { KILL_STORE, killWorkload } from './helpers/kill-loop'
import { exitSeed } from './helpers/lifecycle-child'
import { type Compression, onlyCrashLeftovers } from './helpers/power'
import { contents, memoryStore, rejectsWith } from './helpers/store'

const ROUNDS = Number(process.env.LIFECYCLE_ROUNDS ?? 12)
const CHILD = path.join(__dirname, 'helpers', 'lifecycle-child.js')
/** Every call must settle within this once close() was called; longer is a hang. */
const SETTLE_TIMEOUT_MS = 20_000

function scratch(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'cubby-lifecycle-'))
}

/** Runs the child with `args`; resolves with its stdout, exit code and signal. */
function child(args: string[]): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CHILD, ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ stdout, stderr, code: error === null ? 0 : typeof error.code === 'number' ? error.code : null })
    })
  })
}

type Settled = { what: string; outcome: 'done' | 'closed' | 'other'; detail: string }

/** Issues a mix of calls and closes the store after `delay` turns of the event loop; returns how each settled. */
async function closeWithCallsInFlight(db: CubbyDB, random: () => number, delay: number): Promise<{ settled: Settled[]; acknowledged: Map<string, Buffer> }> {
  const calls: Array<{ what: string; promise: Promise<unknown> }> = []
  const acknowledged = new Map<string, Buffer>()
  const issue = (what: string, promise: Promise<unknown>): void => void calls.push({ what, promise })
  const put = (key: string, value: Buffer, sync: boolean): void => {
    issue(`put ${key}`, db.put(key, value, { sync }).then(() => void acknowledged.set(key, value)))
  }
  const wave = (label: string): void => {
    for (let index = 0; index < 40; index++) {
      const key = `key-${Math.floor(random() * 400)}`
      const roll = random()
      if (roll < 0.4) issue(`get ${key}`, db.get(key))
      else if (roll < 0.75) put(`${label}-${index}`, Buffer.alloc(random() < 0.1 ? 5000 : 50, index), random() < 0.5)
      else if (roll < 0.9) {
        const value = Buffer.alloc(30, index)
        issue(`batch ${label}-${index}`, db.batch([{ type: 'put', key: `${label}-b${index}`, value }, { type: 'del', key }]).then(() => void acknowledged.set(`${label}-b${index}`, value)))
      } else if (roll < 0.95) {
        issue(`entries ${label}-${index}`, (async () => {
          let count = 0
          for await (const pair of db.entries()) if (pair !== undefined) count++
          return count
        })())
      } else issue(`flush ${label}-${index}`, db.flush())
    }
  }
  wave('before')
  for (let turn = 0; turn < delay; turn++) await new Promise((resolve) => setImmediate(resolve))
  const closing = db.close()
  issue('close', closing)
  // Calls made while the store closes are refused.
  wave('during')
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<'hang'>((resolve) => (timer = setTimeout(() => resolve('hang'), SETTLE_TIMEOUT_MS)))
  const settled = await Promise.all(
    calls.map(async ({ what, promise }): Promise<Settled> => {
      const result = await Promise.race([promise.then(() => 'done' as const, (error: unknown) => error), deadline])
      if (result === 'done') return { what, outcome: 'done', detail: '' }
      if (result === 'hang') return { what, outcome: 'other', detail: `did not settle within ${SETTLE_TIMEOUT_MS} ms` }
      const code = (result as { code?: string }).code
      return { what, outcome: code === ErrorCode.CLOSED ? 'closed' : 'other', detail: `${code ?? 'untyped'}: ${(result as Error).message}` }
    }),
  )
  clearTimeout(timer)
  return { settled, acknowledged }
}

for (const compression of ['lz4', 'none'] as Compression[]) {
  test.serial(`close() with gets, puts, batches, iterators and flushes in flight settles every call, done or CUBBY_CLOSED (${compression}, ${ROUNDS} rounds)`, async (t) => {
    const directory = scratch()
    const file = path.join(directory, 'store.img')
    const random = seededRandom(compression === 'lz4' ? 5 : 6)
    const expected = new Map<string, Buffer>()
    const outcomes = { done: 0, closed: 0 }
    for (let round = 0; round < ROUNDS; round++) {
      const db = await open(file, { ...KILL_STORE, compression, cacheSize: 64 * 1024 })
      const { settled, acknowledged } = await closeWithCallsInFlight(db, random, Math.floor(random() * 6))
      for (const call of settled) {
        if (call.outcome === 'other') t.fail(`round ${round}: ${call.what}: ${call.detail}`)
        else outcomes[call.outcome]++
        if (call.what.includes('before') && !call.what.startsWith('entries') && call.outcome !== 'done') t.fail(`round ${round}: ${call.what}, accepted before close(), was refused`)
        if (call.what.includes('during') && call.outcome !== 'closed') t.fail(`round ${round}: ${call.what}, made after close(), was not refused`)
      }
      for (const [key, value] of acknowledged) expected.set(key, value)
      const again = await open(file, { create: false })
      for (const [key, value] of acknowledged) t.deepEqual(await again.get(key), value, `round ${round}: ${key}`)
      await again.close()
    }
    const report = await checkStore(file)
    t.true(report.healthy, JSON.stringify(report.problems.slice(0, 3)))
    t.log(`${ROUNDS} closes: ${outcomes.done} calls done, ${outcomes.closed} refused with CUBBY_CLOSED; ${expected.size} acknowledged keys found again`)
    fs.rmSync(directory, { recursive: true, force: true })
  })

  test.serial(`a second opener gets CUBBY_LOCKED, in this process and in another; so does checkStore (${compression})`, async (t) => {
    const directory = scratch()
    const file = path.join(directory, 'store.img')
    const db = await open(file, { ...KILL_STORE, compression })
    await db.put('held', 'by the first opener')
    await rejectsWith(t, open(file), ErrorCode.LOCKED, 'a second open in this process')
    await rejectsWith(t, open(file, { readOnly: true }), ErrorCode.LOCKED, 'a read-only second open')
    await rejectsWith(t, checkStore(file), ErrorCode.LOCKED, 'checkStore while the store is open')
    const other = await child([file, compression, 'open'])
    t.is(other.stdout, ErrorCode.LOCKED, `another process: ${other.stderr}`)
    t.is((await db.get('held'))?.toString(), 'by the first opener', 'the first opener is unaffected')
    await db.close()
    const after = await child([file, compression, 'open'])
    t.is(after.stdout, 'opened', 'once closed, another process opens it')
    const again = await open(file)
    t.is((await again.get('held'))?.toString(), 'by the first opener')
    await again.close()
    fs.rmSync(directory, { recursive: true, force: true })
  })

  for (const action of ['exit', 'throw'] as const) {
    test.serial(`a process that leaves by ${action === 'exit' ? 'process.exit()' : 'an uncaught exception'} without close() loses nothing acknowledged (${compression})`, async (t) => {
      const directory = scratch()
      const file = path.join(directory, 'store.img')
      const record = path.join(directory, 'record')
      fs.writeFileSync(record, '')
      const run = await child([file, compression, action, record])
      t.is(run.code, action === 'exit' ? 0 : 1, `the child left as planned: ${run.stderr.split('\n')[0]}`)
      let acked = 0
      for (const line of fs.readFileSync(record, 'utf8').split('\n')) if (line.startsWith('ack ')) acked = Math.max(acked, Number(line.slice(4)) + 1)
      t.true(acked >= 20, `${acked} writes acknowledged before the child left`)
      const before = await checkStore(file)
      t.true(onlyCrashLeftovers(before), JSON.stringify(before.problems.slice(0, 3)))
      const next = killWorkload(exitSeed(action), compression)
      const writes: IssuedWrite[] = Array.from({ length: acked + 64 }, (_, index) => ({ operations: next().operations, status: index < acked ? 'acked' : 'pending' }))
      const db = await open(file, { create: false })
      const state = await contents(db)
      await db.close()
      t.true(matchingPrefix(writes, state) >= acked, 'the store holds every acknowledged write, in order')
      t.true((await checkStore(file)).healthy)
      fs.rmSync(directory, { recursive: true, force: true })
    })
  }
}

for (const compression of ['lz4', 'none'] as Compression[]) {
  test(`regression: flush() while a later write's frame is in flight resolves (it failed an assertion: 'nothing to flush, yet the checkpoint lags the log') (${compression})`, async (t) => {
    const { db } = await memoryStore({ compression })
    await db.put('a', 'one')
    await db.flush()
    // The put starts its frame at once; the flush, called first, must not wait for it nor trip over it.
    const flushing = db.flush()
    const putting = db.put('b', 'two')
    await t.notThrowsAsync(flushing)
    await putting
    await db.close()
  })
}
