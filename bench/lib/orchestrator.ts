/**
 * The benchmark's parent process: runs every engine, one at a time, each in
 * its own child process, and gathers the results.
 *
 * For each value size and engine: a fresh data directory (or, in device
 * mode, a freshly formatted device), a fresh memory cgroup, a fresh child.
 * Then, for each record-count stage: load up to it, flush, take a snapshot
 * (RSS, disk), drop the page cache, run a short uniform read phase (the
 * probe) and take the serving snapshot. At the last stage the workloads run,
 * each after a cache drop. Afterwards the child is stopped, the cgroup read
 * and removed, and the data deleted. The device's own limit (fio) is measured
 * first, on the same file system.
 *
 * Nothing here invents a figure: an engine that cannot load is "skipped"
 * with the reason, one that dies or errs is "failed" with the reason (and
 * the memory cgroup's OOM count), one that misses a time limit is
 * "incomplete", and the results say so.
 */

import { execFileSync, spawnSync } from 'node:child_process'
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { EngineConfig } from '../engines/adapter'
import { ENGINES, isCubbyDb, type EngineEntry } from '../engines/registry'
import { cgroupUnavailableReason, dropCaches, isRoot, MemoryCgroup } from './cgroup'
import type { BenchConfig } from './config'
import { EngineProcess, EngineSkipped } from './engine-process'
import { ensureFio, measureDevice, type FioResults } from './fio'
import { describeMachine, mountFor } from './machine'
import { installedVersion, packageRoot } from './paths'
import type { OpenResult, PhaseResult, Request, RunSettings, Snapshot } from './protocol'
import { RESULTS_SCHEMA_VERSION, type BenchmarkResults, type EngineRun, type Isolation, type StageResult } from './results'
import { NOT_APPLICABLE_WORKLOADS, WARMUP_SHARE_OF_PHASE_TIME, WORKLOADS, type KeyDistribution } from './workloads'

export type Log = (line: string) => void

const refusedFileSystems = new Set(['tmpfs', 'ramfs', 'devtmpfs', 'hugetlbfs'])
const quickAnswerSeconds = 600

function formatCount(value: number): string {
  return Math.round(value).toLocaleString('en-US')
}

/** Refuse a data directory in memory: it would measure RAM, not the disk. */
export function checkDataFileSystem(directory: string): string {
  const mount = mountFor(resolve(directory), readFileSync('/proc/self/mountinfo', 'utf8'))
  const fileSystem = mount?.fileSystem ?? 'unknown'
  if (refusedFileSystems.has(fileSystem)) {
    throw new Error(`${directory} is on ${fileSystem}; the benchmark must measure a disk, so put --dir on a disk file system`)
  }
  return fileSystem
}

/** Cleanups to run, newest first, if the benchmark is interrupted. */
class Cleanup {
  private readonly actions = new Set<() => Promise<void> | void>()

  add(action: () => Promise<void> | void): () => void {
    this.actions.add(action)
    return () => {
      this.actions.delete(action)
    }
  }

  async runAll(): Promise<void> {
    const actions = [...this.actions].reverse()
    this.actions.clear()
    for (const action of actions) {
      try {
        await action()
      } catch {
        continue
      }
    }
  }
}

function isMounted(device: string): boolean {
  const text = readFileSync('/proc/self/mountinfo', 'utf8')
  return text.split('\n').some((line) => {
    const source = line.split(' - ')[1]?.split(' ')[1]
    return source !== undefined && source.startsWith(device)
  })
}

function checkDevice(device: string): void {
  if (!isRoot()) throw new Error('running on a block device needs root')
  if (!existsSync(device) || !statSync(device).isBlockDevice()) throw new Error(`${device} is not a block device`)
  if (isMounted(device)) throw new Error(`${device} (or a partition of it) is mounted; unmount it first`)
}

/** Give CubbyDB a blank device: discard it where possible, and zero its first MiB. */
function blankDevice(device: string): void {
  spawnSync('blkdiscard', [device], { stdio: 'ignore' })
  const descriptor = openSync(device, 'r+')
  try {
    writeSync(descriptor, Buffer.alloc(1024 * 1024), 0, 1024 * 1024, 0)
    fsyncSync(descriptor)
  } finally {
    closeSync(descriptor)
  }
}

