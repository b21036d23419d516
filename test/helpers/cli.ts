// Runs the real `cubby` binary (dist/cli/main.js, built by `npm test`) in a
// child process, the way a user does, and collects what it printed; and
// makes fresh image-file paths under os.tmpdir().
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

/** The built binary: dist-test/test/helpers/ → the package root → dist/cli/main.js. */
export const CUBBY = path.resolve(__dirname, '..', '..', '..', 'dist', 'cli', 'main.js')

export interface CliResult {
  status: number | null
  stdout: Buffer
  stderr: string
  /** stdout as UTF-8. */
  text: string
}

export interface CliOptions {
  /** Bytes written to stdin (then closed); stdin is closed at once without it. */
  input?: Buffer | string
  cwd?: string
}

export function cubby(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CUBBY, ...args], { cwd: options.cwd ?? os.tmpdir(), stdio: ['pipe', 'pipe', 'pipe'] })
    const stdout: Buffer[] = []
    const stderr: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk))
    child.once('error', reject)
    child.stdin.on('error', () => undefined)
    child.stdin.end(options.input)
    child.once('close', (status) => {
      const out = Buffer.concat(stdout)
      resolve({ status, stdout: out, stderr: Buffer.concat(stderr).toString('utf8'), text: out.toString('utf8') })
    })
  })
}

/** Runs cubby with --json appended and parses stdout (which must be one JSON document). */
export async function cubbyJson<T = Record<string, unknown>>(args: readonly string[], options: CliOptions = {}): Promise<{ status: number | null; json: T; stderr: string }> {
  const result = await cubby([...args, '--json'], options)
  let json: T
  try {
    json = JSON.parse(result.text) as T
  } catch {
    throw new Error(`cubby ${args.join(' ')} --json printed no JSON (status ${result.status}): ${result.text} ${result.stderr}`)
  }
  return { status: result.status, json, stderr: result.stderr }
}

/** A path in a new temporary directory, for an image file or a dump. */
export function temporaryPath(name: string): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cubby-cli-')), name)
}
