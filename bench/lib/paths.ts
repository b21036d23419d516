/**
 * Where the benchmark finds the package it belongs to: the directory holding
 * the cubbydb package.json, searched upwards from the compiled file, so the
 * same code works from dist-bench/ and from dist-test/.
 */

import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

export function packageRoot(from: string = __dirname): string {
  let directory = from
  for (;;) {
    const manifest = join(directory, 'package.json')
    if (existsSync(manifest)) {
      const parsed = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }
      if (parsed.name === 'cubbydb') return directory
    }
    const parent = dirname(directory)
    if (parent === directory) throw new Error(`no cubbydb package.json above ${from}`)
    directory = parent
  }
}

/** The version of an installed package, or null when it is not installed. */
export function installedVersion(packageName: string): string | null {
  const manifest = join(packageRoot(), 'node_modules', packageName, 'package.json')
  if (!existsSync(manifest)) return null
  return (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version
}