function formatAndMount(device: string, mountPoint: string): void {
  execFileSync('mkfs.ext4', ['-F', '-q', device], { stdio: ['ignore', 'ignore', 'inherit'] })
  mkdirSync(mountPoint, { recursive: true })
  execFileSync('mount', [device, mountPoint])
}

function unmount(mountPoint: string): void {
  execFileSync('umount', [mountPoint])
}

function engineVersion(entry: EngineEntry): string | null {
  if (entry.packageName !== 'cubbydb') return installedVersion(entry.packageName)
  const manifest = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }
  return manifest.version
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0] ?? error.message : String(error)
}

export interface RunnerContext {
  config: BenchConfig
  log: Log
  /** Directory holding the compiled engine runner scripts. */
  enginesDirectory: string
}

export class Orchestrator {
  private readonly config: BenchConfig
  private readonly log: Log
  private readonly enginesDirectory: string
  private readonly cleanup = new Cleanup()
  private readonly useCgroup: boolean
  private readonly isolation: Isolation
  private runDirectory = ''

  constructor(context: RunnerContext) {
    this.config = context.config
    this.log = context.log
    this.enginesDirectory = context.enginesDirectory
    const unavailable = cgroupUnavailableReason()
    this.useCgroup = context.config.isolate && unavailable === null
    this.isolation = {
      memoryCgroup: this.useCgroup,
      memoryCgroupUnavailable: context.config.isolate ? unavailable : 'disabled with --no-cgroup',
      memoryLimitBytes: this.useCgroup ? context.config.memoryLimitBytes : null,
      limitDuringLoads: this.useCgroup && context.config.limitLoads,
      dropCaches: context.config.dropCaches && isRoot(),
    }
  }

  /** Stop the engine in flight and remove what the run created (for SIGINT/SIGTERM). */
  interrupt(): Promise<void> {
    return this.cleanup.runAll()
  }

  async run(command: string): Promise<BenchmarkResults> {
    const config = this.config
    const startedAt = new Date().toISOString()
    checkDataFileSystem(config.directory)
    if (config.device !== null) checkDevice(config.device)
    if (!this.useCgroup) this.log(`no memory cgroups (${this.isolation.memoryCgroupUnavailable}): engines may serve reads from the page cache`)
    if (!this.isolation.dropCaches) this.log('the page cache is not dropped between phases')
    this.runDirectory = join(resolve(config.directory), `cubbydb-bench-${Date.now()}-${process.pid}`)
    mkdirSync(this.runDirectory, { recursive: true })
    const removeRunDirectory = this.cleanup.add(() => rmSync(this.runDirectory, { recursive: true, force: true }))
    try {
      const { device, deviceSkipped, fioVersion } = this.measureDevice()
      const machine = describeMachine(config.device ?? this.runDirectory, fioVersion)
      const runs: EngineRun[] = []
      for (const valueSize of config.valueSizes) {
        for (const engine of config.engines) runs.push(await this.runEngine(ENGINES[engine], valueSize))
      }
      const results: BenchmarkResults = {
        schema: RESULTS_SCHEMA_VERSION,
        label: config.label,
        partial: runs.some((run) => run.status !== 'completed'),
        startedAt,
        finishedAt: new Date().toISOString(),
        command,
        config,
        dataDirectory: config.device ?? this.runDirectory,
        isolation: this.isolation,
        machine,
        device,
        deviceSkipped,
        runs,
        notApplicable: NOT_APPLICABLE_WORKLOADS,
      }
      return results
    } finally {
      removeRunDirectory()
      rmSync(this.runDirectory, { recursive: true, force: true })
    }
  }

  private measureDevice(): { device: FioResults | null; deviceSkipped: string | null; fioVersion: string | null } {
    const config = this.config
    if (!config.fio) return { device: null, deviceSkipped: 'disabled with --no-fio', fioVersion: null }
    const fio = ensureFio(this.log)
    if ('missing' in fio) return { device: null, deviceSkipped: fio.missing, fioVersion: null }
    const target = config.device ?? join(this.runDirectory, 'fio-test-file')
    this.log(`fio: 4 KiB random read and write, O_DIRECT, queue depth ${config.concurrency}, ${config.fioSeconds} s each, on ${target}`)
    try {
      const device = measureDevice(
        { target, sizeBytes: config.device === null ? config.fioSizeBytes : null, queueDepth: config.concurrency, seconds: config.fioSeconds },
        fio.version,
      )
      for (const job of device.jobs) this.log(`fio ${job.pattern}: ${formatCount(job.iops)} IOPS (${job.ioEngine})`)
      return { device, deviceSkipped: null, fioVersion: fio.version }
    } catch (error) {
      return { device: null, deviceSkipped: `fio failed: ${describeError(error)}`, fioVersion: fio.version }
    } finally {
      if (config.device === null) rmSync(target, { force: true })
    }
  }

