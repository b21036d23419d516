/**
 * Scratch file systems and devices for failure tests: a directory where
 * O_DIRECT is refused, a tiny tmpfs that fills up, a read-only bind mount, and
 * a device-mapper `error` target that fails every I/O with a real kernel EIO.
 *
 * Each `with*` helper sets its thing up, runs the body, and always tears it
 * down (unmount, remove) in `finally`. Most need root; each has an
 * `...UnavailableReason()` that says why a test must be skipped.
 */

import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0
}

function run(command: string, args: string[]): void {
  execFileSync(command, args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

/** Mounts a fresh file system of `type` on a temporary directory for the body's duration. */
export async function withMount<T>(type: string, options: string, body: (directory: string) => Promise<T>): Promise<T> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), `cubbydb-${type}-`))
  try {
    run('mount', ['-t', type, '-o', options, 'none', directory])
    try {
      return await body(directory)
    } finally {
      run('umount', [directory])
    }
  } finally {
    fs.rmSync(directory, { recursive: true, force: true })
  }
}

/** Whether a file in `directory` can be opened with O_DIRECT. */
export function directIoWorks(directory: string): boolean {
  const probe = path.join(directory, `.cubbydb-direct-probe-${process.pid}`)
  fs.writeFileSync(probe, '')
  try {
    fs.closeSync(fs.openSync(probe, fs.constants.O_RDWR | fs.constants.O_DIRECT))
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EINVAL') return false
    throw error
  } finally {
    fs.rmSync(probe, { force: true })
  }
}

/** Why no directory refusing O_DIRECT can be had, or undefined. */
export function noDirectIoUnavailableReason(): string | undefined {
  if (fs.existsSync('/dev/shm') && !directIoWorks('/dev/shm')) return undefined
  return isRoot() ? undefined : '/dev/shm accepts O_DIRECT (tmpfs does since Linux 6.6) and mounting a ramfs needs root'
}

/** Runs `body` in a directory whose file system refuses O_DIRECT: /dev/shm where it does, else a fresh ramfs. */
export async function withNoDirectIoDirectory<T>(body: (directory: string) => Promise<T>): Promise<T> {
  if (fs.existsSync('/dev/shm') && !directIoWorks('/dev/shm')) {
    const directory = fs.mkdtempSync('/dev/shm/cubbydb-')
    try {
      return await body(directory)
    } finally {
      fs.rmSync(directory, { recursive: true, force: true })
    }
  }
  return withMount('ramfs', 'mode=0755', body)
}

/** Why scratch mounts (tmpfs, bind mounts) cannot be made here, or undefined. */
export function mountUnavailableReason(): string | undefined {
  return isRoot() ? undefined : 'mounting a scratch file system needs root'
}

/** Runs `body` with a writable directory and a read-only bind mount of it. */
export async function withReadOnlyView<T>(body: (writable: string, readOnly: string) => Promise<T>): Promise<T> {
  const writable = fs.mkdtempSync(path.join(os.tmpdir(), 'cubbydb-rw-'))
  const readOnly = fs.mkdtempSync(path.join(os.tmpdir(), 'cubbydb-ro-'))
  try {
    run('mount', ['--bind', writable, readOnly])
    try {
      run('mount', ['-o', 'remount,bind,ro', readOnly])
      return await body(writable, readOnly)
    } finally {
      run('umount', [readOnly])
    }
  } finally {
    fs.rmSync(readOnly, { recursive: true, force: true })
    fs.rmSync(writable, { recursive: true, force: true })
  }
}

/** Why a device-mapper target cannot be made here, or undefined. */
export function deviceMapperUnavailableReason(): string | undefined {
  if (!isRoot()) return 'device-mapper needs root'
  try {
    execFileSync('dmsetup', ['version'], { stdio: ['ignore', 'ignore', 'pipe'] })
  } catch (error) {
    const stderr = String((error as { stderr?: Buffer }).stderr ?? '').trim().split('\n')[0]
    return `device-mapper is not usable here (dmsetup version: ${stderr || (error as Error).message}); install dmsetup and load dm-mod`
  }
  return undefined
}

/** Runs `body` with /dev/mapper/<name>: `bytes` of a dm `error` target, where every read and write fails with EIO. */
export async function withErrorDevice<T>(bytes: number, body: (device: string) => Promise<T>): Promise<T> {
  const name = `cubbydb-error-${process.pid}-${Date.now()}`
  run('dmsetup', ['create', name, '--table', `0 ${Math.floor(bytes / 512)} error`])
  try {
    return await body(`/dev/mapper/${name}`)
  } finally {
    run('dmsetup', ['remove', '--retry', name])
  }
}
