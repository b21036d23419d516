// The reliability soak: the long forms of test/reliability-*.test.ts, run
// for as long as asked, with the figures docs/reliability.md reports.
//
//   npm run soak -- [--kill-cycles 1000] [--power-seeds 4] [--fuzz-stores 2000]
//                   [--fault-seeds 4] [--seed 1] [--only kill,power,fuzz,faults]
//   npm run soak -- --cycles 5000        (shorthand: --kill-cycles 5000)
//
// Phases, each in both compression modes:
//  - kill:   the kill loop (test/helpers/kill-loop.ts) for --kill-cycles
//            cycles per target: an image file and, as root, a loop device;
//  - power:  for each of --power-seeds seeds, a recorded trace cut at every
//            sync point and at as many other points, torn at 512 B, torn at
//            4 KiB, and kept/dropped whole (test/helpers/power.ts);
//  - fuzz:   --fuzz-stores damaged stores per mode (test/helpers/fuzz.ts);
//  - faults: for each of --fault-seeds base stores, every operation x kind x
//            once/persistent, for every N until the operation completes
//            (test/helpers/faults.ts).
// Prints one line per phase and mode as it goes, then a JSON summary; exits
// 1 if anything failed (the first failures are printed).
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import type { PowerCutOptions } from '../src/device'
import { FAULTED_OPERATIONS, FAULT_KINDS, faultBase, sweepFault } from '../test/helpers/faults'
import { buildFuzzStore, damage, judge } from '../test/helpers/fuzz'
import { killLoop } from '../test/helpers/kill-loop'
import { loopUnavailableReason, withLoopDevice } from '../test/helpers/loop'
import { type Compression, cutAndRecover, onlyCrashLeftovers, recordTrace } from '../test/helpers/power'
import { CrashImages } from '../test/helpers/trace'

interface Settings {
  killCycles: number
  powerSeeds: number
  fuzzStores: number
  faultSeeds: number
  seed: number
  only: Set<string>
}

function parse(argv: readonly string[]): Settings {
  const settings: Settings = { killCycles: 1000, powerSeeds: 4, fuzzStores: 2000, faultSeeds: 4, seed: 1, only: new Set(['kill', 'power', 'fuzz', 'faults']) }
  for (let index = 0; index < argv.length; index += 2) {
    const [flag, value] = [argv[index]!, argv[index + 1]]
    if (value === undefined) throw new Error(`${flag} needs a value`)
    const number = Number(value)
    if (flag === '--cycles' || flag === '--kill-cycles') settings.killCycles = number
    else if (flag === '--power-seeds') settings.powerSeeds = number
    else if (flag === '--fuzz-stores') settings.fuzzStores = number
    else if (flag === '--fault-seeds') settings.faultSeeds = number
    else if (flag === '--seed') settings.seed = number
    else if (flag === '--only') settings.only = new Set(value.split(','))
    else throw new Error(`unknown flag ${flag}`)
    if (flag !== '--only' && !(Number.isSafeInteger(number) && number >= 0)) throw new Error(`${flag} takes a whole number, not ${value}`)
  }
  return settings
}

const MODES: Compression[] = ['lz4', 'none']
const failures: string[] = []
const summary: Record<string, Record<string, number>> = {}

function record(phase: string, figures: Record<string, number>, started: number): void {
  figures.seconds = Math.round((Date.now() - started) / 1000)
  summary[phase] = figures
  console.log(`${phase}: ${Object.entries(figures).map(([name, value]) => `${name} ${value}`).join(', ')}`)
}

async function killPhase(settings: Settings): Promise<void> {
  const loopReason = loopUnavailableReason()
  if (loopReason !== undefined) console.log(`kill: loop devices skipped: ${loopReason}`)
  for (const compression of MODES) {
    for (const target of loopReason === undefined ? ['image', 'loop'] : ['image']) {
      const started = Date.now()
      const run = async (storePath: string) => killLoop({ path: storePath, compression }, settings.killCycles, settings.seed * 1000 + (target === 'loop' ? 7 : 3), { min: 20, max: 600 })
      let figures
      if (target === 'loop') figures = await withLoopDevice({ bytes: 256 * 1024 * 1024 }, (loop) => run(loop.device))
      else {
        const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'cubby-soak-'))
        figures = await run(path.join(directory, 'store.img'))
        if (figures.failures.length === 0) fs.rmSync(directory, { recursive: true, force: true })
      }
      failures.push(...figures.failures)
      const { failures: found, ...counts } = figures
      record(`kill ${compression} ${target}`, { ...counts, failures: found.length }, started)
    }
  }
}

