// `cubby export` and `cubby import`, run as the real binary: exact round
// trips through files and through a pipe in both compression modes, what
// each refuses, damaged dumps, and the progress bar on a terminal.
import test from 'ava'
import { spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { open } from '../src/db'
import { ErrorCode } from '../src/errors'
import { CUBBY, cubby, cubbyJson, temporaryPath } from './helpers/cli'
import { contents } from './helpers/store'

/** A store with small, empty, binary and large values; returns its path and pairs. */
async function sampleStore(compression: 'lz4' | 'none', pairs = 2500): Promise<{ path: string; expected: Map<string, Buffer> }> {
  const path = temporaryPath(`source-${compression}.img`)
  const db = await open(path, { compression, expectedKeys: 1000 })
  const expected = new Map<string, Buffer>()
  for (let index = 0; index < pairs; index++) {
    const key = index % 7 === 0 ? Buffer.from([index & 0xff, 0, (index >> 8) & 0xff, 0xfe]) : Buffer.from(`user:${index}`)
    const value = Buffer.alloc(index % 11 === 0 ? 0 : (index * 37) % 900, index % 256)
    await db.put(key, value, { sync: false })
    expected.set(key.toString('latin1'), value)
  }
  const large = Buffer.alloc(1_500_000)
  for (let at = 0; at < large.length; at++) large[at] = (at * 7) % 251
  await db.put('large value', large)
  expected.set('large value', large)
  await db.close()
  return { path, expected }
}

async function assertHolds(t: import('ava').ExecutionContext, path: string, expected: Map<string, Buffer>): Promise<void> {
  const db = await open(path, { readOnly: true, create: false })
  const actual = await contents(db)
  await db.close()
  t.is(actual.size, expected.size)
  let same = 0
  for (const [key, value] of expected) if (actual.get(key)?.equals(value) === true) same++
  t.is(same, expected.size, 'every pair is there with its exact value')
}

for (const [from, to] of [
  ['lz4', 'none'],
  ['none', 'lz4'],
] as const) {
  test(`export to a file, import into a new ${to} store: every pair exactly (from ${from})`, async (t) => {
    const { path, expected } = await sampleStore(from)
    const dump = temporaryPath('backup.cubbydump')
    const exported = await cubbyJson(['export', path, dump])
    t.is(exported.status, 0, exported.stderr)
    t.is(exported.json.pairs, expected.size)
    t.is(exported.json.bytes, fs.statSync(dump).size)
    t.false(fs.readdirSync(dump.replace(/\/[^/]+$/, '')).some((name) => name.endsWith('.partial')), 'no temporary file is left')

    const target = temporaryPath(`restored-${to}.img`)
    const imported = await cubbyJson(['import', target, dump, '--compression', to])
    t.is(imported.status, 0, imported.stderr)
    const { file, ...totals } = exported.json
    t.is(file, dump)
    t.deepEqual(imported.json, totals)
    await assertHolds(t, target, expected)
    const info = await cubbyJson(['info', target])
    t.is(info.json.compression, to)
    t.is(info.json.keys, expected.size)
  })
}

test('export to stdout piped into import from stdin moves a store exactly', async (t) => {
  const { path, expected } = await sampleStore('lz4', 800)
  const target = temporaryPath('piped.img')
  const pipeline = spawnSync('/bin/sh', ['-c', `"${process.execPath}" "${CUBBY}" export "${path}" | "${process.execPath}" "${CUBBY}" import "${target}"`], { encoding: 'utf8' })
  t.is(pipeline.status, 0, pipeline.stderr)
  t.regex(pipeline.stdout, /^imported 801 pairs \(/)
  t.is(pipeline.stderr, '', 'no progress bar when stderr is not a terminal')
  await assertHolds(t, target, expected)
})

test('export refuses to overwrite a file without --overwrite, and to overwrite the store itself', async (t) => {
  const { path } = await sampleStore('none', 10)
  const dump = temporaryPath('exists.dump')
  fs.writeFileSync(dump, 'my notes')
  const refused = await cubbyJson<{ error: { code: string } }>(['export', path, dump])
  t.is(refused.status, 1)
  t.is(refused.json.error.code, ErrorCode.INVALID_ARGUMENT)
  t.is(fs.readFileSync(dump, 'utf8'), 'my notes')
  t.is((await cubby(['export', path, dump, '--overwrite'])).status, 0)
  t.is(fs.readFileSync(dump).toString('latin1', 0, 8), 'CUBBYDMP')
  const itself = await cubby(['export', path, path, '--overwrite'])
  t.is(itself.status, 2)
  t.regex(itself.stderr, /is the store itself/)
  t.is((await cubbyJson(['info', path])).json.keys, 11)
})

test('import refuses a store that holds keys unless --merge, which adds the dump to them', async (t) => {
  const { path } = await sampleStore('lz4', 20)
  const dump = temporaryPath('merge.dump')
  t.is((await cubby(['export', path, dump])).status, 0)
  const target = temporaryPath('busy.img')
  await cubby(['create', target])
  await cubby(['put', target, 'mine', 'stays'])
  await cubby(['put', target, 'user:1', 'replaced by the dump'])
  const refused = await cubbyJson<{ error: { code: string; message: string } }>(['import', target, dump])
  t.is(refused.status, 1)
  t.is(refused.json.error.code, ErrorCode.INVALID_ARGUMENT)
  t.regex(refused.json.error.message, /already holds 2 keys/)
  t.is((await cubbyJson(['info', target])).json.keys, 2, 'nothing imported')
  const merged = await cubby(['import', target, dump, '--merge'])
  t.is(merged.status, 0, merged.stderr)
  t.is((await cubby(['get', target, 'mine'])).text, 'stays')
  t.deepEqual((await cubby(['get', target, 'user:1'])).stdout, Buffer.alloc(37, 1))
  t.is((await cubbyJson(['info', target])).json.keys, 22)
})

test('a damaged dump fails the import with CUBBY_CORRUPT; a file that is no dump creates no store', async (t) => {
  const { path } = await sampleStore('lz4', 3000)
  const dump = temporaryPath('damaged.dump')
  await cubby(['export', path, dump])
  const bytes = fs.readFileSync(dump)
  bytes[bytes.length - 100]! ^= 0x20
  fs.writeFileSync(dump, bytes)
  const damaged = await cubbyJson<{ error: { code: string; message: string } }>(['import', temporaryPath('from-damaged.img'), dump])
  t.is(damaged.status, 1)
  t.is(damaged.json.error.code, ErrorCode.CORRUPT)
  t.regex(damaged.json.error.message, /frame \d+ .*checksum/)

  const notDump = temporaryPath('notes.txt')
  fs.writeFileSync(notDump, 'these are not the pairs you are looking for'.repeat(3))
  const target = temporaryPath('never.img')
  const foreign = await cubby(['import', target, notDump])
  t.is(foreign.status, 1)
  t.regex(foreign.stderr, /CUBBY_NOT_A_STORE: the input is not a CubbyDB dump/)
  t.false(fs.existsSync(target))
  const truncated = await cubby(['import', temporaryPath('short.img')], { input: fs.readFileSync(dump).subarray(0, 5000) })
  t.is(truncated.status, 1)
  t.regex(truncated.stderr, /CUBBY_CORRUPT: .*truncated/)
})

test('export and import usage mistakes exit with status 2', async (t) => {
  const cases: string[][] = [['export'], ['export', 'a.img', 'b.dump', 'c'], ['export', 'a.img', '--json'], ['import'], ['import', 'a.img', 'b', 'c'], ['import', 'a.img', 'b', '--expected-keys', '-1']]
  for (const args of cases) {
    const result = await cubby(args)
    t.is(result.status, 2, args.join(' '))
    t.regex(result.stderr, new RegExp(`usage: cubby ${args[0]} `), args.join(' '))
  }
})

test('on a terminal, export and import draw a progress bar on stderr and erase it', async (t) => {
  const script = spawnSync('script', ['--version'], { encoding: 'utf8' })
  if (script.status !== 0) {
    t.log('util-linux script(1) is not installed: no pseudo-terminal to test with')
    t.pass()
    return
  }
  const { path } = await sampleStore('none', 200)
  const dump = temporaryPath('tty.dump')
  const run = (command: string): Promise<string> =>
    new Promise((resolve) => {
      const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] })
      const output: Buffer[] = []
      child.stdout.on('data', (chunk: Buffer) => output.push(chunk))
      child.once('close', () => resolve(Buffer.concat(output).toString('utf8')))
    })
  const exported = await run(`"${process.execPath}" "${CUBBY}" export "${path}" "${dump}"`)
  t.regex(exported, /\r\x1b\[Kexport \[#+\.*\] +\d+% +[\d,]+ of [\d,]+ pairs +[\d,]+ pairs\/s/)
  t.regex(exported, /\r\x1b\[Kexported 201 pairs/, 'the bar is erased before the result')
  const imported = await run(`"${process.execPath}" "${CUBBY}" import "${temporaryPath('tty.img')}" "${dump}"`)
  t.regex(imported, /\r\x1b\[Kimport \[#+\.*\] +\d+% +[\d.]+ [KM]iB of [\d.]+ [KM]iB/)
  t.regex(imported, /imported 201 pairs/)
})
