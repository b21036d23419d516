/**
 * The parent's handle on one engine's child process.
 *
 * `EngineProcess.start` forks the engine's runner script and, when given a
 * memory cgroup, moves the child into it before sending it anything: the
 * runner loads its engine only when asked to open it, so all of the engine's
 * memory is charged to the group. `call` sends one request and waits for its
 * answer, at most `timeoutSeconds`; a child that exits, or does not answer in
 * time (it is then killed), fails the call with a message that says which.
 */

import { fork, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import type { EngineEntry } from '../engines/registry'
import type { MemoryCgroup } from './cgroup'
import type { Request, RequestEnvelope, ResponseEnvelope } from './protocol'

export class EngineSkipped extends Error {
  constructor(reason: string) {
    super(reason)
    this.name = 'EngineSkipped'
  }
}

interface Pending {
  resolve(result: unknown): void
  reject(error: Error): void
  timer: NodeJS.Timeout
}

export class EngineProcess {
  private readonly child: ChildProcess
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private exitDescription: string | null = null
  private readonly exited: Promise<void>

  private constructor(child: ChildProcess) {
    this.child = child
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitDescription = signal !== null ? `killed by ${signal}` : `exited with code ${code}`
        for (const [, waiting] of this.pending) {
          clearTimeout(waiting.timer)
          waiting.reject(new Error(`the engine process ${this.exitDescription}`))
        }
        this.pending.clear()
        resolve()
      })
    })
    child.on('message', (message: ResponseEnvelope) => {
      const waiting = this.pending.get(message.id)
      if (waiting === undefined) return
      this.pending.delete(message.id)
      clearTimeout(waiting.timer)
      if (message.ok) waiting.resolve(message.result)
      else waiting.reject(message.unavailable ? new EngineSkipped(message.error) : new Error(message.error))
    })
  }

  /** Fork the runner of `entry` (compiled into `enginesDirectory`) and confine it to `cgroup`. */
  static start(entry: EngineEntry, enginesDirectory: string, cgroup: MemoryCgroup | null): EngineProcess {
    const child = fork(join(enginesDirectory, entry.script), entry.arguments, {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: [],
    })
    const handle = new EngineProcess(child)
    if (cgroup !== null) {
      if (child.pid === undefined) throw new Error(`could not start the ${entry.label} runner`)
      cgroup.attach(child.pid)
    }
    return handle
  }

  get pid(): number | undefined {
    return this.child.pid
  }

  call<T>(request: Request, timeoutSeconds: number): Promise<T> {
    if (this.exitDescription !== null) return Promise.reject(new Error(`the engine process ${this.exitDescription}`))
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        this.child.kill('SIGKILL')
        reject(new Error(`the engine did not answer "${request.kind}" within ${timeoutSeconds} s and was killed`))
      }, timeoutSeconds * 1000)
      this.pending.set(id, { resolve: resolve as (result: unknown) => void, reject, timer })
      const envelope: RequestEnvelope = { id, request }
      this.child.send(envelope)
    })
  }

  /** Disconnect (the runner then exits); kill it if it has not exited within `graceSeconds`. */
  async stop(graceSeconds = 30): Promise<void> {
    if (this.exitDescription !== null) return
    if (this.child.connected) this.child.disconnect()
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceSeconds * 1000)
    await this.exited
    clearTimeout(timer)
  }

  /** Kill at once (used when the benchmark itself is interrupted). */
  kill(): void {
    if (this.exitDescription === null) this.child.kill('SIGKILL')
  }
}
