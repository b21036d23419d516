// The writer process of test/crash-kill.test.ts. Opens the store at argv[2]
// and issues the deterministic workload of seed argv[3] from operation
// argv[4] on, with sync: true and up to four writes in flight. It appends
// "issue <n>" to the record file argv[5] before handing write n to the store,
// and "ack <n>" only after its promise resolved, each with a synchronous
// write(2): the line is in the kernel before the next step, so a SIGKILL can
// not lose it (output on a pipe could be). It prints "ready" on stdout once
// the store is open, and never stops by itself.
import * as fs from 'node:fs'
import { open } from '../../src/db'
import { writeWorkload } from './crash'

async function main(): Promise<void> {
  const [file, seedText, startText, recordFile] = process.argv.slice(2)
  const record = fs.openSync(recordFile!, 'a')
  const next = writeWorkload(Number(seedText), 3000)
  const start = Number(startText)
  for (let index = 0; index < start; index++) next()
  const db = await open(file!, { expectedKeys: 200, keySize: 9, valueSize: 40, size: 256 * 1024 * 1024, writeBufferSize: 2 * 1024 * 1024 })
  process.stdout.write('ready\n')
  const inFlight = new Set<Promise<void>>()
  for (let index = start; ; index++) {
    const operations = next()
    fs.writeSync(record, `issue ${index}\n`)
    const promise = db.batch(operations, { sync: true }).then(() => {
      fs.writeSync(record, `ack ${index}\n`)
    })
    inFlight.add(promise)
    void promise.finally(() => inFlight.delete(promise))
    if (inFlight.size >= 4) await Promise.race(inFlight)
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`kill-writer: ${String((error as Error).stack ?? error)}\n`)
  process.exit(2)
})
