// NativeVolume and RawBlockDevice on a real block device: a loop device over
// a sparse image (test/helpers/loop.ts), always detached afterwards. Needs
// root; skipped with the reason printed otherwise.
import * as fs from 'node:fs'
import { BLOCK_SIZE, RawBlockDevice, openFileVolume } from '../src/device'
import { ErrorCode } from '../src/errors'
import { loopUnavailableReason, withLoopDevice } from './helpers/loop'
import { IO_PATHS, fillPattern, holdsPattern, ioPathUnavailableReason, isZero, killWhileWriting, openInChildProcess, testWhen } from './helpers/scratch'

const MIB = 1024 * 1024
const loopReason = loopUnavailableReason()
const loopTest = testWhen(loopReason, 'the loop-device tests')

for (const ioPath of IO_PATHS) {
  testWhen(loopReason ?? ioPathUnavailableReason(ioPath), 'the loop-device tests')(
    `${ioPath}: a block device reports its geometry and round-trips blocks through RawBlockDevice`,
    async (t) => {
      await withLoopDevice({ bytes: 16 * MIB }, async ({ device }) => {
        const volume = await openFileVolume(device, { ioPath })
        try {
          t.like(volume, { kind: 'block', size: 16 * MIB, sectorSize: 512, growable: false, ioPath, directIo: true })
          t.true(volume.physicalSectorSize >= 512)
          const grow = await t.throwsAsync(volume.grow(32 * MIB))
          t.is((grow as { code?: string }).code, ErrorCode.INVALID_ARGUMENT)
          const blocks = new RawBlockDevice(volume)
          t.is(blocks.blockCount, (16 * MIB) / BLOCK_SIZE)
          const buffer = blocks.allocate(3)
          fillPattern(buffer, 21)
          await blocks.write([
            { lba: 0, buffer, bufferOffset: 0 },
            { lba: 1000, buffer, bufferOffset: BLOCK_SIZE },
            { lba: blocks.blockCount - 1, buffer, bufferOffset: 2 * BLOCK_SIZE },
          ])
          await blocks.flush()
          const out = blocks.allocate(3)
          await blocks.read([
            { lba: blocks.blockCount - 1, buffer: out, bufferOffset: 0 },
            { lba: 0, buffer: out, bufferOffset: BLOCK_SIZE },
            { lba: 1000, buffer: out, bufferOffset: 2 * BLOCK_SIZE },
          ])
          t.deepEqual(out.subarray(0, BLOCK_SIZE), buffer.subarray(2 * BLOCK_SIZE))
          t.deepEqual(out.subarray(BLOCK_SIZE, 2 * BLOCK_SIZE), buffer.subarray(0, BLOCK_SIZE))
          t.deepEqual(out.subarray(2 * BLOCK_SIZE), buffer.subarray(BLOCK_SIZE, 2 * BLOCK_SIZE))
          const past = await t.throwsAsync(volume.read([{ offset: 16 * MIB, length: BLOCK_SIZE, buffer: out, bufferOffset: 0 }]))
          t.is((past as { code?: string }).code, ErrorCode.INVALID_ARGUMENT, 'a read past the end of the device')
        } finally {
          await volume.close()
        }
      })
    },
  )
}

loopTest('discard on a block device reads back zeros and frees the space of its backing image', async (t) => {
  await withLoopDevice({ bytes: 16 * MIB }, async ({ device, image }) => {
    const volume = await openFileVolume(device)
    try {
      const buffer = volume.allocate(4 * MIB)
      fillPattern(buffer, 30)
      await volume.write([{ offset: 4 * MIB, length: 4 * MIB, buffer, bufferOffset: 0 }])
      await volume.sync()
      const before = fs.statSync(image).blocks * 512
      t.true(before >= 4 * MIB)
      t.is(volume.allocatedBytes(), 16 * MIB, 'a block device counts as fully allocated')
      await volume.discard(4 * MIB, 2 * MIB)
      await volume.sync()
      t.true(fs.statSync(image).blocks * 512 <= before - 2 * MIB, 'the loop driver punched a hole in the image')
      const out = volume.allocate(4 * MIB)
      await volume.read([{ offset: 4 * MIB, length: 4 * MIB, buffer: out, bufferOffset: 0 }])
      t.true(isZero(out, 0, 2 * MIB))
      t.deepEqual(out.subarray(2 * MIB), buffer.subarray(2 * MIB))
    } finally {
      await volume.close()
    }
  })
})

