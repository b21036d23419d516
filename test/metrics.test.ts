// db.metrics(): the exposition parses under a strict reader in both formats,
// and its figures are the store's: operation counts and latencies, stats(),
// device and volume I/O, group commit, compression and cleaning.
import test from 'ava'
import { ErrorCode } from '../src/errors'
import { canonicalBound, METRICS_CONTENT_TYPES } from '../src/metrics/exposition'
import { Histogram } from '../src/metrics/histogram'
import { type Family, parseExposition, sampleValue } from './helpers/exposition'
import { memoryStore, rejectsWith, reopen } from './helpers/store'

function family(families: Family[], name: string): Family {
  const found = families.find((candidate) => candidate.name === name)
  if (found === undefined) throw new Error(`no family ${name}`)
  return found
}

test('le bounds use the canonical rendering of the OpenMetrics specification', (t) => {
  const expected: Array<[number, string]> = [
    [0, '0.0'],
    [0.001, '0.001'],
    [0.01, '0.01'],
    [0.1, '0.1'],
    [0.95, '0.95'],
    [1, '1.0'],
    [1.7, '1.7'],
    [10, '10.0'],
    [1e-10, '1e-10'],
    [1e-9, '1e-09'],
    [1e-5, '1e-05'],
    [5e-6, '5e-06'],
    [2.5e-5, '2.5e-05'],
    [0.0001, '0.0001'],
    [100000, '100000.0'],
    [1e6, '1e+06'],
    [1e10, '1e+10'],
    [1.1e23, '1.1e+23'],
    [Infinity, '+Inf'],
  ]
  for (const [value, text] of expected) t.is(canonicalBound(value), text, String(value))
})

test('a histogram puts each value in the first bucket whose bound is at or above it', (t) => {
  const histogram = new Histogram([1, 2, 4])
  for (const value of [0, 1, 1.5, 2, 3, 4, 5, 100]) histogram.observe(value)
  t.deepEqual([...histogram.counts], [2, 2, 2, 2])
  t.is(histogram.count, 8)
  t.is(histogram.sum, 116.5)
  t.throws(() => new Histogram([2, 1]), { instanceOf: RangeError })
})

test('the OpenMetrics exposition parses, ends with # EOF, and counts every call by kind and result', async (t) => {
  const { db } = await memoryStore({ compression: 'lz4' })
  await db.put('a', '1')
  await db.put('b', '2')
  await db.del('a')
  await db.batch([{ type: 'put', key: 'c', value: '3' }])
  t.is(await db.get('b')?.then((value) => value?.toString()), '2')
  t.is(await db.get('a'), undefined)
  t.true(await db.has('b'))
  t.deepEqual(await db.getMany(['b', 'zz']).then((values) => values.map((value) => value?.toString())), ['2', undefined])
  await rejectsWith(t, db.get(''), ErrorCode.INVALID_KEY)
  await rejectsWith(t, db.put('k', 5 as unknown as string), ErrorCode.INVALID_VALUE)
  await rejectsWith(t, db.batch('nope' as never), ErrorCode.INVALID_ARGUMENT)

  const text = db.metrics()
  t.true(text.endsWith('# EOF\n'))
  const families = parseExposition(text, 'openmetrics')
  const count = (op: string, result: string): number => sampleValue(families, 'cubby_operations_total', { op, result })
  t.is(count('put', 'ok'), 2)
  t.is(count('put', 'error'), 1)
  t.is(count('del', 'ok'), 1)
  t.is(count('batch', 'ok'), 1)
  t.is(count('batch', 'error'), 1)
  t.is(count('get', 'ok'), 2)
  t.is(count('get', 'error'), 1)
  t.is(count('has', 'ok'), 1)
  t.is(count('getMany', 'ok'), 1)
  t.is(sampleValue(families, 'cubby_operation_duration_seconds_count', { op: 'get' }), 3)
  t.is(sampleValue(families, 'cubby_operation_duration_seconds_bucket', { op: 'put', le: '+Inf' }), 3)
  t.true(sampleValue(families, 'cubby_operation_duration_seconds_sum', { op: 'put' }) > 0)
  const durations = family(families, 'cubby_operation_duration_seconds')
  t.is(durations.type, 'histogram')
  t.is(durations.unit, 'seconds')
  t.is(family(families, 'cubby_operations').type, 'counter')
  t.is(sampleValue(families, 'cubby_store_info', { compression: 'lz4', io_path: 'memory', format_version: '1' }), 1)
  for (const entry of families) t.truthy(entry.help, `${entry.name} has HELP`)
  await db.close()
})

