/**
 * `cubby get`, `cubby put` and `cubby del`: one key at a time, for poking at
 * a store by hand or from a shell script.
 *
 * Binary-safe both ways. Keys are arguments, read as UTF-8 unless
 * --key-encoding says hex or base64. A value comes from an argument (UTF-8,
 * or --encoding hex/base64), from a file (--file), or from stdin, byte for
 * byte. `get` writes the value's bytes to stdout exactly as stored (or as
 * hex/base64 text with --encoding); only when stdout is a terminal does it
 * add a newline the value lacks. `get` of a missing key exits with status 3.
 *
 * get opens the store read-only; put and del open it for writing and close
 * it before exiting, so the write is durable when the command returns.
 */

import * as fs from 'node:fs'
import { open } from '../../db'
import { MAX_VALUE_BYTES } from '../../engine/format'
import { choiceOption, decodeText, expectPositionals, stringOption, TEXT_ENCODINGS, type TextEncoding, UsageError } from '../args'
import { type Command, type CommandArguments, type CommandIo, EXIT, fileError, readBounded, write } from '../command'
import { formatJson } from '../output'

const KEY_ENCODING_OPTION = { 'key-encoding': { type: 'string' } } as const
const KEY_ENCODING_HELP = `  --key-encoding ENC       how keys are written: utf8, hex or base64         (utf8)`

function keyFrom(args: CommandArguments, text: string): Buffer {
  return decodeText(text, choiceOption(args.values, 'key-encoding', TEXT_ENCODINGS, 'utf8'), 'the key')
}

/** The bytes as UTF-8 text when they are valid UTF-8, for --json. */
function utf8OrUndefined(bytes: Buffer): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    return undefined
  }
}

export const getCommand: Command = {
  name: 'get',
  synopsis: 'get <path> <key> [options]',
  summary: 'print the value of a key (exit status 3 when it is missing)',
  help: `Prints the value of <key> in the store at <path>, byte for byte (binary-safe:
redirect it to a file to get the exact value back). On a terminal a newline
is added if the value lacks one. A missing key prints nothing and exits with
status 3.

${KEY_ENCODING_HELP}
  --encoding ENC           print the value as utf8 (its bytes), hex or base64 (utf8)
  --json                   print {"key", "found", "bytes", "base64", "utf8"}; "utf8"
                           only when the value is valid UTF-8`,
  options: { ...KEY_ENCODING_OPTION, encoding: { type: 'string' } },
  async run(args, io) {
    const [path, keyText] = expectPositionals(args.positionals, 2, 2, '<path> <key>') as [string, string]
    const key = keyFrom(args, keyText)
    const encoding = choiceOption(args.values, 'encoding', TEXT_ENCODINGS, 'utf8')
    const db = await open(path, { readOnly: true, create: false, cacheSize: 0 })
    let value: Buffer | undefined
    try {
      value = await db.get(key)
    } finally {
      await db.close()
    }
    if (args.json) {
      const text = value === undefined ? undefined : utf8OrUndefined(value)
      await write(
        io.stdout,
        formatJson(value === undefined ? { key: keyText, found: false } : { key: keyText, found: true, bytes: value.length, base64: value.toString('base64'), ...(text === undefined ? {} : { utf8: text }) }),
      )
    } else if (value !== undefined) {
      const terminal = io.stdout.isTTY === true
      if (encoding === 'utf8') {
        await write(io.stdout, value)
        if (terminal && value[value.length - 1] !== 0x0a) await write(io.stdout, '\n')
      } else {
        await write(io.stdout, `${value.toString(encoding)}\n`)
      }
    }
    if (value === undefined && !args.json) await write(io.stderr, `cubby get: ${keyText}: not found\n`)
    return value === undefined ? EXIT.notFound : EXIT.ok
  },
}

async function valueFrom(args: CommandArguments, io: CommandIo, argument: string | undefined): Promise<Buffer> {
  const file = stringOption(args.values, 'file')
  if (argument !== undefined && file !== undefined) throw new UsageError('give the value as an argument or with --file, not both')
  if (argument !== undefined) return decodeText(argument, choiceOption(args.values, 'encoding', TEXT_ENCODINGS, 'utf8') as TextEncoding, 'the value')
  if (file !== undefined && file !== '-') {
    try {
      return await readBounded(fs.createReadStream(file), MAX_VALUE_BYTES, `the value in ${file}`)
    } catch (error) {
      throw fileError(error, file, 'reading')
    }
  }
  if (file === undefined && io.stdin.isTTY === true) throw new UsageError('no value: give it as an argument, with --file, or on stdin')
  return readBounded(io.stdin, MAX_VALUE_BYTES, 'the value on stdin')
}

export const putCommand: Command = {
  name: 'put',
  synopsis: 'put <path> <key> [value] [options]',
  summary: 'set the value of a key (from an argument, a file or stdin)',
  help: `Sets <key> to a value in the store at <path>, durably (the command returns
once the write is on stable storage). The value is the [value] argument;
or the bytes of --file; or, when neither is given, everything on stdin.

  --file PATH              read the value from PATH (- for stdin)
  --encoding ENC           how the [value] argument is written: utf8, hex or base64 (utf8)
${KEY_ENCODING_HELP}
  --json                   print {"key", "bytes"}`,
  options: { ...KEY_ENCODING_OPTION, encoding: { type: 'string' }, file: { type: 'string' } },
  async run(args, io) {
    const [path, keyText, argument] = expectPositionals(args.positionals, 2, 3, '<path> <key> [value]') as [string, string, string | undefined]
    const key = keyFrom(args, keyText)
    const value = await valueFrom(args, io, argument)
    const db = await open(path, { create: false })
    try {
      await db.put(key, value, { sync: true })
    } finally {
      await db.close()
    }
    if (args.json) await write(io.stdout, formatJson({ key: keyText, bytes: value.length }))
    return EXIT.ok
  },
}

export const delCommand: Command = {
  name: 'del',
  synopsis: 'del <path> <key>... [options]',
  summary: 'delete keys (deleting a missing key is not an error)',
  help: `Deletes each <key> from the store at <path>, all at once (one atomic batch),
durably. Keys that are not there are not an error.

${KEY_ENCODING_HELP}
  --json                   print {"deleted": [keys that were there], "missing": [keys that were not]}`,
  options: { ...KEY_ENCODING_OPTION },
  async run(args, io) {
    const [path, ...keyTexts] = expectPositionals(args.positionals, 2, Infinity, '<path> <key>') as [string, ...string[]]
    const keys = keyTexts.map((text) => keyFrom(args, text))
    const db = await open(path, { create: false })
    let present: boolean[]
    try {
      present = await Promise.all(keys.map((key) => db.has(key)))
      await db.batch(
        keys.map((key) => ({ type: 'del' as const, key })),
        { sync: true },
      )
    } finally {
      await db.close()
    }
    if (args.json) {
      await write(io.stdout, formatJson({ deleted: keyTexts.filter((_, index) => present[index]), missing: keyTexts.filter((_, index) => !present[index]) }))
    }
    return EXIT.ok
  },
}
