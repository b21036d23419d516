/**
 * `cubby check` and `cubby salvage`: the command-line face of src/check.ts
 * (docs/reliability.md says what each verifies).
 *
 * check verifies every checksum and structure of a closed store without
 * writing to it, prints each problem with its structure, location and code,
 * and exits 0 only when the store is healthy (1 otherwise, with the report
 * still on stdout). A path that cannot be opened (missing: CUBBY_NOT_A_STORE;
 * held by a process: CUBBY_LOCKED; CUBBY_IO) is an error like any other
 * command's. A file holding other data is a reported problem
 * (CUBBY_NOT_A_STORE), not an error: a raw store whose two superblocks were
 * destroyed reads the same, and its buckets are still checked.
 *
 * salvage copies every pair whose block verifies into a new store. It exits
 * 0 once the new store is written, whatever it could not read (the report
 * says how many pairs were lost, and where); the target must not hold
 * anything: a file or block device that is not empty (all zeros) is refused
 * and left untouched (salvageStore checks it).
 */

import { type CheckProblem, type CheckReport, checkStore, salvageStore } from '../../check'
import { ErrorCode } from '../../errors'
import { expectPositionals } from '../args'
import { type Command, EXIT, write } from '../command'
import { formatBytes, formatCount, formatJson, formatTable, plural, Progress } from '../output'
import { COMPRESSION_MODES, givenSizing, SIZING_OPTIONS } from './create'

/** Problems a line each: structure, location, code, message. */
function formatProblems(problems: readonly CheckProblem[], indent = '  '): string {
  return problems.map((problem) => `${indent}${problem.structure} at ${problem.location}: ${problem.code}: ${problem.message}`).join('\n')
}

/** The counts of a report as a table; counts of bytes as sizes. */
function formatCounts(counts: Readonly<Record<string, number>>): string {
  const rows = Object.entries(counts)
    .filter(([name]) => name !== 'problems not listed')
    .map(([name, value]) => [name, / bytes( |$)/.test(name) ? formatBytes(value) : formatCount(value)] as [string, string])
  return rows.length === 0 ? '' : `${formatTable(rows)}\n`
}

/** "and 12 more problems, counted but not listed" when the report hit its bound. */
function unlisted(counts: Readonly<Record<string, number>>): string {
  const more = counts['problems not listed'] ?? 0
  return more > 0 ? `  … and ${plural(more, 'more problem')}, counted but not listed\n` : ''
}

function modeName(mode: CheckReport['mode']): string {
  return mode === 'lz4' ? 'mode lz4' : 'mode none: raw blocks'
}

export const checkCommand: Command = {
  name: 'check',
  synopsis: 'check <path> [options]',
  summary: 'verify every checksum and structure of a closed store; exit 0 only if healthy',
  help: `Reads the closed store at <path> (read-only: nothing is written, not even to
recover) and verifies every checksum and structure: superblocks, flush
journals, the allocation bitmap, the log, every bucket and overflow chain
(entries parse, fingerprints match, keys in the right bucket, no key twice),
every value extent, the superblock's counts, and in lz4 mode the compression
layer's header, checkpoints, map pages and segments. What an open repairs by
itself after a crash (a log to replay) is counted, not reported.

Prints each problem with its structure, location (LBA, bucket, segment) and
CUBBY_* code, then what was checked. Exit status 0: healthy; 1: problems were
found (they are on stdout), or the store could not be opened (missing:
CUBBY_NOT_A_STORE; held by a process: CUBBY_LOCKED). A file holding other
data is reported as a CUBBY_NOT_A_STORE problem.

  --json                   print the report: {path, healthy, mode, problems:
                           [{structure, location, code, message}], counts}`,
  options: {},
  async run(args, io) {
    const [path] = expectPositionals(args.positionals, 1, 1, '<path>') as [string]
    const progress = new Progress(io.stderr, 'check', 'steps')
    let report: CheckReport
    try {
      report = await checkStore(path, { onProgress: (done, total) => progress.update(done, total) })
    } finally {
      progress.finish()
    }
    const status = report.healthy ? EXIT.ok : EXIT.failed
    if (args.json) {
      await write(io.stdout, formatJson(report))
      return status
    }
    const found = report.problems.length + (report.counts['problems not listed'] ?? 0)
    if (report.healthy) {
      await write(io.stdout, `${path}: healthy (${modeName(report.mode)})\n${formatCounts(report.counts)}`)
      return status
    }
    const checked = formatCounts(report.counts)
    await write(io.stdout, `${path}: ${plural(found, 'problem')} (${modeName(report.mode)})\n${formatProblems(report.problems)}\n${unlisted(report.counts)}${checked === '' ? '' : `checked:\n${checked}`}`)
    const noStore = report.problems.every((problem) => problem.code === ErrorCode.NOT_A_STORE)
    const hint = noStore ? '' : '; `cubby salvage` copies what is readable into a new store'
    await write(io.stderr, `cubby check: ${path} is not healthy: ${plural(found, 'problem')}${hint}\n`)
    return status
  },
}

export const salvageCommand: Command = {
  name: 'salvage',
  synopsis: 'salvage <damaged> <new> [options]',
  summary: 'copy every readable pair of a damaged store into a new store',
  help: `Reads the store at <damaged> (read-only) the way a check does, and copies
every pair whose block verifies, with its value (a large value only when its
checksum holds), into a new store at <new>. Nothing unverified is copied: the
entries of a damaged block are lost, not guessed. Records of the log newer
than their bucket win, as in recovery.

<new> must not exist, or be an empty file or an all-zero block device; a
file holding data, or a device holding a store, is refused (CUBBY_INVALID_ARGUMENT)
and left untouched. The new store is sized for the source's key count and
takes its compression mode unless the flags say otherwise.

Exit status 0 once the new store is written, even when pairs were lost (the
report says how many at least, and where); 1 when the salvage could not run.

  --expected-keys N        keys to size the new store for  (the source's key count, ≥ 1000)
  --key-size BYTES         typical key size                                  (24)
  --value-size BYTES       typical value size                                (100)
  --size BYTES             logical size of a new image file, sparse     (64× the keys, ≥ 4GiB)
  --compression MODE       ${COMPRESSION_MODES.join(' or ')}: the new store's mode              (the source's)
  --json                   print {from, to, pairs, unreadable, problems}`,
  options: { ...SIZING_OPTIONS },
  async run(args, io) {
    const [from, to] = expectPositionals(args.positionals, 2, 2, '<damaged> <new>') as [string, string]
    const sizing = givenSizing(args.values)
    const progress = new Progress(io.stderr, 'salvage', 'steps')
    let report
    try {
      report = await salvageStore(from, to, { onProgress: (done, total) => progress.update(done, total), open: sizing })
    } finally {
      progress.finish()
    }
    if (args.json) {
      await write(io.stdout, formatJson(report))
      return EXIT.ok
    }
    const lost = report.unreadable > 0 ? `; at least ${plural(report.unreadable, 'pair')} could not be read` : ''
    const problems =
      report.problems.length === 0
        ? `no problem found in ${from}\n`
        : `${plural(report.problems.length, 'problem')} in ${from}:\n${formatProblems(report.problems)}\n`
    await write(io.stdout, `salvaged ${plural(report.pairs, 'pair')} from ${from} into ${to}${lost}\n${problems}`)
    return EXIT.ok
  },
}