test('stats figures, device and volume I/O, memory by part and compression come from the store', async (t) => {
  const { db } = await memoryStore({ compression: 'lz4' })
  for (let index = 0; index < 3000; index++) await db.put(`key-${index}`, Buffer.alloc(40, index % 251), { sync: false })
  await db.flush()
  for (let index = 0; index < 100; index++) await db.get(`key-${index * 7}`)
  const stats = db.stats()
  const families = parseExposition(db.metrics(), 'openmetrics')
  const value = (name: string, labels?: Record<string, string>): number => sampleValue(families, name, labels)
  t.is(value('cubby_keys'), 3000)
  t.is(value('cubby_keys'), stats.keys)
  t.is(value('cubby_buckets'), stats.buckets)
  t.is(value('cubby_load_factor'), stats.loadFactor)
  t.is(value('cubby_overflow_buckets'), stats.overflowBuckets)
  t.is(value('cubby_flush_steps_total'), stats.flushSteps)
  t.is(value('cubby_generation'), stats.generation)
  t.is(value('cubby_cache_hits_total') + value('cubby_cache_misses_total'), stats.cache.hits + stats.cache.misses)
  t.is(value('cubby_device_read_blocks_total'), stats.device.reads)
  t.is(value('cubby_device_written_bytes_total'), stats.device.bytesWritten)
  t.is(value('cubby_device_flushes_total'), stats.device.flushes)
  t.is(value('cubby_logical_bytes'), stats.device.logicalBytes)
  t.is(value('cubby_physical_bytes'), stats.device.physicalBytes)
  t.is(value('cubby_compression_ratio'), stats.device.compressionRatio)
  t.true(value('cubby_compression_ratio') > 1, 'part-empty buckets compress')
  t.true(value('cubby_volume_written_bytes_total') > 0)
  t.true(value('cubby_cleaning_write_amplification') >= 1)
  t.true(value('cubby_compressed_live_bytes') > 0)
  let memory = 0
  for (const [part, bytes] of Object.entries(stats.memory)) {
    if (part === 'total') continue
    t.is(value('cubby_memory_bytes', { part }), bytes, part)
    memory += bytes
  }
  t.is(memory, stats.memory.total)
  t.is(family(families, 'cubby_memory_bytes').unit, 'bytes')
  await db.close()
})

test('group commit: concurrent writes share log frames, and the histogram counts writes per frame', async (t) => {
  const { db } = await memoryStore({ compression: 'none' })
  await Promise.all(Array.from({ length: 200 }, (_, index) => db.put(`k${index}`, 'v')))
  await db.batch([
    { type: 'put', key: 'x', value: '1' },
    { type: 'put', key: 'y', value: '2' },
  ])
  const stats = db.stats()
  const families = parseExposition(db.metrics(), 'openmetrics')
  const commits = sampleValue(families, 'cubby_log_commits_total')
  t.is(commits, stats.log.commits)
  t.is(sampleValue(families, 'cubby_log_committed_writes_total'), 201)
  t.is(sampleValue(families, 'cubby_log_records_total'), 202)
  t.true(commits < 201, `200 concurrent puts took ${commits} frames`)
  t.is(sampleValue(families, 'cubby_log_synced_commits_total'), commits, 'every write was sync')
  t.is(sampleValue(families, 'cubby_log_group_commit_size_count'), commits)
  t.is(sampleValue(families, 'cubby_log_group_commit_size_sum'), 201)
  t.is(sampleValue(families, 'cubby_log_group_commit_size_bucket', { le: '1.0' }) <= commits, true)
  t.false(families.some((entry) => entry.name.startsWith('cubby_cleaning')), 'no cleaning families on a raw store')
  t.is(sampleValue(families, 'cubby_store_info', { compression: 'none' }), 1)
  await db.close()
})

test('the Prometheus 0.0.4 format: no # EOF, no UNIT, counters typed by their _total name, info as a gauge', async (t) => {
  const { db } = await memoryStore()
  await db.put('a', 'b')
  const text = db.metrics({ format: 'prometheus' })
  t.false(text.includes('# EOF'))
  t.false(text.includes('# UNIT'))
  const families = parseExposition(text, 'prometheus')
  t.is(family(families, 'cubby_operations_total').type, 'counter')
  t.is(family(families, 'cubby_store_info').type, 'gauge')
  t.is(sampleValue(families, 'cubby_operations_total', { op: 'put', result: 'ok' }), 1)
  t.is(family(families, 'cubby_operation_duration_seconds').type, 'histogram')
  t.is(METRICS_CONTENT_TYPES.prometheus, 'text/plain; version=0.0.4; charset=utf-8')
  t.is(METRICS_CONTENT_TYPES.openmetrics, 'application/openmetrics-text; version=1.0.0; charset=utf-8')
  await db.close()
})

