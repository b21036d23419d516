// `cubby create` and `cubby info`, run as the real binary on image files:
// what create makes and refuses to overwrite, and info's figures against
// db.stats() of the same store.
import test from 'ava'
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import { open, plan } from '../src/db'
import { ErrorCode } from '../src/errors'
import { cubby, cubbyJson, temporaryPath } from './helpers/cli'

test('create makes a store sized by the flags, and info reads it back', async (t) => {
  const path = temporaryPath('new.img')
  const created = await cubbyJson(['create', path, '--expected-keys', '50k', '--key-size', '16', '--value-size', '200', '--compression', 'none', '--size', '256MiB'])
  t.is(created.status, 0, created.stderr)
  t.is(created.json.buckets, plan({ keys: 50_000, keySize: 16, valueSize: 200 }).buckets)
  t.is(created.json.compression, 'none')
  t.is(created.json.imageBytes, 256 * 1024 * 1024)
  t.is(fs.statSync(path).size, 256 * 1024 * 1024)
  const info = await cubbyJson(['info', path])
  t.is(info.status, 0, info.stderr)
  t.is(info.json.compression, 'none')
  t.is(info.json.keys, 0)
  t.is(info.json.buckets, created.json.buckets)
  t.is(info.json.formatVersion, 1)
  const text = await cubby(['create', temporaryPath('plain.img')])
  t.is(text.status, 0)
  t.regex(text.text, /^created .*plain\.img\n {2}compression +LZ4\n {2}buckets +7,734, for 100,000 keys of 24 \+ 100 bytes/)
})

for (const compression of ['lz4', 'none'] as const) {
  test(`info shows the figures db.stats() reports for the same store (${compression})`, async (t) => {
    const path = temporaryPath(`stats-${compression}.img`)
    const db = await open(path, { compression, expectedKeys: 500, keySize: 10, valueSize: 120, writeBufferSize: 1024 * 1024 })
    for (let index = 0; index < 4000; index++) await db.put(`key-${index}`, Buffer.alloc(120 + (index % 50), index % 256), { sync: false })
    await db.put('large', Buffer.alloc(50_000, 1))
    await db.close()
    const readOnly = await open(path, { readOnly: true, create: false, cacheSize: 0 })
    const stats = readOnly.stats()
    await readOnly.close()
    t.true(stats.splits > 0 || stats.level > 0 || stats.splitPointer > 0, 'the store grew past its sizing')

    const { status, json, stderr } = await cubbyJson<Record<string, any>>(['info', path])
    t.is(status, 0, stderr)
    t.is(json.compression, compression)
    t.is(json.keys, stats.keys)
    t.is(json.keys, 4001)
    t.is(json.buckets, stats.buckets)
    t.is(json.level, stats.level)
    t.is(json.splitPointer, stats.splitPointer)
    t.is(json.generation, stats.generation)
    t.is(json.loadFactor, stats.loadFactor)
    t.is(json.overflowBuckets, stats.overflowBuckets)
    t.is(json.overflowBlocks, stats.overflowBlocks)
    t.is(json.bufferedWrites, stats.bufferedWrites)
    t.is(json.logicalBytes, stats.device.logicalBytes)
    t.is(json.physicalBytes, stats.device.physicalBytes)
    t.is(json.compressionRatio, stats.device.compressionRatio)
    t.deepEqual(json.memory.now, stats.memory)
    t.deepEqual(json.recovery, stats.recovery)
    t.is(json.memory.bound.total, json.memory.bound.cache + json.memory.bound.writeBuffer + json.memory.bound.engineBuffers + json.memory.bound.device + json.memory.bound.bitmap)
    t.is(json.memory.bound.cache, 64 * 1024 * 1024)
    t.is(json.image.apparentBytes, fs.statSync(path).size)
    if (compression === 'lz4') t.true(json.compressionRatio > 1, `part-empty buckets compress: ${json.compressionRatio}`)
    else t.is(json.compressionRatio, 1)

    const text = await cubby(['info', path])
    t.is(text.status, 0)
    t.true(text.text.includes(`keys            ${stats.keys.toLocaleString('en-US')}\n`), text.text)
    t.true(text.text.includes(`buckets         ${stats.buckets.toLocaleString('en-US')} (level ${stats.level}`), text.text)
    t.regex(text.text, /last close +clean/)
  })
}