  private dropCachesIfAllowed(): void {
    if (this.isolation.dropCaches) dropCaches()
  }

  private expectedKeys(): number {
    const config = this.config
    const last = config.recordStages[config.recordStages.length - 1] as number
    const insertShare = config.workloads.includes('D') ? WORKLOADS.D.proportions.insert : 0
    return last + Math.ceil((config.operations + config.warmupOperations) * insertShare)
  }

  private async runEngine(entry: EngineEntry, valueSize: number): Promise<EngineRun> {
    const config = this.config
    const tag = `[${entry.label}, ${valueSize} B values]`
    const run: EngineRun = {
      engine: entry.id,
      label: entry.label,
      valueSize,
      status: 'completed',
      reason: null,
      version: engineVersion(entry),
      options: null,
      notes: [],
      baseline: null,
      stages: [],
      workloads: [],
      cgroup: null,
    }
    const engineDirectory = join(this.runDirectory, `${entry.id}-${valueSize}`)
    let directory = join(engineDirectory, 'data')
    let storePath = join(directory, 'store.cubby')
    let mountPoint: string | null = null
    let engineProcess: EngineProcess | null = null
    let cgroup: MemoryCgroup | null = null
    const release = async (): Promise<void> => {
      if (engineProcess !== null) await engineProcess.stop()
      engineProcess = null
      if (cgroup !== null) {
        run.cgroup = cgroup.usage()
        await removeCgroup(cgroup)
        cgroup = null
      }
      if (mountPoint !== null) unmount(mountPoint)
      mountPoint = null
      rmSync(engineDirectory, { recursive: true, force: true })
    }
    const unregister = this.cleanup.add(async () => {
      engineProcess?.kill()
      await release()
    })
    try {
      mkdirSync(engineDirectory, { recursive: true })
      if (config.device !== null && isCubbyDb(entry.id)) {
        blankDevice(config.device)
        storePath = config.device
        mkdirSync(directory)
      } else if (config.device !== null) {
        const point = join(engineDirectory, 'mnt')
        formatAndMount(config.device, point)
        mountPoint = point
        directory = join(point, 'data')
        mkdirSync(directory)
      } else {
        mkdirSync(directory)
      }
      if (this.useCgroup) cgroup = MemoryCgroup.create(`cubbydb-bench-${process.pid}-${entry.id}-${valueSize}`, config.memoryLimitBytes)
      engineProcess = EngineProcess.start(entry, this.enginesDirectory, cgroup)
      await this.drive(engineProcess, cgroup, valueSize, { directory, storePath, storeIsDevice: storePath === config.device }, run, tag)
    } catch (error) {
      run.status = error instanceof EngineSkipped ? 'skipped' : 'failed'
      run.reason = describeError(error)
    } finally {
      await release()
      unregister()
    }
    if (run.status === 'failed' && run.cgroup !== null && run.cgroup.oomKills > 0) {
      run.reason = `${run.reason ?? ''} (the memory cgroup OOM-killed it at its ${formatCount(config.memoryLimitBytes / 1048576)} MiB limit)`
    }
    if (run.status === 'skipped') this.log(`${tag} ${run.reason ?? ''} — skipped`)
    if (run.status === 'failed') this.log(`${tag} failed: ${run.reason ?? ''}`)
    return run
  }

  /** Lift the cgroup's limit (for a load), or put it back (before reads); a no-op without a cgroup. */
  private setLoadLimit(cgroup: MemoryCgroup | null, loading: boolean): void {
    if (cgroup === null || this.config.limitLoads) return
    if (loading) {
      cgroup.setLimit(null)
      return
    }
    try {
      cgroup.setLimit(this.config.memoryLimitBytes)
    } catch (error) {
      throw new Error(
        `after loading, its memory (${formatCount(cgroup.usageBytes() / 1048576)} MiB) cannot be brought under the ${formatCount(this.config.memoryLimitBytes / 1048576)} MiB limit: ${describeError(error)}`,
      )
    }
  }

