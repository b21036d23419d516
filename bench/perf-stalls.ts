/**
 * Finds event-loop stalls in a V8 CPU profile (node --cpu-prof) and says
 * what ran during them: every stretch of consecutive samples that never went
 * back to the event loop ("(idle)" or "(program)") for at least --min-ms,
 * with the functions that took most of it (self time) and the JavaScript
 * entry points it ran under.
 *
 *   node --cpu-prof --cpu-prof-interval 200 dist-test/bench/perf.js stall ...
 *   node dist-test/bench/perf-stalls.js CPU.*.cpuprofile [--min-ms 10] [--top 8]
 */

import * as fs from 'node:fs'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}

interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

function argument(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`)
  return index >= 0 && process.argv[index + 1] !== undefined ? process.argv[index + 1]! : fallback
}

function frameName(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame
  const file = url.split('/').slice(-2).join('/')
  return `${functionName === '' ? '(anonymous)' : functionName}${file === '' ? '' : ` ${file}:${lineNumber + 1}`}`
}

function main(): void {
  const file = process.argv[2]
  if (file === undefined) throw new Error('usage: perf-stalls.js PROFILE.cpuprofile [--min-ms 10] [--top 8]')
  const minimumMs = Number(argument('min-ms', '10'))
  const top = Number(argument('top', '8'))
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const idle = (id: number): boolean => {
    const name = byId.get(id)!.callFrame.functionName
    return name === '(idle)' || name === '(program)'
  }
  /** The outermost JavaScript frame of a sample: what the event loop called. */
  const entry = (id: number): string => {
    let current = id
    let outermost = id
    while (parent.has(current)) {
      const up = parent.get(current)!
      if (byId.get(up)!.callFrame.functionName !== '(root)') outermost = up
      current = up
    }
    return frameName(byId.get(outermost)!)
  }
  const stalls: Array<{ startMs: number; ms: number; self: Map<string, number>; entries: Map<string, number> }> = []
  let clockMs = 0
  let current: (typeof stalls)[number] | undefined
  for (let index = 0; index < profile.samples.length; index++) {
    const deltaMs = profile.timeDeltas[index]! / 1000
    clockMs += deltaMs
    const id = profile.samples[index]!
    if (idle(id)) {
      if (current !== undefined && current.ms >= minimumMs) stalls.push(current)
      current = undefined
      continue
    }
    current ??= { startMs: clockMs, ms: 0, self: new Map(), entries: new Map() }
    current.ms += deltaMs
    const name = frameName(byId.get(id)!)
    current.self.set(name, (current.self.get(name) ?? 0) + deltaMs)
    const root = entry(id)
    current.entries.set(root, (current.entries.get(root) ?? 0) + deltaMs)
  }
  if (current !== undefined && current.ms >= minimumMs) stalls.push(current)
  stalls.sort((left, right) => right.ms - left.ms)
  console.log(`${stalls.length} stretches of ${minimumMs} ms or more without a return to the event loop (profile of ${(clockMs / 1000).toFixed(1)} s)`)
  const rank = (map: Map<string, number>): string =>
    [...map]
      .sort((left, right) => right[1] - left[1])
      .slice(0, top)
      .map(([name, ms]) => `      ${ms.toFixed(1).padStart(7)} ms  ${name}`)
      .join('\n')
  for (const stall of stalls.slice(0, top)) {
    console.log(`\n  ${stall.ms.toFixed(1)} ms at ${(stall.startMs / 1000).toFixed(2)} s; self time:\n${rank(stall.self)}\n    under:\n${rank(stall.entries)}`)
  }
}

main()
