// The benchmark's workload mixes, operation streams, keys and values.
import test from 'ava'
import { keyFor, permute48, ValueSource, valueMatches, VALUE_TAG_BYTES } from '../bench/lib/keys'
import { Random } from '../bench/lib/random'
import {
  AcknowledgedCounter,
  LoadStream,
  OPERATION_KINDS,
  OperationChooser,
  OperationStream,
  WORKLOADS,
  type OperationKind,
  type WorkloadId,
} from '../bench/lib/workloads'

test('each workload issues its operation kinds in YCSB’s proportions', (t) => {
  const draws = 200_000
  for (const id of Object.keys(WORKLOADS) as WorkloadId[]) {
    const spec = WORKLOADS[id]
    const chooser = new OperationChooser(spec.proportions, new Random(21, `mix-${id}`))
    const counts: Record<OperationKind, number> = { read: 0, update: 0, insert: 0, readModifyWrite: 0 }
    for (let draw = 0; draw < draws; draw++) counts[chooser.next()]++
    for (const kind of OPERATION_KINDS) {
      const expected = spec.proportions[kind]
      const sigma = Math.sqrt((expected * (1 - expected)) / draws)
      t.true(Math.abs(counts[kind] / draws - expected) <= 5 * sigma, `workload ${id}, ${kind}: ${counts[kind] / draws} vs ${expected}`)
      if (expected === 0) t.is(counts[kind], 0)
    }
  }
})

test('the YCSB mixes are the published ones', (t) => {
  t.deepEqual(WORKLOADS.A.proportions, { read: 0.5, update: 0.5, insert: 0, readModifyWrite: 0 })
  t.deepEqual(WORKLOADS.B.proportions, { read: 0.95, update: 0.05, insert: 0, readModifyWrite: 0 })
  t.deepEqual(WORKLOADS.C.proportions, { read: 1, update: 0, insert: 0, readModifyWrite: 0 })
  t.deepEqual(WORKLOADS.D.proportions, { read: 0.95, update: 0, insert: 0.05, readModifyWrite: 0 })
  t.deepEqual(WORKLOADS.F.proportions, { read: 0.5, update: 0, insert: 0, readModifyWrite: 0.5 })
  t.deepEqual(WORKLOADS.D.distributions, ['latest'])
})

test('proportions that do not sum to 1 are refused', (t) => {
  t.throws(() => new OperationChooser({ read: 0.5, update: 0.4, insert: 0, readModifyWrite: 0 }, new Random(1)), { instanceOf: RangeError })
})

test('an operation stream is the same for the same seed and name, and differs otherwise', (t) => {
  const take = (seed: number, name: string) => {
    const stream = new OperationStream({ proportions: WORKLOADS.A.proportions, distribution: 'zipfian', existingRecords: 100_000, seed, streamName: name, concurrency: 8 })
    return Array.from({ length: 2000 }, () => stream.next())
  }
  t.deepEqual(take(1, 'A/zipfian'), take(1, 'A/zipfian'))
  t.notDeepEqual(take(1, 'A/zipfian'), take(2, 'A/zipfian'))
  t.notDeepEqual(take(1, 'A/zipfian'), take(1, 'B/zipfian'))
})

test('uniform key choice covers the existing records evenly', (t) => {
  const records = 1000
  const stream = new OperationStream({ proportions: WORKLOADS.C.proportions, distribution: 'uniform', existingRecords: records, seed: 3, streamName: 'u', concurrency: 1 })
  const counts = new Float64Array(records)
  let outOfRange = 0
  const draws = 500_000
  for (let draw = 0; draw < draws; draw++) {
    const { keyNumber } = stream.next()
    if (keyNumber >= 0 && keyNumber < records) counts[keyNumber]++
    else outOfRange++
  }
  t.is(outOfRange, 0)
  const expected = draws / records
  t.true(counts.every((count) => Math.abs(count - expected) < 6 * Math.sqrt(expected)))
})

test('workload D inserts new key numbers in order and reads only acknowledged ones', (t) => {
  const existing = 500
  const stream = new OperationStream({ proportions: WORKLOADS.D.proportions, distribution: 'latest', existingRecords: existing, seed: 4, streamName: 'D', concurrency: 4 })
  const pending: number[] = []
  let nextExpectedInsert = existing
  let acknowledged = existing - 1
  for (let step = 0; step < 20_000; step++) {
    const operation = stream.next()
    if (operation.kind === 'insert') {
      t.is(operation.keyNumber, nextExpectedInsert++)
      pending.push(operation.keyNumber)
    } else {
      t.is(operation.kind, 'read')
      t.true(operation.keyNumber <= acknowledged, `read ${operation.keyNumber} beyond acknowledged ${acknowledged}`)
    }
    if (pending.length >= 3) {
      const done = pending.splice(1, 1)[0] as number
      stream.acknowledgeInsert(done)
      stream.acknowledgeInsert(pending.shift() as number)
      acknowledged = Math.max(acknowledged, done)
    }
  }
  t.is(stream.insertedUpTo, nextExpectedInsert)
})

test('the acknowledged counter advances only over a contiguous prefix and refuses acks outside its window', (t) => {
  const counter = new AcknowledgedCounter(10, 4)
  t.is(counter.latestContiguous, 9)
  counter.acknowledge(11)
  t.is(counter.latestContiguous, 9)
  counter.acknowledge(10)
  t.is(counter.latestContiguous, 11)
  t.throws(() => counter.acknowledge(16), { instanceOf: RangeError })
  t.throws(() => counter.acknowledge(11), { instanceOf: RangeError })
})

test('a load stream inserts exactly the asked range', (t) => {
  const stream = new LoadStream(5, 9)
  const keys: number[] = []
  for (let operation = stream.next(); operation !== undefined; operation = stream.next()) keys.push(operation.keyNumber)
  t.deepEqual(keys, [5, 6, 7, 8])
})

test('keys are YCSB-style, of the asked size, and distinct for distinct key numbers', (t) => {
  const seen = new Set<string>()
  for (let keyNumber = 0; keyNumber < 100_000; keyNumber++) seen.add(keyFor(keyNumber, 24).toString('latin1'))
  t.is(seen.size, 100_000)
  const key = keyFor(12345, 24)
  t.is(key.length, 24)
  t.regex(key.toString('latin1'), /^user\d{20}$/)
  t.is(keyFor(12345, 40).length, 40)
  const permuted = new Set<number>()
  const random = new Random(8, 'permute')
  for (let index = 0; index < 50_000; index++) {
    const value = permute48(random.nextBelow(2 ** 48))
    t.true(value >= 0 && value < 2 ** 48)
    permuted.add(value)
  }
  t.true(permuted.size > 49_990)
  t.not(permute48(1), 1)
})

test('values carry their key number, so a read of the wrong key is caught', (t) => {
  const values = new ValueSource(100, 1, 'values')
  const value = values.valueFor(2 ** 40 + 3)
  t.is(value.length, 100)
  t.true(valueMatches(value, 2 ** 40 + 3, 100))
  t.false(valueMatches(value, 3, 100))
  t.false(valueMatches(value.subarray(0, 99), 2 ** 40 + 3, 100))
  t.not(values.valueFor(7).subarray(VALUE_TAG_BYTES).toString('hex'), values.valueFor(7).subarray(VALUE_TAG_BYTES).toString('hex'))
  const again = new ValueSource(100, 1, 'values')
  t.deepEqual(again.valueFor(2 ** 40 + 3), value)
})
