/**
 * `cubby plan`: the sizing model without a store (docs/api.md, plan()): how
 * many buckets, what logical and physical size, what overflow rate, how many
 * reads per GET, and the memory a store of that size needs.
 */

import { DEFAULTS, DEFAULT_COMPRESSION, defaultImageBytes, MIN_MAP_CACHE_BYTES, plan } from '../../db'
import { bytesOption, choiceOption, countOption, UsageError } from '../args'
import { type Command, EXIT, write } from '../command'
import { LZ4_MAP_BYTES_PER_GIB, lz4BlockMapBytes, plannedLogicalBytes, plannedMemory } from '../memory'
import { COMPRESSION_MODES } from './create'
import { formatBytes, formatCount, formatJson, formatPercent, formatTable } from '../output'

export const planCommand: Command = {
  name: 'plan',
  synopsis: 'plan --keys N --value-size BYTES [options]',
  summary: 'size a store: buckets, logical and physical bytes, overflow, memory',
  help: `The sizing model, without making anything: for N keys of the given sizes,
the buckets a store needs, its logical size, the physical size to expect
under compression, the share of buckets that overflow, device reads per
GET, and the memory it needs (which does not grow with the number of keys).

  --keys N                 keys to size for (1000000, 100k, 10M)
  --value-size BYTES       typical value size
  --key-size BYTES         typical key size                         (24)
  --compression MODE       lz4 or none                              (lz4)
  --cache-size BYTES       bucket cache, for the memory figure      (64MiB)
  --write-buffer-size B    write buffers, for the memory figure     (32MiB)
  --json                   print the figures as JSON`,
  options: {
    keys: { type: 'string' },
    'value-size': { type: 'string' },
    'key-size': { type: 'string' },
    compression: { type: 'string' },
    'cache-size': { type: 'string' },
    'write-buffer-size': { type: 'string' },
  },
  async run(args, io) {
    if (args.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(args.positionals[0])}`)
    const keys = countOption(args.values, 'keys')
    const valueSize = bytesOption(args.values, 'value-size')
    if (keys === undefined) throw new UsageError('--keys is required')
    if (valueSize === undefined) throw new UsageError('--value-size is required')
    const keySize = bytesOption(args.values, 'key-size', DEFAULTS.keySize)
    const compression = choiceOption(args.values, 'compression', COMPRESSION_MODES, DEFAULT_COMPRESSION)
    const memorySettings = {
      cacheSize: bytesOption(args.values, 'cache-size', DEFAULTS.cacheSize),
      writeBufferSize: bytesOption(args.values, 'write-buffer-size', DEFAULTS.writeBufferSize),
    }
    const sizing = plan({ keys, keySize, valueSize })
    const imageBytes = defaultImageBytes(sizing)
    const logicalBytes = plannedLogicalBytes(sizing)
    const memory = plannedMemory(memorySettings, compression, logicalBytes, imageBytes)
    const blockMapBytes = compression === 'lz4' ? lz4BlockMapBytes(logicalBytes) : 0
    if (args.json) {
      await write(io.stdout, formatJson({ keys, keySize, valueSize, compression, ...sizing, imageBytes, memory, blockMapBytes }))
      return EXIT.ok
    }
    const physical =
      compression === 'lz4'
        ? `${formatBytes(sizing.physicalBytes)} expected under LZ4 (the empty part of each bucket costs nothing)`
        : `${formatBytes(sizing.logicalBytes)} on a plain drive; about ${formatBytes(sizing.physicalBytes)} on a drive that compresses`
    const memoryParts = [
      `cache ${formatBytes(memory.cache)}`,
      `write buffer ${formatBytes(memory.writeBuffer)}`,
      `engine buffers ${formatBytes(memory.engineBuffers)}`,
      ...(memory.device > 0 ? [`LZ4 tables ${formatBytes(memory.device)}`] : []),
    ]
    const mapShare = Math.max(memorySettings.cacheSize, MIN_MAP_CACHE_BYTES)
    const blockMap: Array<[string, string]> =
      compression !== 'lz4'
        ? []
        : blockMapBytes <= mapShare
          ? [['block map', `${formatBytes(blockMapBytes)} of the cache, taken first, for one device read per GET`]]
          : [
              [
                'block map',
                `${formatBytes(blockMapBytes)}, more than the cache (${formatBytes(mapShare)}): GETs will often cost a second read; ` +
                  `give --cache-size / cacheSize at least ${formatBytes(blockMapBytes)}`,
              ],
            ]
    const rows: Array<[string, string]> = [
      ['buckets', `${formatCount(sizing.buckets)} of 4 KiB, ${sizing.entriesPerBucket.toFixed(2)} entries each on average`],
      ['entry', `${formatCount(sizing.entryBytes)} bytes; values ${sizing.valuesInline ? 'inside the buckets' : 'in extents (one more read per GET)'}`],
      ['logical size', `${formatBytes(sizing.logicalBytes)} of buckets${sizing.valuesInline ? '' : ' and value extents'}`],
      ['physical size', physical],
      ['overflow', `${formatPercent(sizing.overflowFraction)} of buckets have an overflow block`],
      ['reads per GET', `${sizing.readsPerGet.existing.toFixed(3)} for keys that exist, ${sizing.readsPerGet.missing.toFixed(3)} for missing ones (worst point of growth)`],
      ['image file', `${formatBytes(imageBytes)} logical when created without --size (sparse: only what is written takes space)`],
      [
        'memory',
        compression === 'lz4'
          ? `about ${formatBytes(memory.total)}, set when the store is made; more keys add only ${formatBytes(LZ4_MAP_BYTES_PER_GIB)} per GiB of logical space they take:`
          : `about ${formatBytes(memory.total)}, set when the store is made; it does not grow as keys are added:`,
      ],
      ['', memoryParts.join(', ')],
      ...blockMap,
    ]
    await write(io.stdout, `${formatCount(keys)} keys of ${keySize} + ${valueSize} bytes, ${compression === 'lz4' ? 'LZ4 compression' : 'no compression'}:\n${formatTable(rows)}\n`)
    return EXIT.ok
  },
}
