/**
 * What a `cubby` subcommand is, and what it may use: its flags, its help,
 * and a run() that returns the exit status. main.ts parses the arguments,
 * prints help, and turns thrown errors into messages and exit statuses:
 *
 *   0  done (for `check`: the store is healthy)
 *   1  the operation failed: a CubbyError, whose code is printed
 *   2  the command was called wrongly (UsageError)
 *   3  `get`: the key is not in the store
 *
 * Subcommands write results to `io.stdout` and nothing else there; with
 * --json they write exactly one JSON document.
 */

import * as fs from 'node:fs'
import { streamError } from '../dump/export'
import { CubbyError, ErrorCode } from '../errors'
import type { OptionSpec, ParsedArguments } from './args'

export const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3 } as const

export interface CommandIo {
  stdout: NodeJS.WriteStream
  stderr: NodeJS.WriteStream
  stdin: NodeJS.ReadStream
}

export interface CommandArguments extends ParsedArguments {
  json: boolean
}

export interface Command {
  name: string
  /** `create <path> [options]`: shown after "usage: cubby ". */
  synopsis: string
  /** One line for `cubby --help`. */
  summary: string
  /** The rest of `cubby <name> --help`: what it does, and each flag. */
  help: string
  options: OptionSpec
  /** Leaves argument parsing to the command (bench passes flags through). */
  rawArguments?: boolean
  run(args: CommandArguments, io: CommandIo): Promise<number>
}

/** Writes `text` and resolves once the stream has taken it; a stream error (EPIPE: the reader went away) is CUBBY_IO. */
export function write(stream: NodeJS.WritableStream, text: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(text, (error?: Error | null) => (error === undefined || error === null ? resolve() : reject(streamError(error, 'writing the output'))))
  })
}

/** A file error as CUBBY_IO naming the path (ENOENT and friends are operating errors). */
export function fileError(error: unknown, path: string, doing: string): CubbyError {
  if (error instanceof CubbyError) return error
  const errno = (error as NodeJS.ErrnoException).code
  return new CubbyError(ErrorCode.IO, `${doing} ${path}: ${(error as Error).message}`, { ...(errno === undefined ? {} : { errno }), path, cause: error })
}

/**
 * Reads a whole stream, refusing more than `limit` bytes with
 * CUBBY_INVALID_VALUE (a value on stdin or in a file, for `put`).
 */
export async function readBounded(input: AsyncIterable<Uint8Array>, limit: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = []
  let total = 0
  for await (const chunk of input) {
    total += chunk.length
    if (total > limit) throw new CubbyError(ErrorCode.INVALID_VALUE, `${what} is over ${limit} bytes, the largest value a store holds`)
    parts.push(Buffer.from(chunk))
  }
  return Buffer.concat(parts, total)
}

/** Whether `path` names a block device (a /dev node) rather than an image file. */
export function isBlockDevice(path: string): boolean {
  try {
    return fs.statSync(path).isBlockDevice()
  } catch {
    return false
  }
}