  private async drive(
    child: EngineProcess,
    cgroup: MemoryCgroup | null,
    valueSize: number,
    location: Pick<EngineConfig, 'directory' | 'storePath' | 'storeIsDevice'>,
    run: EngineRun,
    tag: string,
  ): Promise<void> {
    const config = this.config
    const engineConfig: EngineConfig = {
      ...location,
      keySize: config.keySize,
      valueSize,
      expectedKeys: this.expectedKeys(),
      cacheSizeBytes: config.cacheSizeBytes,
      writeBufferSizeBytes: config.writeBufferSizeBytes,
      sync: config.sync,
    }
    const settings: RunSettings = { seed: config.seed, concurrency: config.concurrency, keySize: config.keySize, valueSize, theta: config.theta }
    const opened = await child.call<OpenResult>({ kind: 'open', config: engineConfig, settings }, quickAnswerSeconds)
    run.options = opened.options
    run.notes = opened.notes
    run.baseline = opened.baseline
    const phaseTimeout = (seconds: number): number => seconds * 2 + quickAnswerSeconds
    let records = 0
    for (const stageRecords of config.recordStages) {
      this.setLoadLimit(cgroup, true)
      const load = await child.call<PhaseResult>(
        { kind: 'load', fromKey: records, toKey: stageRecords, maxSeconds: config.loadSeconds },
        phaseTimeout(config.loadSeconds),
      )
      this.log(`${tag} load ${formatCount(records)} → ${formatCount(load.recordsAfter)}: ${formatCount(load.operationsPerSecond)} ops/s`)
      records = load.recordsAfter
      const loadComplete = records >= stageRecords
      const flush = await child.call<{ seconds: number }>({ kind: 'flush' }, quickAnswerSeconds * 3)
      const afterLoad = await child.call<Snapshot>({ kind: 'snapshot' }, quickAnswerSeconds)
      const stage: StageResult = { records, load, loadComplete, flushSeconds: flush.seconds, afterLoad, probe: null, serving: null, servingChargedBytes: null }
      run.stages.push(stage)
      if (!loadComplete) {
        run.status = 'incomplete'
        run.reason = `loading stopped at ${formatCount(records)} of ${formatCount(stageRecords)} keys after ${config.loadSeconds} s (--load-seconds)`
        this.log(`${tag} ${run.reason}`)
        return
      }
      this.setLoadLimit(cgroup, false)
      this.dropCachesIfAllowed()
      stage.probe = await child.call<PhaseResult>(
        this.runRequest('C', 'uniform', records, 0, config.probeOperations, `probe/${records}`),
        phaseTimeout(config.phaseSeconds),
      )
      stage.serving = await child.call<Snapshot>({ kind: 'snapshot' }, quickAnswerSeconds)
      stage.servingChargedBytes = cgroup?.usageBytes() ?? null
      this.log(`${tag} ${formatCount(records)} keys: serving RSS ${formatCount(stage.serving.memory.residentBytes / 1048576)} MiB`)
    }
    for (const workload of config.workloads) {
      const distributions: KeyDistribution[] = workload === 'D' ? ['latest'] : config.distributions
      for (const distribution of distributions) {
        this.dropCachesIfAllowed()
        const phase = await child.call<PhaseResult>(
          this.runRequest(workload, distribution, records, config.warmupOperations, config.operations, `workload-${workload}/${distribution}`),
          phaseTimeout(config.phaseSeconds * (1 + WARMUP_SHARE_OF_PHASE_TIME)),
        )
        run.workloads.push(phase)
        records = phase.recordsAfter
        this.log(`${tag} ${workload} ${distribution}: ${formatCount(phase.operationsPerSecond)} ops/s`)
      }
    }
    await child.call({ kind: 'close' }, quickAnswerSeconds)
  }

  private runRequest(
    workload: Extract<Request, { kind: 'run' }>['workload'],
    distribution: KeyDistribution,
    existingRecords: number,
    warmupOperations: number,
    operations: number,
    streamName: string,
  ): Request {
    return { kind: 'run', workload, distribution, existingRecords, warmupOperations, operations, maxSeconds: this.config.phaseSeconds, streamName }
  }
}

/** rmdir a cgroup, retrying briefly: the kernel may hold it a moment after its last process exits. */
async function removeCgroup(cgroup: MemoryCgroup): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      cgroup.remove()
      return
    } catch (error) {
      if (attempt >= 20) throw error
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}
