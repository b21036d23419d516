// `cubby plan`, the help of every subcommand, --version, and how the binary
// reports unknown commands and errors (stderr, exit status, --json).
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { plan } from '../src/db'
import { COMMANDS } from '../src/cli/main'
import { cubby, cubbyJson } from './helpers/cli'

test('plan --json is the sizing model of plan() with the image size and memory', async (t) => {
  const { status, json } = await cubbyJson<Record<string, any>>(['plan', '--keys', '100M', '--value-size', '400'])
  t.is(status, 0)
  const expected = plan({ keys: 100_000_000, valueSize: 400 })
  for (const [field, value] of Object.entries(expected)) t.deepEqual(json[field], value, field)
  t.is(json.keys, 100_000_000)
  t.is(json.keySize, 24)
  t.is(json.compression, 'lz4')
  t.true(json.imageBytes >= 64 * expected.logicalBytes || json.imageBytes === 16 * 1024 ** 4)
  const memory = json.memory
  t.is(memory.cache, 64 * 1024 * 1024)
  t.is(memory.writeBuffer, 32 * 1024 * 1024)
  t.is(memory.total, memory.cache + memory.writeBuffer + memory.engineBuffers + memory.device + memory.bitmap)

  const small = await cubbyJson<Record<string, any>>(['plan', '--keys', '1000', '--value-size', '100', '--compression', 'none', '--cache-size', '8MiB'])
  t.is(small.json.memory.device, 0, 'no compression maps without lz4')
  t.is(small.json.memory.cache, 8 * 1024 * 1024)
  t.true(small.json.memory.total < json.memory.total)
})

test('plan prints the model for people', async (t) => {
  const result = await cubby(['plan', '--keys', '1M', '--value-size', '3000', '--key-size', '16'])
  t.is(result.status, 0, result.stderr)
  const expected = plan({ keys: 1_000_000, keySize: 16, valueSize: 3000 })
  t.regex(result.text, /^1,000,000 keys of 16 \+ 3000 bytes, LZ4 compression:\n/)
  t.true(result.text.includes(`buckets        ${expected.buckets.toLocaleString('en-US')} of 4 KiB`), result.text)
  t.regex(result.text, /values in extents \(one more read per GET\)/)
  t.regex(result.text, /memory +about [\d.]+ MiB, set when the store is made; more keys add only 2\.8 KiB per GiB of logical space they take/)
  const plain = await cubby(['plan', '--keys', '1M', '--value-size', '100', '--compression', 'none'])
  t.regex(plain.text, /memory +about [\d.]+ MiB, set when the store is made; it does not grow as keys are added/)
})

test('plan usage mistakes exit with status 2 and say what is wrong', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['plan'], /--keys is required/],
    [['plan', '--keys', '1M'], /--value-size is required/],
    [['plan', '--keys', 'lots', '--value-size', '1'], /--keys takes a count/],
    [['plan', '--keys', '1.5', '--value-size', '1'], /--keys must be a whole number/],
    [['plan', '--keys', '1M', '--value-size', '1', 'extra'], /unexpected argument "extra"/],
    [['plan', '--keys'], /--keys/],
  ]
  for (const [args, message] of cases) {
    const result = await cubby(args)
    t.is(result.status, 2, args.join(' '))
    t.regex(result.stderr, message, args.join(' '))
    t.regex(result.stderr, /\nusage: cubby plan --keys N --value-size BYTES \[options\]\nRun 'cubby plan --help' for more\.\n$/)
  }
  const bad = await cubbyJson<{ error: { code: string; message: string; exitStatus: number } }>(['plan', '--keys', '0', '--value-size', '1'])
  t.is(bad.status, 1, 'keys 0 passes the flag parser and is refused by plan()')
  t.is(bad.json.error.code, 'CUBBY_INVALID_ARGUMENT')
  t.is(bad.json.error.exitStatus, 1)
})

test('every subcommand has --help: its synopsis and each of its flags', async (t) => {
  for (const command of COMMANDS) {
    const result = await cubby([command.name, '--help'])
    t.is(result.status, 0, command.name)
    t.true(result.text.startsWith(`usage: cubby ${command.synopsis}\n\n`), command.name)
    for (const flag of Object.keys(command.options)) t.true(result.text.includes(`--${flag}`), `${command.name} documents --${flag}`)
    t.true(result.text.includes('--json'), `${command.name} documents --json`)
  }
  const viaHelp = await cubby(['help', 'export'])
  t.true(viaHelp.text.startsWith('usage: cubby export'))
})

test('the main help lists every command; no command is a usage error; an unknown one too', async (t) => {
  const help = await cubby(['--help'])
  t.is(help.status, 0)
  for (const command of COMMANDS) t.regex(help.text, new RegExp(`\\n  ${command.name} +${command.summary.replace(/[()]/g, '.')}\\n`))
  const none = await cubby([])
  t.is(none.status, 2)
  t.true(none.stderr.startsWith('usage: cubby <command>'))
  const unknown = await cubbyJson<{ error: { code: string; message: string } }>(['frobnicate'])
  t.is(unknown.status, 2)
  t.is(unknown.json.error.code, 'USAGE')
  t.regex(unknown.stderr, /^cubby: unknown command "frobnicate"; the commands are create, info/)
})

test('--version prints the package version', async (t) => {
  const manifest = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> }
  const result = await cubby(['--version'])
  t.is(result.status, 0)
  t.is(result.text, `${manifest.version}\n`)
  t.is(manifest.bin.cubby, 'dist/cli/main.js')
  t.true(fs.readFileSync(path.resolve(__dirname, '..', '..', manifest.bin.cubby), 'utf8').startsWith('#!/usr/bin/env node\n'))
})
