// Injected I/O errors in both compression modes: for open, put, batch, get,
// flush and close, fail the Nth read, write, sync or discard of the volume,
// once and persistently, for N = 1, 2, ... until the operation completes
// without reaching the failure (helpers/faults.ts has the rules every case
// must keep: success or a typed CUBBY_IO; writes refused after a failed
// write, flush or sync; nothing acknowledged lost on reopening; healthy
// check).
//
// Every N is tried in CI (it takes seconds); FAULT_STRIDE=<k> tries every kth.
// The soak runs the sweep over more stores.
import test from 'ava'
import { openOnVolume } from '../src/db'
import { FaultyVolume, MemoryVolume } from '../src/device'
import { ErrorCode } from '../src/errors'
import { FAULTED_OPERATIONS, FAULT_KINDS, faultBase, sweepFault } from './helpers/faults'
import { rejectsWith } from './helpers/store'
import type { Compression } from './helpers/power'

const STRIDE = Number(process.env.FAULT_STRIDE ?? 1)

for (const compression of ['none', 'lz4'] as Compression[]) {
  for (const persistent of [false, true]) {
    test.serial(`every ${persistent ? 'persistent' : 'one-off'} I/O error in open, put, batch, get, flush and close ends in success or CUBBY_IO, and loses nothing acknowledged (${compression})`, async (t) => {
      const base = await faultBase(compression, 17)
      const failures: string[] = []
      const reached: string[] = []
      let cases = 0
      for (const operation of FAULTED_OPERATIONS) {
        for (const kind of FAULT_KINDS) {
          const sweep = await sweepFault(base, operation, kind, persistent, STRIDE)
          cases += sweep.cases
          failures.push(...sweep.failures)
          if (sweep.reached > 0) reached.push(`${operation}/${kind} ≥${sweep.reached}`)
        }
      }
      t.deepEqual(failures.slice(0, 6), [])
      t.log(`${cases} cases; calls reached per operation/kind: ${reached.join(', ')}`)
    })
  }
}

for (const compression of ['none', 'lz4'] as Compression[]) {
  test(`regression: close() whose final flush fails rejects with CUBBY_IO instead of resolving as if it had flushed (${compression})`, async (t) => {
    const base = await faultBase(compression, 3)
    const faulty = new FaultyVolume(new MemoryVolume({}, base.backing))
    const db = await openOnVolume(faulty, { create: false })
    await db.put('written', 'before the close')
    faulty.failNext({ operation: 'sync', nth: 1, persistent: true })
    const closing = db.close()
    await rejectsWith(t, closing, ErrorCode.IO, 'the failed flush is reported')
    t.false(db.isOpen)
    t.is(db.close(), closing, 'close() stays idempotent: every call returns the same promise')
    const again = await openOnVolume(new MemoryVolume({}, base.backing), { create: false })
    t.is((await again.get('written'))?.toString(), 'before the close', 'the acknowledged write is in the log')
    await again.close()
  })
}