test('constant labels go on every sample, escaped', async (t) => {
  const { db } = await memoryStore()
  const awkward = 'a "quoted" \\ path\nand a newline'
  const families = parseExposition(db.metrics({ labels: { store: awkward, shard: '7' } }), 'openmetrics')
  for (const entry of families) {
    for (const sample of entry.samples) {
      t.is(sample.labels.store, awkward, sample.name)
      t.is(sample.labels.shard, '7', sample.name)
    }
  }
  await db.close()
})

test('bad metrics() options are CUBBY_INVALID_ARGUMENT; a closed store is CUBBY_CLOSED', async (t) => {
  const { db } = await memoryStore()
  const bad: unknown[] = [
    'openmetrics',
    { format: 'json' },
    { colour: 'red' },
    { labels: { 'bad-name': 'x' } },
    { labels: { __reserved: 'x' } },
    { labels: { op: 'clash' } },
    { labels: { le: 'clash' } },
    { labels: { store: 7 } },
    { labels: ['x'] },
  ]
  for (const options of bad) {
    const error = t.throws(() => db.metrics(options as never), undefined, JSON.stringify(options))
    t.is((error as { code?: string }).code, ErrorCode.INVALID_ARGUMENT, JSON.stringify(options))
  }
  await db.close()
  const error = t.throws(() => db.metrics())
  t.is((error as { code?: string }).code, ErrorCode.CLOSED)
})

test('writes refused by a read-only store count as errors of their kind', async (t) => {
  const { db, backing } = await memoryStore()
  await db.put('a', 'b')
  await db.close()
  const readOnly = await reopen(backing, { readOnly: true })
  await rejectsWith(t, readOnly.put('a', 'c'), ErrorCode.READ_ONLY)
  await rejectsWith(t, readOnly.del('a'), ErrorCode.READ_ONLY)
  t.is((await readOnly.get('a'))?.toString(), 'b')
  const families = parseExposition(readOnly.metrics(), 'openmetrics')
  t.is(sampleValue(families, 'cubby_operations_total', { op: 'put', result: 'error' }), 1)
  t.is(sampleValue(families, 'cubby_operations_total', { op: 'del', result: 'error' }), 1)
  t.is(sampleValue(families, 'cubby_operations_total', { op: 'get', result: 'ok' }), 1)
  t.is(sampleValue(families, 'cubby_log_commits_total'), 0)
  await readOnly.close()
})

test('the strict reader these tests use rejects what the specifications forbid', (t) => {
  const valid = '# TYPE a counter\n# HELP a x\na_total 1\n# TYPE h histogram\nh_bucket{le="1.0"} 1\nh_bucket{le="+Inf"} 2\nh_count 2\nh_sum 3\n# EOF\n'
  t.is(parseExposition(valid, 'openmetrics').length, 2)
  const broken: Array<[string, string]> = [
    ['no # EOF', '# TYPE a counter\na_total 1\n'],
    ['counter sample without _total', '# TYPE a counter\na 1\n# EOF\n'],
    ['sample before TYPE', 'a_total 1\n# EOF\n'],
    ['interleaved families', '# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n# EOF\n'],
    ['buckets not cumulative', '# TYPE h histogram\nh_bucket{le="1.0"} 2\nh_bucket{le="+Inf"} 1\nh_count 1\nh_sum 1\n# EOF\n'],
    ['no +Inf bucket', '# TYPE h histogram\nh_bucket{le="1.0"} 2\nh_count 2\nh_sum 1\n# EOF\n'],
    ['_count not the +Inf bucket', '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_count 3\nh_sum 1\n# EOF\n'],
    ['UNIT not a suffix', '# TYPE a gauge\n# UNIT a seconds\na 1\n# EOF\n'],
    ['bad escape', '# TYPE a gauge\na{x="\\t"} 1\n# EOF\n'],
    ['duplicate series', '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n# EOF\n'],
    ['bad number', '# TYPE a gauge\na one\n# EOF\n'],
    ['info not 1', '# TYPE a info\na_info{x="1"} 2\n# EOF\n'],
  ]
  for (const [why, text] of broken) t.throws(() => parseExposition(text, 'openmetrics'), undefined, why)
  t.throws(() => parseExposition('# TYPE a gauge\n# UNIT a_bytes bytes\na 1\n', 'prometheus'), undefined, 'UNIT in 0.0.4')
  t.throws(() => parseExposition('# TYPE a_total counter\na_total 1\n# EOF\n', 'prometheus'), undefined, 'EOF in 0.0.4')
})