async function powerPhase(settings: Settings): Promise<void> {
  const cuts: Array<Omit<PowerCutOptions, 'seed'>> = [{ policy: 'tear', atomicBytes: 512 }, { policy: 'tear', atomicBytes: 4096 }, { policy: 'random' }]
  for (const compression of MODES) {
    const started = Date.now()
    const figures = { seeds: 0, writes: 0, syncPoints: 0, cuts: 0, unsyncedWrites: 0, journalRepairs: 0, replays: 0, crashLeftoversReported: 0, failures: 0 }
    for (let seed = settings.seed; seed < settings.seed + settings.powerSeeds; seed++) {
      const trace = await recordTrace(compression, seed, 400)
      const syncs = trace.volume.syncPoints()
      const points = [...new Set([...syncs, ...syncs.map((point, index) => 1 + ((point * 7919 + index * 104729) % (trace.volume.position - 1)))])].sort((left, right) => left - right)
      figures.seeds++
      figures.writes += trace.writes.length
      figures.syncPoints += syncs.length
      for (const [pass, cut] of cuts.entries()) {
        const images = new CrashImages(trace.base, trace.volume)
        for (const point of points) {
          const outcome = await cutAndRecover(trace, images, point, { ...cut, seed: seed * 1_000_003 + point * 7 + pass })
          figures.cuts++
          figures.unsyncedWrites += outcome.unsynced
          if (outcome.recovered?.stepRedone) figures.journalRepairs++
          if ((outcome.recovered?.framesReplayed ?? 0) > 0) figures.replays++
          if (outcome.before !== undefined && !outcome.before.healthy) figures.crashLeftoversReported++
          const problem = outcome.failure ?? (outcome.before !== undefined && !onlyCrashLeftovers(outcome.before) ? `${compression} seed ${seed} point ${point}: crash image checks with ${JSON.stringify(outcome.before.problems.slice(0, 2))}` : undefined)
          if (problem !== undefined) {
            figures.failures++
            failures.push(problem)
          }
        }
      }
    }
    record(`power ${compression}`, figures, started)
  }
}

async function fuzzPhase(settings: Settings): Promise<void> {
  for (const compression of MODES) {
    const started = Date.now()
    const figures = { stores: 0, opened: 0, reportedByCheck: 0, callsRefused: 0, pairsSalvaged: 0, failures: 0 }
    // A new base store every 250 damaged copies, so the damage meets different layouts.
    for (let first = 0; first < settings.fuzzStores; first += 250) {
      const store = await buildFuzzStore(compression, settings.seed * 7 + first)
      for (let trial = first; trial < Math.min(settings.fuzzStores, first + 250); trial++) {
        const damaged = await damage(store, settings.seed * 100_003 + trial)
        const verdict = await judge(store, damaged.backing, damaged.damage)
        figures.stores++
        if (verdict.opened) figures.opened++
        if (verdict.check?.healthy === false) figures.reportedByCheck++
        figures.callsRefused += verdict.refused
        figures.pairsSalvaged += verdict.salvaged
        if (verdict.failure !== undefined) {
          figures.failures++
          failures.push(`${compression} trial ${trial}: ${verdict.failure}`)
        }
      }
    }
    record(`fuzz ${compression}`, figures, started)
  }
}

async function faultPhase(settings: Settings): Promise<void> {
  for (const compression of MODES) {
    const started = Date.now()
    const figures = { bases: 0, cases: 0, failures: 0 }
    for (let seed = settings.seed; seed < settings.seed + settings.faultSeeds; seed++) {
      const base = await faultBase(compression, seed)
      figures.bases++
      for (const operation of FAULTED_OPERATIONS) {
        for (const kind of FAULT_KINDS) {
          for (const persistent of [false, true]) {
            const sweep = await sweepFault(base, operation, kind, persistent)
            figures.cases += sweep.cases
            figures.failures += sweep.failures.length
            failures.push(...sweep.failures)
          }
        }
      }
    }
    record(`faults ${compression}`, figures, started)
  }
}

async function main(): Promise<void> {
  const settings = parse(process.argv.slice(2))
  const started = Date.now()
  if (settings.only.has('kill') && settings.killCycles > 0) await killPhase(settings)
  if (settings.only.has('power') && settings.powerSeeds > 0) await powerPhase(settings)
  if (settings.only.has('fuzz') && settings.fuzzStores > 0) await fuzzPhase(settings)
  if (settings.only.has('faults') && settings.faultSeeds > 0) await faultPhase(settings)
  console.log(JSON.stringify({ settings: { ...settings, only: [...settings.only] }, minutes: Math.round((Date.now() - started) / 600) / 100, phases: summary, failures: failures.length }, null, 2))
  if (failures.length > 0) {
    console.log(`first failures:\n${failures.slice(0, 10).join('\n')}`)
    process.exitCode = 1
  }
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
