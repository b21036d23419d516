// `cubby get`, `cubby put` and `cubby del`, run as the real binary: binary
// safety from arguments, files and stdin, encodings, exit statuses, --json,
// and what each refuses.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { open } from '../src/db'
import { ErrorCode } from '../src/errors'
import { MAX_VALUE_BYTES } from '../src/engine/format'
import { CUBBY, cubby, cubbyJson, temporaryPath } from './helpers/cli'

async function newStore(): Promise<string> {
  const path = temporaryPath('keys.img')
  const result = await cubby(['create', path, '--expected-keys', '1000'])
  if (result.status !== 0) throw new Error(result.stderr)
  return path
}

test('put then get: values from an argument, a file and stdin come back byte for byte', async (t) => {
  const path = await newStore()
  const binary = Buffer.from(Array.from({ length: 5000 }, (_, index) => (index * 31 + 7) % 256))
  const file = temporaryPath('value.bin')
  fs.writeFileSync(file, binary)
  t.is((await cubby(['put', path, 'from-argument', 'héllo wörld'])).status, 0)
  t.is((await cubby(['put', path, 'from-file', '--file', file])).status, 0)
  t.is((await cubby(['put', path, 'from-stdin'], { input: binary })).status, 0)
  t.is((await cubby(['put', path, 'from-dash', '--file', '-'], { input: 'dash\n' })).status, 0)
  t.is((await cubby(['put', path, 'empty', ''])).status, 0)

  t.deepEqual((await cubby(['get', path, 'from-argument'])).stdout, Buffer.from('héllo wörld'))
  t.deepEqual((await cubby(['get', path, 'from-file'])).stdout, binary)
  t.deepEqual((await cubby(['get', path, 'from-stdin'])).stdout, binary)
  t.deepEqual((await cubby(['get', path, 'from-dash'])).stdout, Buffer.from('dash\n'))
  const empty = await cubby(['get', path, 'empty'])
  t.is(empty.status, 0)
  t.is(empty.stdout.length, 0)

  const db = await open(path, { readOnly: true, create: false })
  t.deepEqual(await db.get('from-stdin'), binary, 'the API sees the same bytes')
  await db.close()
})

test('hex and base64 encodings for keys and values, both ways', async (t) => {
  const path = await newStore()
  t.is((await cubby(['put', path, '00ff10', 'deadbeef', '--key-encoding', 'hex', '--encoding', 'hex'])).status, 0)
  t.is((await cubby(['put', path, 'AAEC', 'aGVsbG8=', '--key-encoding', 'base64', '--encoding', 'base64'])).status, 0)
  const db = await open(path, { readOnly: true, create: false })
  t.deepEqual(await db.get(Buffer.from([0x00, 0xff, 0x10])), Buffer.from([0xde, 0xad, 0xbe, 0xef]))
  t.deepEqual(await db.get(Buffer.from([0, 1, 2])), Buffer.from('hello'))
  await db.close()
  t.is((await cubby(['get', path, '00ff10', '--key-encoding', 'hex', '--encoding', 'hex'])).text, 'deadbeef\n')
  t.is((await cubby(['get', path, '00ff10', '--key-encoding', 'hex', '--encoding', 'base64'])).text, '3q2+7w==\n')
})

test('get --json: bytes, base64 always, utf8 only when the value is valid UTF-8', async (t) => {
  const path = await newStore()
  await cubby(['put', path, 'text', 'plain text'])
  await cubby(['put', path, 'binary', 'ff00fe', '--encoding', 'hex'])
  const text = await cubbyJson(['get', path, 'text'])
  t.is(text.status, 0)
  t.deepEqual(text.json, { key: 'text', found: true, bytes: 10, base64: Buffer.from('plain text').toString('base64'), utf8: 'plain text' })
  const binary = await cubbyJson(['get', path, 'binary'])
  t.deepEqual(binary.json, { key: 'binary', found: true, bytes: 3, base64: '/wD+' })
  const missing = await cubbyJson(['get', path, 'nothing'])
  t.is(missing.status, 3)
  t.deepEqual(missing.json, { key: 'nothing', found: false })
})

test('get of a missing key prints nothing on stdout and exits with status 3', async (t) => {
  const path = await newStore()
  const result = await cubby(['get', path, 'absent'])
  t.is(result.status, 3)
  t.is(result.stdout.length, 0)
  t.is(result.stderr, 'cubby get: absent: not found\n')
})

