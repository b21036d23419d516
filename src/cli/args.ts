/**
 * Command-line arguments of `cubby`: node:util parseArgs with strict checks,
 * and the parsers of the values flags take (counts, byte sizes, encodings).
 *
 * Every mistake is a UsageError naming the flag, which main.ts turns into
 * exit status 2 and the subcommand's synopsis. Counts take decimal suffixes
 * (100k, 10M, 1G); byte sizes take binary ones (64MiB, 4GiB; K, M, G, T mean
 * the same), like the benchmark's flags.
 */

import { parseArgs, type ParseArgsConfig } from 'node:util'

/** A mistake in how the command was called: exit status 2, with the synopsis. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>

export interface ParsedArguments {
  values: Record<string, string | boolean | undefined>
  positionals: string[]
}

/** Options every subcommand takes. */
export const COMMON_OPTIONS: OptionSpec = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
}

/** Parses `argv` against `options` (plus --json and --help); unknown flags and missing values are UsageErrors. */
export function parseCommandLine(argv: readonly string[], options: OptionSpec): ParsedArguments {
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options: { ...COMMON_OPTIONS, ...options }, allowPositionals: true, strict: true })
    return { values: values as ParsedArguments['values'], positionals }
  } catch (error) {
    const code = (error as { code?: string }).code
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) throw new UsageError((error as Error).message.replace(/\. To specify a positional argument.*$/s, ''))
    throw error
  }
}

const DECIMAL_SUFFIXES: Readonly<Record<string, number>> = { '': 1, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12 }
const BINARY_SUFFIXES: Readonly<Record<string, number>> = {
  '': 1,
  B: 1,
  K: 1024,
  KiB: 1024,
  M: 1024 ** 2,
  MiB: 1024 ** 2,
  G: 1024 ** 3,
  GiB: 1024 ** 3,
  T: 1024 ** 4,
  TiB: 1024 ** 4,
}

function parseScaled(text: string, flag: string, suffixes: Readonly<Record<string, number>>, what: string): number {
  const match = /^(\d+(?:\.\d+)?)([a-zA-Z]*)$/.exec(text.replace(/[_,]/g, ''))
  const scale = match === null ? undefined : suffixes[match[2]!]
  if (match === null || scale === undefined) throw new UsageError(`${flag} takes ${what}, not ${JSON.stringify(text)}`)
  const value = Number(match[1]) * scale
  if (!Number.isSafeInteger(value)) throw new UsageError(`${flag} must be a whole number${scale > 1 ? ' after its suffix' : ''}, not ${JSON.stringify(text)}`)
  return value
}

/** A count such as 1000000, 1_000_000, 100k or 10M. */
export function parseCount(text: string, flag: string): number {
  return parseScaled(text, flag, DECIMAL_SUFFIXES, 'a count (such as 1000000, 100k or 10M)')
}

/** A byte size such as 4096, 64MiB or 4G (binary units). */
export function parseBytes(text: string, flag: string): number {
  return parseScaled(text, flag, BINARY_SUFFIXES, 'a size in bytes (such as 4096, 64MiB or 4GiB)')
}

/** The string value of `name`, if given. */
export function stringOption(values: ParsedArguments['values'], name: string): string | undefined {
  const value = values[name]
  return typeof value === 'string' ? value : undefined
}

/** A count flag's value, or `fallback`. */
export function countOption(values: ParsedArguments['values'], name: string, fallback: number): number
export function countOption(values: ParsedArguments['values'], name: string): number | undefined
export function countOption(values: ParsedArguments['values'], name: string, fallback?: number): number | undefined {
  const text = stringOption(values, name)
  return text === undefined ? fallback : parseCount(text, `--${name}`)
}

/** A byte-size flag's value, or `fallback`. */
export function bytesOption(values: ParsedArguments['values'], name: string, fallback: number): number
export function bytesOption(values: ParsedArguments['values'], name: string): number | undefined
export function bytesOption(values: ParsedArguments['values'], name: string, fallback?: number): number | undefined {
  const text = stringOption(values, name)
  return text === undefined ? fallback : parseBytes(text, `--${name}`)
}

/** One of `choices` for flag `name`, or `fallback`. */
export function choiceOption<T extends string>(values: ParsedArguments['values'], name: string, choices: readonly T[], fallback: T): T {
  const text = stringOption(values, name)
  if (text === undefined) return fallback
  if (!(choices as readonly string[]).includes(text)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, not ${JSON.stringify(text)}`)
  return text as T
}

/** How keys and values are written on the command line. */
export type TextEncoding = 'utf8' | 'hex' | 'base64'
export const TEXT_ENCODINGS: readonly TextEncoding[] = ['utf8', 'hex', 'base64']

/** The bytes `text` stands for in `encoding`; hex and base64 are checked strictly. */
export function decodeText(text: string, encoding: TextEncoding, what: string): Buffer {
  if (encoding === 'utf8') return Buffer.from(text, 'utf8')
  const pattern = encoding === 'hex' ? /^(?:[0-9a-fA-F]{2})*$/ : /^[A-Za-z0-9+/]*={0,2}$/
  if (!pattern.test(text) || (encoding === 'base64' && text.length % 4 !== 0)) throw new UsageError(`${what} is not valid ${encoding}: ${JSON.stringify(text)}`)
  return Buffer.from(text, encoding)
}

/** Checks the number of positional arguments; returns them. */
export function expectPositionals(positionals: string[], minimum: number, maximum: number, names: string): string[] {
  if (positionals.length < minimum) throw new UsageError(`missing ${names.split(' ').slice(positionals.length, minimum).join(' ')}`)
  if (positionals.length > maximum) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[maximum])}`)
  return positionals
}
