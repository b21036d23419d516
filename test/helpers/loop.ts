/**
 * Loop devices for tests: a real block device (/dev/loopN) over an image
 * file, so that the code that runs on /dev nodes in production (O_EXCL,
 * BLKGETSIZE64, BLKDISCARD, ...) runs in tests too.
 *
 * Needs root and losetup. `loopUnavailableReason()` says why a test must be
 * skipped (declare it with test.skip and print the reason). Every device
 * attached here is detached by withLoopDevice's `finally`, and, should a test
 * process die first, by an exit handler; the image lives in a temporary
 * directory that is removed with it.
 *
 * Use:
 *   const reason = loopUnavailableReason()
 *   const loopTest = reason === undefined ? test : test.skip
 *   loopTest('...', (t) => withLoopDevice({ bytes: 16 << 20 }, async (loop) => { ... loop.device ... }))
 */

import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

export interface LoopDevice {
  /** The /dev/loopN node. */
  device: string
  /** The image file behind it. */
  image: string
}

export interface LoopOptions {
  /** Size of the image (and so of the device) in bytes. */
  bytes: number
  /** Attach read-only (losetup -r): opening it for writing fails with EROFS / EACCES. */
  readOnly?: boolean
  /** Logical sector size of the device (losetup --sector-size), default 512. */
  sectorSize?: number
}

const attached = new Set<string>()
let exitHandlerInstalled = false

/** Why loop devices cannot be used here, or undefined when they can. */
export function loopUnavailableReason(): string | undefined {
  if (process.platform !== 'linux') return 'loop devices are Linux-only'
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'attaching a loop device needs root'
  if (!fs.existsSync('/dev/loop-control')) return 'no /dev/loop-control: the loop driver is not available'
  try {
    execFileSync('losetup', ['--version'], { stdio: 'ignore' })
  } catch {
    return 'losetup (util-linux) is not installed'
  }
  return undefined
}

function detach(device: string): void {
  try {
    execFileSync('losetup', ['-d', device], { stdio: 'ignore' })
  } finally {
    attached.delete(device)
  }
}

/** Attaches `image` to a free loop device and returns its path. Prefer withLoopDevice, which always detaches. */
export function attachLoopDevice(image: string, options: Omit<LoopOptions, 'bytes'> = {}): string {
  if (!exitHandlerInstalled) {
    exitHandlerInstalled = true
    process.on('exit', () => {
      for (const device of attached) detach(device)
    })
  }
  const args = ['-f', '--show']
  if (options.readOnly) args.push('-r')
  if (options.sectorSize !== undefined) args.push('--sector-size', String(options.sectorSize))
  args.push(image)
  const device = execFileSync('losetup', args, { encoding: 'utf8' }).trim()
  attached.add(device)
  return device
}

/** Creates a sparse image of `options.bytes`, attaches it, runs `body`, and always detaches and removes it. */
export async function withLoopDevice<T>(options: LoopOptions, body: (loop: LoopDevice) => Promise<T>): Promise<T> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'cubbydb-loop-'))
  const image = path.join(directory, 'device.img')
  try {
    fs.writeFileSync(image, '')
    fs.truncateSync(image, options.bytes)
    const device = attachLoopDevice(image, options)
    try {
      return await body({ device, image })
    } finally {
      detach(device)
    }
  } finally {
    fs.rmSync(directory, { recursive: true, force: true })
  }
}