loopTest('a block device is claimed exclusively (O_EXCL): a second open here or in another process is CUBBY_LOCKED', async (t) => {
  await withLoopDevice({ bytes: 4 * MIB }, async ({ device }) => {
    const volume = await openFileVolume(device)
    try {
      const same = await t.throwsAsync(openFileVolume(device, { readOnly: true }))
      t.like(same, { code: ErrorCode.LOCKED, errno: 'EBUSY', path: device })
      t.is(await openInChildProcess(device), ErrorCode.LOCKED)
    } finally {
      await volume.close()
    }
    t.is(await openInChildProcess(device), 'opened', 'closing released the claim')
  })
})

for (const ioPath of IO_PATHS) {
  testWhen(loopReason ?? ioPathUnavailableReason(ioPath), 'the loop-device tests')(
    `${ioPath}: a block device whose owner was killed with writes in flight reopens (its O_EXCL claim goes with the I/O)`,
    async (t) => {
      await withLoopDevice({ bytes: 64 * MIB }, async ({ device }) => {
        for (let round = 0; round < 3; round++) {
          await killWhileWriting(device, ioPath)
          const reopened = await openFileVolume(device)
          t.is(reopened.kind, 'block')
          await reopened.close()
        }
      })
    },
  )
}

loopTest('a read-only block device (losetup -r): a writable open is CUBBY_READ_ONLY, a read-only open reads', async (t) => {
  await withLoopDevice({ bytes: 4 * MIB, readOnly: true }, async ({ device }) => {
    const refused = await t.throwsAsync(openFileVolume(device))
    t.like(refused, { code: ErrorCode.READ_ONLY, errno: 'EROFS', path: device })
    const volume = await openFileVolume(device, { readOnly: true })
    try {
      const out = volume.allocate(BLOCK_SIZE)
      out.fill(0xab)
      await volume.read([{ offset: 0, length: BLOCK_SIZE, buffer: out, bufferOffset: 0 }])
      t.true(isZero(out))
      const write = await t.throwsAsync(volume.write([{ offset: 0, length: BLOCK_SIZE, buffer: out, bufferOffset: 0 }]))
      t.is((write as { code?: string }).code, ErrorCode.READ_ONLY)
    } finally {
      await volume.close()
    }
  })
})

loopTest('a device with 4 KiB logical sectors refuses 512-byte alignment and accepts 4 KiB', async (t) => {
  await withLoopDevice({ bytes: 4 * MIB, sectorSize: 4096 }, async ({ device }) => {
    const volume = await openFileVolume(device)
    try {
      t.is(volume.sectorSize, 4096)
      const buffer = volume.allocate(2 * BLOCK_SIZE)
      fillPattern(buffer, 40)
      const misaligned = await t.throwsAsync(volume.write([{ offset: 512, length: BLOCK_SIZE, buffer, bufferOffset: 0 }]))
      t.is((misaligned as { code?: string }).code, ErrorCode.INVALID_ARGUMENT)
      await volume.write([{ offset: BLOCK_SIZE, length: 2 * BLOCK_SIZE, buffer, bufferOffset: 0 }])
      const out = volume.allocate(2 * BLOCK_SIZE)
      await volume.read([{ offset: BLOCK_SIZE, length: 2 * BLOCK_SIZE, buffer: out, bufferOffset: 0 }])
      t.true(holdsPattern(out, 40))
    } finally {
      await volume.close()
    }
  })
})
