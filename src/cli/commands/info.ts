/**
 * `cubby info`: what a store holds and what it costs, read from a read-only
 * open (nothing is written, not even to recover: a store left by a crash is
 * recovered in memory). Every figure is the one `db.stats()` reports for
 * that open; the memory bound adds the budgets the store would run with.
 */

import * as fs from 'node:fs'
import { DEFAULTS, open } from '../../db'
import { FORMAT_VERSION } from '../../engine/format'
import { bytesOption, expectPositionals } from '../args'
import { type Command, EXIT, write } from '../command'
import { measuredMemory } from '../memory'
import { formatBytes, formatCount, formatJson, formatRatio, formatTable } from '../output'

export const infoCommand: Command = {
  name: 'info',
  synopsis: 'info <path> [options]',
  summary: 'show a store: format, keys, buckets, load, overflow, bytes, compression, memory',
  help: `Opens the store at <path> read-only and shows its format version and
compression mode, keys, buckets, load factor, overflow, logical and physical
bytes, compression ratio, and memory: what the open holds now, and the most
the store needs with the given budgets (it does not grow with keys).

  --cache-size BYTES       bucket cache, for the memory bound       (64MiB)
  --write-buffer-size B    write buffers, for the memory bound      (32MiB)
  --json                   print the figures as JSON (the fields of db.stats())`,
  options: {
    'cache-size': { type: 'string' },
    'write-buffer-size': { type: 'string' },
  },
  async run(args, io) {
    const [path] = expectPositionals(args.positionals, 1, 1, '<path>') as [string]
    const memorySettings = {
      cacheSize: bytesOption(args.values, 'cache-size', DEFAULTS.cacheSize),
      writeBufferSize: bytesOption(args.values, 'write-buffer-size', DEFAULTS.writeBufferSize),
    }
    const db = await open(path, { readOnly: true, create: false, cacheSize: 0 })
    let stats
    try {
      stats = db.stats()
    } finally {
      await db.close()
    }
    const compression = stats.device.mode === 'lz4' ? 'lz4' : 'none'
    const ratio = stats.device.compressionRatio
    const bound = measuredMemory(memorySettings, compression, stats.memory)
    const file = fs.statSync(path)
    const image = file.isFile() ? { apparentBytes: file.size, allocatedBytes: file.blocks * 512 } : undefined
    if (args.json) {
      await write(
        io.stdout,
        formatJson({
          path,
          kind: image === undefined ? 'block-device' : 'image-file',
          formatVersion: FORMAT_VERSION,
          compression,
          ioPath: stats.device.ioPath,
          keys: stats.keys,
          bufferedWrites: stats.bufferedWrites,
          buckets: stats.buckets,
          level: stats.level,
          splitPointer: stats.splitPointer,
          generation: stats.generation,
          loadFactor: stats.loadFactor,
          overflowBuckets: stats.overflowBuckets,
          overflowBlocks: stats.overflowBlocks,
          logicalBytes: stats.device.logicalBytes,
          physicalBytes: stats.device.physicalBytes,
          compressionRatio: ratio,
          memory: { now: stats.memory, bound },
          ...(image === undefined ? {} : { image }),
          recovery: stats.recovery,
        }),
      )
      return EXIT.ok
    }
    const pending = stats.bufferedWrites > 0 ? ` (and ${formatCount(stats.bufferedWrites)} writes in the log, not yet in their buckets)` : ''
    const parts = Object.entries(stats.memory)
      .filter(([part, bytes]) => part !== 'total' && bytes > 0)
      .map(([part, bytes]) => `${part} ${formatBytes(bytes)}`)
    const rows: Array<[string, string]> = [
      ['format', `version ${FORMAT_VERSION}, ${compression === 'lz4' ? 'LZ4 compression' : 'no compression (raw blocks)'}, I/O path ${stats.device.ioPath}`],
      ['keys', `${formatCount(stats.keys)}${pending}`],
      ['buckets', `${formatCount(stats.buckets)} (level ${stats.level}, split pointer ${formatCount(stats.splitPointer)})`],
      ['load factor', `${stats.loadFactor.toFixed(3)} (bytes of entries / bytes buckets can hold)`],
      ['overflow', `${formatCount(stats.overflowBuckets)} buckets with an overflow chain, ${formatCount(stats.overflowBlocks)} overflow blocks`],
      ['logical bytes', formatBytes(stats.device.logicalBytes)],
      ['physical bytes', formatBytes(stats.device.physicalBytes)],
      ['compression', `${formatRatio(ratio)} (logical ÷ physical)`],
      ['memory now', `${formatBytes(stats.memory.total)}${parts.length > 0 ? ` (${parts.join(', ')})` : ''}, read-only and idle`],
      [
        'memory bound',
        `${formatBytes(bound.total)}: cache ${formatBytes(bound.cache)}, write buffer ${formatBytes(bound.writeBuffer)}, engine buffers ${formatBytes(bound.engineBuffers)}, device ${formatBytes(bound.device)}, bitmap ${formatBytes(bound.bitmap)}; does not grow with keys`,
      ],
      ...(image === undefined
        ? [['device', 'block device'] as [string, string]]
        : [['image file', `${formatBytes(image.apparentBytes)} logical, ${formatBytes(image.allocatedBytes)} allocated`] as [string, string]]),
      [
        'last close',
        stats.recovery.framesReplayed > 0 || stats.recovery.stepRedone
          ? `not clean: ${stats.recovery.framesReplayed} log frames${stats.recovery.stepRedone ? ' and an interrupted flush step' : ''} to recover (the next read-write open does it)`
          : 'clean',
      ],
    ]
    await write(io.stdout, `${path}\n${formatTable(rows)}\n`)
    return EXIT.ok
  },
}
