// NativeVolume when the operating system says no: a file system without
// O_DIRECT, a read-only mount, a full file system, and a device whose every
// I/O fails with a real kernel EIO. Each needs root or a kernel feature and is
// skipped, with the reason printed, where it is missing.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { BLOCK_SIZE, openFileVolume } from '../src/device'
import { ErrorCode } from '../src/errors'
import {
  deviceMapperUnavailableReason,
  mountUnavailableReason,
  noDirectIoUnavailableReason,
  withErrorDevice,
  withMount,
  withNoDirectIoDirectory,
  withReadOnlyView,
} from './helpers/mounts'
import { IO_PATHS, fillPattern, holdsPattern, ioPathUnavailableReason, testWhen } from './helpers/scratch'

const noDirectIoReason = noDirectIoUnavailableReason()
const mountReason = mountUnavailableReason()
const deviceMapperReason = deviceMapperUnavailableReason()
const noDirectIoTest = testWhen(noDirectIoReason, 'the O_DIRECT refusal tests')
const mountTest = testWhen(mountReason, 'the read-only and full file system tests')

noDirectIoTest('a file system that refuses O_DIRECT gives a CUBBY_IO that says so, and creates nothing', async (t) => {
  await withNoDirectIoDirectory(async (directory) => {
    const image = path.join(directory, 'store.img')
    const error = await t.throwsAsync(openFileVolume(image, { create: true }))
    t.like(error, { code: ErrorCode.IO, errno: 'EINVAL', syscall: 'fcntl(O_DIRECT)', path: image })
    t.regex((error as Error).message, /does not support direct I\/O.*buffered: true/s)
    t.false(fs.existsSync(image), 'the file the failed open created is removed')
  })
})

for (const ioPath of IO_PATHS) {
  testWhen(noDirectIoReason ?? ioPathUnavailableReason(ioPath), 'the buffered fallback tests').serial(`${ioPath}: buffered: true opens it without O_DIRECT and round-trips data`, async (t) => {
    await withNoDirectIoDirectory(async (directory) => {
      const volume = await openFileVolume(path.join(directory, 'store.img'), { create: true, buffered: true, ioPath })
      try {
        t.false(volume.directIo)
        t.is(volume.ioPath, ioPath)
        await volume.grow(64 * BLOCK_SIZE)
        const buffer = volume.allocate(2 * BLOCK_SIZE)
        fillPattern(buffer, 6)
        await volume.write([{ offset: 5 * BLOCK_SIZE, length: 2 * BLOCK_SIZE, buffer, bufferOffset: 0 }])
        await volume.sync()
        const out = volume.allocate(2 * BLOCK_SIZE)
        await volume.read([{ offset: 5 * BLOCK_SIZE, length: 2 * BLOCK_SIZE, buffer: out, bufferOffset: 0 }])
        t.true(holdsPattern(out, 6))
      } finally {
        await volume.close()
      }
    })
  })
}

mountTest('a file on a read-only mount: a writable open is CUBBY_READ_ONLY, a read-only open reads', async (t) => {
  await withReadOnlyView(async (writable, readOnly) => {
    const setup = await openFileVolume(path.join(writable, 'store.img'), { create: true })
    await setup.grow(16 * BLOCK_SIZE)
    const buffer = setup.allocate(BLOCK_SIZE)
    fillPattern(buffer, 12)
    await setup.write([{ offset: BLOCK_SIZE, length: BLOCK_SIZE, buffer, bufferOffset: 0 }])
    await setup.close()

    const image = path.join(readOnly, 'store.img')
    const refused = await t.throwsAsync(openFileVolume(image))
    t.like(refused, { code: ErrorCode.READ_ONLY, errno: 'EROFS', syscall: 'open', path: image })
    const notCreated = await t.throwsAsync(openFileVolume(path.join(readOnly, 'new.img'), { create: true }))
    t.is((notCreated as { code?: string }).code, ErrorCode.READ_ONLY)

    const volume = await openFileVolume(image, { readOnly: true })
    try {
      const out = volume.allocate(BLOCK_SIZE)
      await volume.read([{ offset: BLOCK_SIZE, length: BLOCK_SIZE, buffer: out, bufferOffset: 0 }])
      t.true(holdsPattern(out, 12))
      const write = await t.throwsAsync(volume.write([{ offset: 0, length: BLOCK_SIZE, buffer: out, bufferOffset: 0 }]))
      t.is((write as { code?: string }).code, ErrorCode.READ_ONLY)
    } finally {
      await volume.close()
    }
  })
})

for (const ioPath of IO_PATHS) {
  testWhen(mountReason ?? ioPathUnavailableReason(ioPath), 'the full file system tests').serial(`${ioPath}: a full file system gives CUBBY_FULL (ENOSPC), then the volume refuses writes until reopened`, async (t) => {
      await withMount('tmpfs', 'size=1m', async (directory) => {
        const image = path.join(directory, 'store.img')
        const volume = await openFileVolume(image, { create: true, buffered: true, ioPath })
        await volume.grow(4 * 1024 * 1024)
        const buffer = volume.allocate(2 * 1024 * 1024)
        fillPattern(buffer, 2)
        const full = await t.throwsAsync(volume.write([{ offset: 0, length: buffer.length, buffer, bufferOffset: 0 }]))
        t.like(full, { code: ErrorCode.FULL, errno: 'ENOSPC', path: image })
        const refused = await t.throwsAsync(volume.write([{ offset: 0, length: BLOCK_SIZE, buffer, bufferOffset: 0 }]))
        t.is((refused as { code?: string }).code, ErrorCode.IO)
        t.regex((refused as Error).message, /earlier write or sync failed/)
        const syncRefused = await t.throwsAsync(volume.sync())
        t.is((syncRefused as { code?: string }).code, ErrorCode.IO, 'no sync after a failed write: it could report success over lost data')
        const out = volume.allocate(BLOCK_SIZE)
        await t.notThrowsAsync(volume.read([{ offset: 0, length: BLOCK_SIZE, buffer: out, bufferOffset: 0 }]), 'reads still work')
        await volume.close()

        const reopened = await openFileVolume(image, { buffered: true, ioPath })
        await reopened.discard(0, reopened.size)
        await reopened.write([{ offset: 0, length: BLOCK_SIZE, buffer, bufferOffset: 0 }])
        await reopened.read([{ offset: 0, length: BLOCK_SIZE, buffer: out, bufferOffset: 0 }])
        await reopened.close()
        t.true(holdsPattern(out, 2, 0, BLOCK_SIZE), 'a reopened volume writes again')
      })
    })
}

for (const ioPath of IO_PATHS) {
  testWhen(deviceMapperReason ?? ioPathUnavailableReason(ioPath), 'the kernel EIO tests (device-mapper error target)')(`${ioPath}: a device that fails every I/O gives CUBBY_IO with the kernel's EIO`, async (t) => {
    await withErrorDevice(1024 * 1024, async (device) => {
      const volume = await openFileVolume(device, { ioPath })
      try {
        const buffer = volume.allocate(BLOCK_SIZE)
        const read = await t.throwsAsync(volume.read([{ offset: 0, length: BLOCK_SIZE, buffer, bufferOffset: 0 }]))
        t.like(read, { code: ErrorCode.IO, errno: 'EIO', errnoNumber: 5, path: device })
        const write = await t.throwsAsync(volume.write([{ offset: 0, length: BLOCK_SIZE, buffer, bufferOffset: 0 }]))
        t.like(write, { code: ErrorCode.IO, errno: 'EIO' })
        t.regex((write as Error).message, /Input\/output error/)
      } finally {
        await volume.close()
      }
    })
  })
}
