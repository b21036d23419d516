// A store on a real block device: a loop device over a sparse image
// (losetup -f --show IMAGE, detached afterwards). Needs root; otherwise the
// tests are skipped with the reason printed.
//
// open('/dev/loopN') is used when the device layer can size a block node
// (the native shim); until then the store is opened on a test volume over the
// node (test/helpers/block-volume.ts) through the same openOnVolume seam.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { type CubbyDB, type OpenOptions, open, openOnVolume } from '../src/db'
import { openFileVolume } from '../src/device'
import { ErrorCode } from '../src/errors'
import { BlockNodeVolume } from './helpers/block-volume'
import { rejectsWith } from './helpers/store'

const IMAGE_BYTES = 512 * 1024 * 1024

function whyNot(): string | undefined {
  if (process.getuid?.() !== 0) return 'loop devices need root'
  try {
    execFileSync('losetup', ['--version'], { stdio: 'ignore' })
  } catch {
    return 'losetup is not installed'
  }
  return undefined
}

const reason = whyNot()
if (reason !== undefined) console.log(`db-loop: skipped: ${reason}`)
const loopTest = reason === undefined ? test.serial : test.skip

/** Attaches a loop device over a new sparse image, runs `body`, detaches it. */
async function withLoopDevice(body: (device: string) => Promise<void>): Promise<void> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'cubby-loop-'))
  const image = path.join(directory, 'disk.img')
  fs.writeFileSync(image, Buffer.alloc(0))
  fs.truncateSync(image, IMAGE_BYTES)
  const device = execFileSync('losetup', ['-f', '--show', image], { encoding: 'utf8' }).trim()
  try {
    await body(device)
  } finally {
    execFileSync('losetup', ['-d', device])
    fs.rmSync(directory, { recursive: true, force: true })
  }
}

/** Opens `device` through open() when the device layer can size block nodes, else through the test volume. */
async function openDevice(device: string, options: OpenOptions): Promise<CubbyDB> {
  const probe = await openFileVolume(device, { readOnly: true })
  const sized = probe.kind === 'block' && probe.size === IMAGE_BYTES
  await probe.close()
  if (sized) return open(device, options)
  return openOnVolume(new BlockNodeVolume(device), options)
}

loopTest('a store on a loop device survives close and reopen', async (t) => {
  await withLoopDevice(async (device) => {
    const db = await openDevice(device, { expectedKeys: 5000 })
    for (let index = 0; index < 5000; index++) await db.put(`key-${index}`, `value-${index}`, { sync: index % 500 === 0 })
    await db.put('large', Buffer.alloc(100_000, 3))
    await db.close()
    const again = await openDevice(device, { create: false })
    t.is((await again.get('key-0'))!.toString(), 'value-0')
    t.is((await again.get('key-4999'))!.toString(), 'value-4999')
    t.deepEqual(await again.get('large'), Buffer.alloc(100_000, 3))
    let count = 0
    for await (const pair of again.entries()) count += pair ? 1 : 0
    t.is(count, 5001)
    t.is(again.stats().keys, 5001)
    await again.close()
  })
})

loopTest('a loop device holding other data is refused with CUBBY_NOT_A_STORE and left untouched; overwrite: true formats it', async (t) => {
  await withLoopDevice(async (device) => {
    const data = Buffer.alloc(64 * 1024)
    for (let index = 0; index < data.length; index++) data[index] = (index * 13 + 7) & 0xff
    const fd = fs.openSync(device, 'r+')
    fs.writeSync(fd, data, 0, data.length, 8192)
    fs.fsyncSync(fd)
    const error = await rejectsWith(t, openDevice(device, {}), ErrorCode.NOT_A_STORE)
    t.regex(error.message, /not a CubbyDB store/)
    const after = Buffer.alloc(data.length)
    fs.readSync(fd, after, 0, after.length, 8192)
    fs.closeSync(fd)
    t.deepEqual(after, data, 'the data is still there')
    const db = await openDevice(device, { overwrite: true, expectedKeys: 100 })
    await db.put('k', 'v')
    await db.close()
    const again = await openDevice(device, {})
    t.is((await again.get('k'))!.toString(), 'v')
    await again.close()
  })
})
