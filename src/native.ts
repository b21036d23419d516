/**
 * The typed view of the native shim (native/addon.cc), and the only module
 * that loads it. Everything above src/device/ reaches native code through the
 * device interfaces, never through this module, except pure functions such as
 * crc32c.
 *
 * The addon is looked up from this file's directory upwards, so the same code
 * works from dist/ (the package) and from dist-test/src/ (the tests). Set
 * CUBBYDB_NATIVE to the path of a .node file to load another build (the
 * cmake-js sanitizer build, for example).
 */

import * as fs from 'node:fs'
import * as path from 'node:path'

/** Constants defined once in native/constants.h and exported by the addon. */
export interface NativeConstants {
  BLOCK_SIZE: number
  BUFFER_ALIGNMENT: number
  MAX_BATCH_REQUESTS: number
}

export interface NativeBinding {
  constants: NativeConstants
  crc32c(data: Uint8Array, start: number, end: number, seed: number): number
}

function findAddon(): string {
  const override = process.env.CUBBYDB_NATIVE
  if (override !== undefined && override !== '') return path.resolve(override)
  let directory = __dirname
  for (;;) {
    const candidate = path.join(directory, 'build', 'Release', 'cubbydb.node')
    if (fs.existsSync(candidate)) return candidate
    const parent = path.dirname(directory)
    if (parent === directory) break
    directory = parent
  }
  throw new Error(`cubbydb: the native addon is not built (no build/Release/cubbydb.node above ${__dirname}); run \`npm install\` or \`npm run build\``)
}

/** The loaded addon. */
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const binding: NativeBinding = require(findAddon()) as NativeBinding

export const constants: Readonly<NativeConstants> = Object.freeze({ ...binding.constants })
