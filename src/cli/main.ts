#!/usr/bin/env node
/**
 * `cubby`: the command-line tool of CubbyDB (the package's bin). Looks
 * inside stores and operates them: create, info, plan, get, put, del,
 * export, import, check, salvage, bench. docs/api.md ("The cubby command") is the contract.
 *
 * This file dispatches: it parses the command line (node:util parseArgs,
 * strict), prints help, runs the subcommand, and turns what it throws into a
 * message on stderr and an exit status (see ./command.ts): 1 with the
 * CubbyError's code for a failed operation, 2 for a usage mistake. With
 * --json the error is also printed to stdout as {"error": {...}}, so a script
 * reading stdout always gets one JSON document.
 */

import * as fs from 'node:fs'
import * as nodePath from 'node:path'
import { CubbyError } from '../errors'
import { parseCommandLine, UsageError } from './args'
import { type Command, type CommandArguments, type CommandIo, EXIT, write } from './command'
import { benchCommand } from './commands/bench'
import { checkCommand, salvageCommand } from './commands/check'
import { createCommand } from './commands/create'
import { exportCommand, importCommand } from './commands/dump'
import { infoCommand } from './commands/info'
import { delCommand, getCommand, putCommand } from './commands/keys'
import { planCommand } from './commands/plan'
import { formatJson } from './output'

export const COMMANDS: readonly Command[] = [createCommand, infoCommand, planCommand, getCommand, putCommand, delCommand, exportCommand, importCommand, checkCommand, salvageCommand, benchCommand]

function version(): string {
  const manifest = JSON.parse(fs.readFileSync(nodePath.resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }
  return manifest.version
}

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((command) => command.name.length))
  return `usage: cubby <command> [arguments] [--json] [--help]

Looks inside and operates CubbyDB stores (image files or block devices).

${COMMANDS.map((command) => `  ${command.name.padEnd(width)}   ${command.summary}`).join('\n')}

Every command takes --help, and --json to print its result as one JSON
document for scripts. Exit status: 0 done (check: the store is healthy);
1 the operation failed (the error's CUBBY_* code is printed), or check found
problems; 2 the command was called wrongly; 3 get found no such key. Sizes
take binary suffixes (64MiB, 4G), counts decimal ones (100k, 10M). More:
docs/api.md, docs/operations.md, docs/reliability.md.
`
}

function commandHelp(command: Command): string {
  return `usage: cubby ${command.synopsis}\n\n${command.help}\n`
}

/** A raw command's arguments: --help and --json before a `--` are ours, everything else is passed on. */
function rawArguments(argv: readonly string[]): CommandArguments {
  const split = argv.indexOf('--')
  const before = split < 0 ? [...argv] : argv.slice(0, split)
  const after = split < 0 ? [] : argv.slice(split + 1)
  const help = before.some((argument) => argument === '--help' || argument === '-h')
  const json = before.includes('--json')
  const positionals = [...before.filter((argument) => argument !== '--json' && argument !== '--help' && argument !== '-h'), ...after]
  return { values: { help, json }, positionals, json }
}

interface ErrorReport {
  code: string
  message: string
  errno?: string
  syscall?: string
  path?: string
}

function describeError(error: unknown): { status: number; report: ErrorReport } {
  if (error instanceof UsageError) return { status: EXIT.usage, report: { code: 'USAGE', message: error.message } }
  if (error instanceof CubbyError) {
    return {
      status: EXIT.failed,
      report: {
        code: error.code,
        message: error.message,
        ...(error.errno === undefined ? {} : { errno: error.errno }),
        ...(error.syscall === undefined ? {} : { syscall: error.syscall }),
        ...(error.path === undefined ? {} : { path: error.path }),
      },
    }
  }
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error)
  return { status: EXIT.failed, report: { code: 'INTERNAL', message: `internal error (please report it): ${message}` } }
}

/** Runs `cubby` with `argv` (the arguments after the program name); resolves with the exit status. */
export async function main(argv: readonly string[], io: CommandIo): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined) {
    await write(io.stderr, mainHelp())
    return EXIT.usage
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    const topic = COMMANDS.find((command) => command.name === rest[0])
    await write(io.stdout, topic === undefined ? mainHelp() : commandHelp(topic))
    return EXIT.ok
  }
  if (name === '--version' || name === '-v') {
    await write(io.stdout, `${version()}\n`)
    return EXIT.ok
  }
  const command = COMMANDS.find((candidate) => candidate.name === name)
  const json = rest.includes('--json')
  const label = command === undefined ? 'cubby' : `cubby ${command.name}`
  try {
    if (command === undefined) throw new UsageError(`unknown command ${JSON.stringify(name)}; the commands are ${COMMANDS.map((candidate) => candidate.name).join(', ')}`)
    let args: CommandArguments
    if (command.rawArguments === true) {
      args = rawArguments(rest)
    } else {
      const parsed = parseCommandLine(rest, command.options)
      args = { ...parsed, json: parsed.values.json === true }
    }
    if (args.values.help === true) {
      await write(io.stdout, commandHelp(command))
      return EXIT.ok
    }
    return await command.run(args, io)
  } catch (error) {
    const { status, report } = describeError(error)
    const code = report.code === 'USAGE' || report.code === 'INTERNAL' ? '' : `${report.code}: `
    const errno = report.errno === undefined ? '' : ` [${report.errno}${report.syscall === undefined ? '' : ` in ${report.syscall}`}]`
    const hint = status === EXIT.usage ? `\nusage: cubby ${command?.synopsis ?? '<command> [arguments]'}\nRun 'cubby ${command === undefined ? '' : `${command.name} `}--help' for more.` : ''
    await write(io.stderr, `${label}: ${code}${report.message}${errno}${hint}\n`)
    if (json) await write(io.stdout, formatJson({ error: { ...report, exitStatus: status } })).catch(() => undefined)
    return status
  }
}

if (require.main === module) {
  // Errors on stdout (EPIPE when a reader goes away) reach the write callbacks; without a listener they would also be thrown.
  process.stdout.on('error', () => undefined)
  main(process.argv.slice(2), process).then(
    (status) => {
      process.exitCode = status
    },
    (error: unknown) => {
      process.stderr.write(`cubby: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
      process.exitCode = EXIT.failed
    },
  )
}
