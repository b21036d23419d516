/**
 * Small things the native-volume tests share: a temporary directory removed
 * when the test ends, recognisable byte patterns, the I/O paths to run each
 * test on, and child processes that open a volume (and one that is killed
 * while it writes).
 */

import { execFile, spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import test, { type ExecutionContext, type TestFn } from 'ava'
import { binding } from '../../src/native'

/** Both I/O paths of the shim: every I/O test runs on each. */
export const IO_PATHS = ['io_uring', 'threadpool'] as const
export type IoPath = (typeof IO_PATHS)[number]

/** Why this kernel gives no io_uring (the shim's own probe), or undefined when it does. */
function probeIoUring(): string | undefined {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'cubbydb-probe-'))
  try {
    const opened = binding.open(path.join(directory, 'probe.img'), { readOnly: false, create: true, buffered: true, ioPath: 'auto' })
    void binding.close(opened.handle)
    return opened.ioUringUnavailable
  } finally {
    fs.rmSync(directory, { recursive: true, force: true })
  }
}

export const ioUringUnavailableReason = probeIoUring()

const printedReasons = new Set<string>()

/** `test`, or `test.skip` (printing why, once) when `reason` is set. */
export function testWhen(reason: string | undefined, what: string): TestFn {
  if (reason === undefined) return test
  const line = `skipping ${what}: ${reason}`
  if (!printedReasons.has(line)) console.log(line)
  printedReasons.add(line)
  return test.skip as unknown as TestFn
}

/** Why an I/O path cannot run here, or undefined. */
export function ioPathUnavailableReason(ioPath: IoPath): string | undefined {
  return ioPath === 'io_uring' ? ioUringUnavailableReason : undefined
}

/** `test` for an I/O path, or `test.skip` when this kernel lacks it. */
export function testOn(ioPath: IoPath): TestFn {
  return testWhen(ioPathUnavailableReason(ioPath), `the ${ioPath} tests`)
}

/** A fresh directory under os.tmpdir(), removed when the test finishes. */
export function scratchDirectory(t: ExecutionContext): string {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'cubbydb-test-'))
  t.teardown(() => fs.rmSync(directory, { recursive: true, force: true }))
  return directory
}

/** Byte i of the pattern `seed`: differs between seeds and along a sector. */
function patternByte(seed: number, index: number): number {
  return (seed * 131 + index * 7 + (index >> 9)) & 0xff
}

/** Fills buffer[start, end) with pattern `seed`. */
export function fillPattern(buffer: Uint8Array, seed: number, start = 0, end = buffer.length): void {
  for (let index = start; index < end; index++) buffer[index] = patternByte(seed, index - start)
}

/** Whether buffer[start, end) holds pattern `seed` (as fillPattern wrote it). */
export function holdsPattern(buffer: Uint8Array, seed: number, start = 0, end = buffer.length): boolean {
  for (let index = start; index < end; index++) if (buffer[index] !== patternByte(seed, index - start)) return false
  return true
}

export function isZero(buffer: Uint8Array, start = 0, end = buffer.length): boolean {
  for (let index = start; index < end; index++) if (buffer[index] !== 0) return false
  return true
}

/**
 * Tries openFileVolume(target) in a separate Node process and returns the
 * error code it got, or 'opened'.
 */
export function openInChildProcess(target: string, options: object = {}): Promise<string> {
  const deviceModule = path.join(__dirname, '..', '..', 'src', 'device')
  const script = `
    const { openFileVolume } = require(${JSON.stringify(deviceModule)})
    openFileVolume(${JSON.stringify(target)}, ${JSON.stringify(options)})
      .then((volume) => { process.stdout.write('opened'); return volume.close() })
      .catch((error) => process.stdout.write(String(error.code)))`
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', script], (error, stdout, stderr) => {
      if (error) reject(new Error(`child process failed: ${stderr}`))
      else resolve(stdout)
    })
  })
}

/**
 * Opens `target` in a child process, starts `writes` 1 MiB writes without
 * waiting for them, and kills the child with SIGKILL while they are in
 * flight. Resolves once the child has exited and been reaped.
 */
export function killWhileWriting(target: string, ioPath: IoPath, writes = 32): Promise<void> {
  const deviceModule = path.join(__dirname, '..', '..', 'src', 'device')
  const script = `
    const { openFileVolume } = require(${JSON.stringify(deviceModule)})
    openFileVolume(${JSON.stringify(target)}, { ioPath: ${JSON.stringify(ioPath)} }).then((volume) => {
      const buffer = volume.allocate(1 << 20)
      for (let index = 0; index < ${writes}; index++) {
        volume.write([{ offset: (index << 20) % volume.size, length: 1 << 20, buffer, bufferOffset: 0 }]).catch(() => {})
      }
      process.stdout.write('writing')
      setInterval(() => {}, 1000)
    })`
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('writing')) child.kill('SIGKILL')
    })
    child.on('error', reject)
    child.on('close', (_code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error('the writer was not killed'))))
  })
}