test('del removes keys in one batch; --json says which were there', async (t) => {
  const path = await newStore()
  for (const key of ['a', 'b', 'c']) await cubby(['put', path, key, key.toUpperCase()])
  const result = await cubbyJson(['del', path, 'a', 'c', 'zz'])
  t.is(result.status, 0, result.stderr)
  t.deepEqual(result.json, { deleted: ['a', 'c'], missing: ['zz'] })
  t.is((await cubby(['get', path, 'a'])).status, 3)
  t.is((await cubby(['get', path, 'b'])).text, 'B')
  t.is((await cubby(['del', path, 'never'])).status, 0, 'deleting a missing key is not an error')
  const put = await cubbyJson(['put', path, 'd', 'four'])
  t.deepEqual(put.json, { key: 'd', bytes: 4 })
})

test('put, get and del of a path that holds no store are CUBBY_NOT_A_STORE and create nothing', async (t) => {
  const missing = temporaryPath('nothing.img')
  for (const args of [['put', missing, 'k', 'v'], ['get', missing, 'k'], ['del', missing, 'k']]) {
    const result = await cubbyJson<{ error: { code: string } }>(args)
    t.is(result.status, 1, args[0])
    t.is(result.json.error.code, ErrorCode.NOT_A_STORE, args[0])
  }
  t.false(fs.existsSync(missing))
})

test('bad keys and values are refused with their codes; the store is unchanged', async (t) => {
  const path = await newStore()
  const longKey = await cubby(['put', path, 'k'.repeat(1025), 'v'])
  t.is(longKey.status, 1)
  t.regex(longKey.stderr, /^cubby put: CUBBY_INVALID_KEY: a key must be 1 to 1024 bytes/)
  const emptyKey = await cubby(['get', path, ''])
  t.is(emptyKey.status, 1)
  t.regex(emptyKey.stderr, /CUBBY_INVALID_KEY/)
  const tooLarge = await cubby(['put', path, 'huge'], { input: Buffer.alloc(MAX_VALUE_BYTES + 1) })
  t.is(tooLarge.status, 1)
  t.regex(tooLarge.stderr, /CUBBY_INVALID_VALUE: the value on stdin is over 67108864 bytes/)
  const missingFile = await cubby(['put', path, 'k', '--file', temporaryPath('no-such-file')])
  t.is(missingFile.status, 1)
  t.regex(missingFile.stderr, /CUBBY_IO: reading .*no-such-file.*\[ENOENT\]/)
  t.is((await cubbyJson(['info', path])).json.keys, 0)
})

test('get, put and del usage mistakes exit with status 2', async (t) => {
  const cases: string[][] = [
    ['get', 'store.img'],
    ['get', 'store.img', 'k', 'extra'],
    ['get', 'store.img', 'k', '--encoding', 'ebcdic'],
    ['get', 'store.img', 'zz', '--key-encoding', 'hex'],
    ['put', 'store.img'],
    ['put', 'store.img', 'k', 'v', '--file', 'f'],
    ['put', 'store.img', 'k', 'xyz', '--encoding', 'base64'],
    ['del', 'store.img'],
  ]
  for (const args of cases) {
    const result = await cubby(args)
    t.is(result.status, 2, args.join(' '))
    t.regex(result.stderr, new RegExp(`usage: cubby ${args[0]} `), args.join(' '))
  }
})

test('a reader that goes away (EPIPE) is CUBBY_IO, not an internal error', async (t) => {
  const path = await newStore()
  const file = temporaryPath('big.bin')
  fs.writeFileSync(file, Buffer.alloc(4 * 1024 * 1024, 7))
  t.is((await cubby(['put', path, 'big', '--file', file])).status, 0)
  const pipeline = spawnSync('/bin/bash', ['-c', `"${process.execPath}" "${CUBBY}" get "${path}" big | head -c 10 > /dev/null; echo "status \${PIPESTATUS[0]}" >&2`], { encoding: 'utf8' })
  t.regex(pipeline.stderr, /^cubby get: CUBBY_IO: writing the output: .*EPIPE/m)
  t.regex(pipeline.stderr, /status 1\n$/)
  t.notRegex(pipeline.stderr, /internal error/)
})
