// The child process of test/reliability-lifecycle.test.ts. argv: store path,
// compression ('lz4' | 'none'), what to do, record file.
//  - 'exit' / 'throw': writes the kill workload with up to eight writes in
//    flight, appending "ack <n>" to the record file (write(2), so nothing is
//    lost) when write n resolved and must survive the process; after a seeded
//    number of acknowledgements it leaves without close(): process.exit(0),
//    or an exception nobody catches.
//  - 'hold': opens the store, prints "ready", and waits to be killed.
//  - 'open': tries to open the store; prints "opened" or the error's code.
import * as fs from 'node:fs'
import { open } from '../../src/db'
import { seededRandom } from '../../src/device'
import { KILL_STORE, killWorkload } from './kill-loop'

/** The seed of the workload a child leaving by `action` writes (the test regenerates it). */
export function exitSeed(action: string): number {
  return action === 'exit' ? 101 : 202
}

async function main(): Promise<void> {
  const [target, compression, action, recordFile] = process.argv.slice(2)
  if (compression !== 'lz4' && compression !== 'none') throw new Error(`compression must be lz4 or none, not ${compression}`)
  if (action === 'open') {
    try {
      const db = await open(target!, { create: false })
      process.stdout.write('opened')
      await db.close()
    } catch (error) {
      process.stdout.write(String((error as { code?: string }).code))
    }
    return
  }
  const db = await open(target!, { ...KILL_STORE, compression })
  if (action === 'hold') {
    process.stdout.write('ready\n')
    setInterval(() => undefined, 1000)
    return
  }
  const record = fs.openSync(recordFile!, 'a')
  const seed = exitSeed(action!)
  const next = killWorkload(seed, compression)
  const leaveAfter = 20 + Math.floor(seededRandom(seed)() * 200)
  let acknowledged = 0
  const leave = (): void => {
    if (action === 'exit') process.exit(0)
    setImmediate(() => {
      throw new Error('an exception nobody catches, with writes in flight')
    })
  }
  const inFlight = new Set<Promise<void>>()
  for (let index = 0; ; index++) {
    const write = next()
    const promise = db.batch(write.operations, { sync: write.sync }).then(() => {
      if (write.survivesKill) fs.writeSync(record, `ack ${index}\n`)
      if (++acknowledged === leaveAfter) leave()
    })
    inFlight.add(promise)
    void promise.finally(() => inFlight.delete(promise))
    while (inFlight.size >= 8) await Promise.race(inFlight)
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`lifecycle-child: ${String((error as Error).stack ?? error)}\n`)
    process.exit(3)
  })
}
