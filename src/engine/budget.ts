/**
 * A byte budget with waiting: callers acquire bytes before holding a buffer
 * and release them after, and wait in FIFO order while the budget is spent.
 * Bounds the memory of large-value reads and writes in flight. A single
 * request larger than the whole budget is let through alone, so one 64 MiB
 * value never deadlocks a smaller budget.
 */

export class ByteBudget {
  private used = 0
  private readonly waiting: Array<{ bytes: number; grant: () => void }> = []

  constructor(readonly limitBytes: number) {}

  get usedBytes(): number {
    return this.used
  }

  async acquire(bytes: number): Promise<void> {
    if (this.waiting.length === 0 && this.fits(bytes)) {
      this.used += bytes
      return
    }
    await new Promise<void>((grant) => this.waiting.push({ bytes, grant }))
  }

  release(bytes: number): void {
    this.used -= bytes
    while (this.waiting.length > 0 && this.fits(this.waiting[0]!.bytes)) {
      const next = this.waiting.shift()!
      this.used += next.bytes
      next.grant()
    }
  }

  private fits(bytes: number): boolean {
    return this.used === 0 || this.used + bytes <= this.limitBytes
  }
}
