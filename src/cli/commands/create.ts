/**
 * `cubby create`: makes a new, empty store, sized by the flags.
 *
 * Never overwrites anything without --overwrite: not another store (it is
 * opened read-only first to find out, which also fails with CUBBY_LOCKED
 * while a process has it open), and not other data (open() refuses it with
 * CUBBY_NOT_A_STORE). With --overwrite an existing store is wiped (an image
 * file truncated, a block device's first MiB zeroed) and a new one made.
 */

import * as fs from 'node:fs'
import { DEFAULTS, DEFAULT_COMPRESSION, open } from '../../db'
import type { CompressionMode } from '../../device/open'
import { CubbyError, ErrorCode, isCubbyError } from '../../errors'
import { bytesOption, choiceOption, countOption, expectPositionals } from '../args'
import { type Command, EXIT, fileError, isBlockDevice, write } from '../command'
import { formatBytes, formatCount, formatJson, formatTable, plural } from '../output'

/** Bytes zeroed at the start of a block device so that it reads as empty (docs/format.md 1). */
const WIPE_BYTES = 1024 * 1024

/** The values of --compression. */
export const COMPRESSION_MODES: readonly CompressionMode[] = ['lz4', 'none']

export const SIZING_OPTIONS = {
  'expected-keys': { type: 'string' },
  'key-size': { type: 'string' },
  'value-size': { type: 'string' },
  size: { type: 'string' },
  compression: { type: 'string' },
} as const

export const SIZING_HELP = `  --expected-keys N        keys to size the store for; it grows past them   (100k)
  --key-size BYTES         typical key size                                  (24)
  --value-size BYTES       typical value size                                (100)
  --size BYTES             logical size of a new image file, sparse     (64× the keys, ≥ 4GiB)
  --compression MODE       lz4 (software compression) or none (raw blocks,
                           for drives that compress in hardware)             (lz4)`

export interface SizingOptions {
  expectedKeys?: number
  keySize?: number
  valueSize?: number
  size?: number
  compression?: CompressionMode
}

/** The sizing flags given on the command line, as open() options (those not given are left out). */
export function givenSizing(values: Record<string, string | boolean | undefined>): SizingOptions {
  const given: SizingOptions = {}
  const expectedKeys = countOption(values, 'expected-keys')
  const keySize = bytesOption(values, 'key-size')
  const valueSize = bytesOption(values, 'value-size')
  const size = bytesOption(values, 'size')
  if (expectedKeys !== undefined) given.expectedKeys = expectedKeys
  if (keySize !== undefined) given.keySize = keySize
  if (valueSize !== undefined) given.valueSize = valueSize
  if (size !== undefined) given.size = size
  if (values.compression !== undefined) given.compression = choiceOption(values, 'compression', COMPRESSION_MODES, DEFAULT_COMPRESSION)
  return given
}

/** The open() options of a new store: the sizing flags given, defaults for the rest (`expectedKeys` unless --expected-keys). */
export function sizingOptions(values: Record<string, string | boolean | undefined>, expectedKeys: number = DEFAULTS.expectedKeys) {
  return { expectedKeys, keySize: DEFAULTS.keySize, valueSize: DEFAULTS.valueSize, compression: DEFAULT_COMPRESSION, ...givenSizing(values) }
}

/** Keys in the store at `path`, or undefined when it holds no store (missing, empty, or other data). */
async function existingStoreKeys(path: string): Promise<number | undefined> {
  try {
    const db = await open(path, { readOnly: true, create: false, cacheSize: 0 })
    const stats = db.stats()
    await db.close()
    return stats.keys + stats.bufferedWrites
  } catch (error) {
    if (isCubbyError(error, ErrorCode.NOT_A_STORE)) return undefined
    throw error
  }
}

/** Makes the store at `path` read as empty: an image file truncated, a block device's first MiB zeroed. */
function wipe(path: string): void {
  let descriptor: number | undefined
  try {
    if (isBlockDevice(path)) {
      descriptor = fs.openSync(path, 'r+')
      fs.writeSync(descriptor, Buffer.alloc(WIPE_BYTES), 0, WIPE_BYTES, 0)
      fs.fsyncSync(descriptor)
    } else {
      fs.truncateSync(path, 0)
    }
  } catch (error) {
    throw fileError(error, path, 'wiping')
  } finally {
    if (descriptor !== undefined) fs.closeSync(descriptor)
  }
}

export const createCommand: Command = {
  name: 'create',
  synopsis: 'create <path> [options]',
  summary: 'make a new, empty store on an image file or a block device',
  help: `Makes a new, empty store at <path>: an image file (created sparse, so only
what is written takes space) or a block device such as /dev/nvme1n1 (whose
first MiB must be all zeros). Anything already there is left alone unless
--overwrite is given.

${SIZING_HELP}
  --overwrite              replace what <path> holds: another store, or other data
  --json                   print the new store's figures as JSON`,
  options: { ...SIZING_OPTIONS, overwrite: { type: 'boolean' } },
  async run(args, io) {
    const [path] = expectPositionals(args.positionals, 1, 1, '<path>') as [string]
    const sizing = sizingOptions(args.values)
    const overwrite = args.values.overwrite === true
    const keys = await existingStoreKeys(path)
    if (keys !== undefined) {
      if (!overwrite) {
        throw new CubbyError(ErrorCode.INVALID_ARGUMENT, `${path} already holds a CubbyDB store (${plural(keys, 'key')}); it was left untouched (--overwrite replaces it)`, { path })
      }
      wipe(path)
    }
    const db = await open(path, { ...sizing, create: true, overwrite })
    const stats = db.stats()
    await db.close()
    const file = fs.statSync(path)
    const summary = {
      path,
      compression: sizing.compression,
      buckets: stats.buckets,
      expectedKeys: sizing.expectedKeys,
      keySize: sizing.keySize,
      valueSize: sizing.valueSize,
      ...(file.isFile() ? { imageBytes: file.size, allocatedBytes: file.blocks * 512 } : {}),
    }
    if (args.json) {
      await write(io.stdout, formatJson(summary))
      return EXIT.ok
    }
    const rows: Array<[string, string]> = [
      ['compression', sizing.compression === 'lz4' ? 'LZ4' : 'none (raw blocks)'],
      ['buckets', `${formatCount(stats.buckets)}, for ${formatCount(sizing.expectedKeys)} keys of ${sizing.keySize} + ${sizing.valueSize} bytes (it grows past them)`],
    ]
    if (file.isFile()) rows.push(['image file', `${formatBytes(file.size)} logical, ${formatBytes(file.blocks * 512)} allocated`])
    await write(io.stdout, `created ${path}\n${formatTable(rows)}\n`)
    return EXIT.ok
  },
}
