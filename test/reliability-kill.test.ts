// kill -9 at random moments: a writer process under mixed load (puts,
// deletes, batches, sync and not, large values in extents, flushes, bucket
// splits as the store grows, and in lz4 mode checkpoints and segment
// cleaning) is SIGKILLed at a random moment, again and again, on an image
// file and on a loop device, in both compression modes. After every kill
// the store opens and holds every acknowledged write (helpers/kill-loop.ts:
// the expected state is kept outside the store), and checks healthy once
// closed. Loop devices need root; without it those tests are skipped with
// the reason printed.
//
// Long form: KILL_CYCLES=<cycles per target> (default 8; 32 in all);
// `npm run soak -- --kill-cycles 5000`.
import test from 'ava'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { type KillFigures, killLoop } from './helpers/kill-loop'
import { loopUnavailableReason, withLoopDevice } from './helpers/loop'
import type { Compression } from './helpers/power'

const CYCLES = Number(process.env.KILL_CYCLES ?? 8)
const DELAY_MS = { min: 20, max: 400 }
const LOOP_BYTES = 256 * 1024 * 1024
const loopReason = loopUnavailableReason()
if (loopReason !== undefined) console.log(`reliability-kill: loop device cycles skipped: ${loopReason}`)
const loopTest = loopReason === undefined ? test.serial : test.skip

function describe(figures: KillFigures): string {
  return (
    `${figures.cycles} kills; ${figures.acknowledged} acknowledged of ${figures.issued} issued writes ` +
    `(in flight at the kill: ${figures.inFlightKept} kept, ${figures.inFlightLost} lost); ` +
    `store ${figures.keys} keys in ${figures.buckets} buckets; ${figures.cleanedBytes} bytes moved by cleaning`
  )
}

for (const compression of ['lz4', 'none'] as Compression[]) {
  test.serial(`a writer killed at random moments loses nothing acknowledged: image file (${compression}, ${CYCLES} cycles)`, async (t) => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'cubby-kill-'))
    const figures = await killLoop({ path: path.join(directory, 'store.img'), compression }, CYCLES, 4242, DELAY_MS)
    t.deepEqual(figures.failures, [])
    t.is(figures.cycles, CYCLES)
    t.true(figures.acknowledged > 0)
    t.log(describe(figures))
    if (figures.failures.length === 0) fs.rmSync(directory, { recursive: true, force: true })
    else t.log(`store kept at ${directory} for inspection`)
  })

  loopTest(`a writer killed at random moments loses nothing acknowledged: loop device (${compression}, ${CYCLES} cycles)`, async (t) => {
    await withLoopDevice({ bytes: LOOP_BYTES }, async (loop) => {
      const figures = await killLoop({ path: loop.device, compression }, CYCLES, 4343, DELAY_MS)
      t.deepEqual(figures.failures, [])
      t.is(figures.cycles, CYCLES)
      t.log(describe(figures))
    })
  })
}
