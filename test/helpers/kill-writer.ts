// The writer process of the kill loop (./kill-loop.ts). Opens (creating if
// needed) the store at argv[2] (an image file or a block device) in
// compression mode argv[3], and issues the deterministic workload of seed
// argv[4] from write argv[5] on, with up to four writes in flight, now and
// then a flush(); it never stops by itself. It appends "issue <n>" to the
// record file argv[6] before handing write n to the store, and "ack <n>" once
// its promise resolved, if the write must then survive the process dying:
// sync: true writes, and in raw mode sync: false ones too (they reach the
// device before they resolve; the lz4 device may hold them in memory). Each
// line is a synchronous write(2), in the kernel before the next step, so a
// SIGKILL can not lose it (output on a pipe could be). "ready" on stdout
// says the store is open.
//
// The lz4 device is tuned small (64 KiB segments, 1 MiB checkpoint interval)
// so that checkpoints and segment cleaning happen within a short run.
import * as fs from 'node:fs'
import { openOnVolume } from '../../src/db'
import { openFileVolume } from '../../src/device'
import { KILL_STORE, killWorkload } from './kill-loop'
import { SMALL_LZ4 } from './power'

const IN_FLIGHT = 4

async function main(): Promise<void> {
  const [target, compression, seedText, startText, recordFile] = process.argv.slice(2)
  if (compression !== 'lz4' && compression !== 'none') throw new Error(`compression must be lz4 or none, not ${compression}`)
  const record = fs.openSync(recordFile!, 'a')
  const next = killWorkload(Number(seedText), compression)
  const start = Number(startText)
  for (let index = 0; index < start; index++) next()
  const exists = fs.existsSync(target!) && (target!.startsWith('/dev/') || fs.statSync(target!).size > 0)
  const volume = await openFileVolume(target!, { create: true })
  const db = await openOnVolume(volume, { ...KILL_STORE, compression }, { fresh: !exists && !target!.startsWith('/dev/'), lz4: SMALL_LZ4 })
  process.stdout.write('ready\n')
  const inFlight = new Set<Promise<void>>()
  const track = (promise: Promise<void>): void => {
    inFlight.add(promise)
    void promise.finally(() => inFlight.delete(promise))
  }
  for (let index = start; ; index++) {
    const write = next()
    fs.writeSync(record, `issue ${index}\n`)
    track(
      db.batch(write.operations, { sync: write.sync }).then(() => {
        if (write.survivesKill) fs.writeSync(record, `ack ${index}\n`)
      }),
    )
    if (write.flushAfter) track(db.flush())
    while (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight)
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`kill-writer: ${String((error as Error).stack ?? error)}\n`)
  process.exit(2)
})
