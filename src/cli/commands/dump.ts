/**
 * `cubby export` and `cubby import`: a store's pairs to and from a dump
 * (docs/format.md section 4), for backups and for moving a store between
 * devices or compression modes.
 *
 * Both stream with bounded memory (src/dump/). export opens the store
 * read-only and writes to a file (through a temporary name, renamed into
 * place once complete and synced, so a file with the final name is always a
 * whole dump) or to stdout. import reads a file or stdin into a new store,
 * made with the sizing flags and, by default, sized for the dump's pair
 * count; into a store that already holds keys only with --merge.
 */

import * as fs from 'node:fs'
import * as nodePath from 'node:path'
import { open } from '../../db'
import { DumpReader, exportStore, importStore } from '../../dump'
import { CubbyError, ErrorCode } from '../../errors'
import { expectPositionals, UsageError } from '../args'
import { type Command, EXIT, fileError, write } from '../command'
import { formatBytes, formatJson, plural, Progress } from '../output'
import { SIZING_HELP, SIZING_OPTIONS, sizingOptions } from './create'

function sameFile(first: string, second: string): boolean {
  try {
    const a = fs.statSync(first)
    const b = fs.statSync(second)
    return a.dev === b.dev && a.ino === b.ino && a.rdev === b.rdev
  } catch {
    return false
  }
}

/** fsync of a file or directory by path: the dump's bytes before its rename, the rename after. */
function syncPath(path: string): void {
  const descriptor = fs.openSync(path, 'r')
  try {
    fs.fsyncSync(descriptor)
  } finally {
    fs.closeSync(descriptor)
  }
}

/** Resolves once `stream` has finished and closed (its file descriptor released). */
function finished(stream: fs.WriteStream): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.once('error', reject)
    stream.end(() => stream.close((error) => (error === undefined || error === null ? resolve() : reject(error))))
  })
}

export const exportCommand: Command = {
  name: 'export',
  synopsis: 'export <path> [file] [options]',
  summary: 'write every pair of a store to a dump file (or stdout)',
  help: `Writes every pair of the store at <path> to [file] as a dump: a versioned,
checksummed stream of frames (docs/format.md, section 4). Without [file], or
with -, the dump goes to stdout, e.g. to compress it: cubby export store.img | zstd > backup.zst

The store is opened read-only; export a store no process is writing to
(a running service exports in process with exportStore()). The file is
written under a temporary name and renamed once complete and synced.

  --overwrite              replace [file] if it exists
  --json                   print {"pairs", "keyBytes", "valueBytes", "bytes", "file"} (needs [file])`,
  options: { overwrite: { type: 'boolean' } },
  async run(args, io) {
    const [path, file] = expectPositionals(args.positionals, 1, 2, '<path> [file]') as [string, string | undefined]
    const toStdout = file === undefined || file === '-'
    if (toStdout && args.json) throw new UsageError('--json needs a [file]: the dump itself goes to stdout otherwise')
    if (toStdout && io.stdout.isTTY === true) throw new UsageError('refusing to write a binary dump to a terminal: give a [file] or redirect stdout')
    if (!toStdout && sameFile(path, file)) throw new UsageError(`${file} is the store itself`)
    if (!toStdout && fs.existsSync(file) && args.values.overwrite !== true) {
      throw new CubbyError(ErrorCode.INVALID_ARGUMENT, `${file} exists; it was left untouched (--overwrite replaces it)`, { path: file })
    }
    const db = await open(path, { readOnly: true, create: false, cacheSize: 0 })
    const progress = new Progress(io.stderr, 'export', 'pairs')
    const temporary = toStdout ? undefined : nodePath.join(nodePath.dirname(file), `.${nodePath.basename(file)}.${process.pid}.partial`)
    let output: fs.WriteStream | undefined
    try {
      if (temporary !== undefined) {
        try {
          output = fs.createWriteStream(temporary, { flags: 'wx' })
          await new Promise<void>((resolve, reject) => output!.once('open', () => resolve()).once('error', reject))
        } catch (error) {
          throw fileError(error, temporary, 'creating')
        }
      }
      const summary = await exportStore(db, output ?? io.stdout, { onProgress: (pairs, total) => progress.update(pairs, total) })
      progress.finish()
      if (output !== undefined && temporary !== undefined) {
        try {
          await finished(output)
          syncPath(temporary)
          fs.renameSync(temporary, file!)
          syncPath(nodePath.dirname(file!))
        } catch (error) {
          throw fileError(error, file!, 'writing')
        }
      }
      if (args.json) await write(io.stdout, formatJson({ ...summary, file }))
      else if (!toStdout) await write(io.stdout, `exported ${plural(summary.pairs, 'pair')} (${formatBytes(summary.keyBytes + summary.valueBytes)} of keys and values) to ${file}\n`)
      return EXIT.ok
    } catch (error) {
      progress.finish()
      if (temporary !== undefined) {
        output?.destroy()
        fs.rmSync(temporary, { force: true })
      }
      throw error
    } finally {
      await db.close()
    }
  },
}

export const importCommand: Command = {
  name: 'import',
  synopsis: 'import <path> [file] [options]',
  summary: 'load a dump (file or stdin) into a new store',
  help: `Reads a dump from [file] (or stdin, when it is missing or -) and writes its
pairs into the store at <path>. A missing or empty <path> is made into a new
store with the sizing flags; --expected-keys defaults to the pair count the
dump records. A store that already holds keys is refused unless --merge
(then keys in the dump take its values and other keys stay).

Every frame is verified before its pairs are written. A damaged or truncated
dump fails with CUBBY_CORRUPT after the pairs before the damage were written:
restore into a new store and remove it if the import fails.

${SIZING_HELP}
  --merge                  import into a store that already holds keys
  --json                   print {"pairs", "keyBytes", "valueBytes", "bytes"}`,
  options: { ...SIZING_OPTIONS, merge: { type: 'boolean' } },
  async run(args, io) {
    const [path, file] = expectPositionals(args.positionals, 1, 2, '<path> [file]') as [string, string | undefined]
    const fromStdin = file === undefined || file === '-'
    if (fromStdin && io.stdin.isTTY === true) throw new UsageError('no dump: give a [file] or pipe one to stdin')
    let input: NodeJS.ReadableStream
    let totalBytes = 0
    if (fromStdin) {
      input = io.stdin
    } else {
      try {
        totalBytes = fs.statSync(file).size
        input = fs.createReadStream(file)
      } catch (error) {
        throw fileError(error, file, 'reading')
      }
    }
    const reader = new DumpReader(input as AsyncIterable<Uint8Array>)
    const header = await reader.header()
    const db = await open(path, { ...sizingOptions(args.values, Math.max(1, header.pairsExpected)), create: true })
    const progress = new Progress(io.stderr, 'import', 'bytes')
    try {
      const stats = db.stats()
      const held = stats.keys + stats.bufferedWrites
      if (held > 0 && args.values.merge !== true) {
        throw new CubbyError(ErrorCode.INVALID_ARGUMENT, `${path} already holds ${plural(held, 'key')}; import into a new store, or pass --merge to add the dump's pairs to them`, { path })
      }
      const summary = await importStore(db, reader, { onProgress: (bytesRead) => progress.update(bytesRead, totalBytes) })
      progress.finish()
      if (args.json) await write(io.stdout, formatJson(summary))
      else await write(io.stdout, `imported ${plural(summary.pairs, 'pair')} (${formatBytes(summary.keyBytes + summary.valueBytes)} of keys and values) into ${path}\n`)
      return EXIT.ok
    } finally {
      progress.finish()
      await db.close()
    }
  },
}