test('create leaves an existing store alone without --overwrite, and replaces it with', async (t) => {
  const path = temporaryPath('existing.img')
  t.is((await cubby(['create', path])).status, 0)
  t.is((await cubby(['put', path, 'kept', 'yes'])).status, 0)
  const refused = await cubbyJson<{ error: { code: string; message: string } }>(['create', path])
  t.is(refused.status, 1)
  t.is(refused.json.error.code, ErrorCode.INVALID_ARGUMENT)
  t.regex(refused.stderr, /already holds a CubbyDB store \(1 key\); it was left untouched/)
  t.is((await cubby(['get', path, 'kept'])).text, 'yes', 'the store is untouched')

  const replaced = await cubby(['create', path, '--overwrite', '--compression', 'none'])
  t.is(replaced.status, 0, replaced.stderr)
  t.is((await cubby(['get', path, 'kept'])).status, 3, 'the old store is gone')
  t.is((await cubbyJson(['info', path])).json.compression, 'none')
})

test('create refuses a file holding other data (CUBBY_NOT_A_STORE) and formats it with --overwrite', async (t) => {
  const path = temporaryPath('foreign.img')
  const foreign = Buffer.from('precious data that is not a store\n'.repeat(100))
  fs.writeFileSync(path, foreign)
  const refused = await cubby(['create', path])
  t.is(refused.status, 1)
  t.regex(refused.stderr, /^cubby create: CUBBY_NOT_A_STORE: .*left untouched/)
  t.deepEqual(fs.readFileSync(path), foreign)
  const formatted = await cubby(['create', path, '--overwrite'])
  t.is(formatted.status, 0, formatted.stderr)
  t.is((await cubbyJson(['info', path])).json.keys, 0)
})

test('info of a missing path or of other data is CUBBY_NOT_A_STORE, and creates nothing', async (t) => {
  const missing = temporaryPath('missing.img')
  const result = await cubbyJson<{ error: { code: string; path?: string } }>(['info', missing])
  t.is(result.status, 1)
  t.is(result.json.error.code, ErrorCode.NOT_A_STORE)
  t.false(fs.existsSync(missing))
  const other = temporaryPath('other.txt')
  fs.writeFileSync(other, 'hello')
  const foreign = await cubby(['info', other])
  t.is(foreign.status, 1)
  t.regex(foreign.stderr, /CUBBY_NOT_A_STORE/)
})

test('create and info usage mistakes exit with status 2 and the synopsis', async (t) => {
  const cases: string[][] = [
    ['create'],
    ['create', 'a.img', 'b.img'],
    ['create', 'a.img', '--compression', 'zstd'],
    ['create', 'a.img', '--expected-keys', 'many'],
    ['create', 'a.img', '--size', '4 parsecs'],
    ['create', 'a.img', '--colour'],
    ['info'],
    ['info', 'a.img', '--cache-size'],
  ]
  for (const args of cases) {
    const result = await cubby(args)
    t.is(result.status, 2, args.join(' '))
    t.regex(result.stderr, new RegExp(`usage: cubby ${args[0]} `), args.join(' '))
  }
})

test('info on a store whose owner was killed: recovers in memory, says the close was not clean, and writes nothing', async (t) => {
  const path = temporaryPath('killed.img')
  const index = require.resolve('../src/index')
  const writer = spawn(process.execPath, ['-e', `
    const { open } = require(${JSON.stringify(index)})
    open(${JSON.stringify(path)}, { compression: 'none', expectedKeys: 1000, size: 64 * 1024 * 1024 }).then(async (db) => {
      for (let i = 0; i < 50; i++) await db.put('key-' + i, 'value-' + i)
      process.stdout.write('acknowledged\\n')
      setInterval(() => undefined, 1000)
    })`], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve) => writer.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('acknowledged') && resolve()))
  const exited = new Promise((resolve) => writer.once('exit', resolve))
  writer.kill('SIGKILL')
  await exited
  const before = fs.readFileSync(path)
  const { status, json, stderr } = await cubbyJson<Record<string, any>>(['info', path])
  t.is(status, 0, stderr)
  t.true(json.recovery.framesReplayed > 0, 'the log holds the acknowledged writes')
  t.is(json.keys + json.bufferedWrites, 50, 'every acknowledged write is counted')
  t.regex((await cubby(['info', path])).text, /last close +not clean: \d+ log frames/)
  t.is((await cubby(['get', path, 'key-49'])).text, 'value-49')
  t.true(fs.readFileSync(path).equals(before), 'read-only commands changed no byte of the store')
})
