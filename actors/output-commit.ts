// Output commit: outputs (replies, pushes, tells) that depend on this thread's writes are held
// until those writes are durable, then released in the order they were produced. Actors keep
// running meanwhile; their state may run ahead of the disk, their outputs never do.

export class OutputCommit {
  /** Outputs of the tick in progress that follow a write. */
  private current: (() => void)[] | null = null;
  private wroteThisTick = false;
  private sealScheduled = false;
  /** Resolves when every group sealed so far has been released. */
  private tail: Promise<void> = Promise.resolve();
  private inFlight = 0;

  constructor(private readonly barrier: () => Promise<unknown>, private readonly onError: (err: unknown) => void) {}

  /** Call after issuing a write: later outputs of this tick wait for its commit. */
  wrote(): void {
    this.wroteThisTick = true;
    this.current ??= [];
    this.scheduleSeal();
  }

  /** Releases `output` now if nothing it could depend on is pending, else after the commit. */
  emit(output: () => void): void {
    if (this.current) this.current.push(output);
    else if (this.inFlight > 0) {
      // A group is still waiting for its commit: keep order, go out right after it.
      this.current = [output];
      this.scheduleSeal();
    } else output();
  }

  /** Resolves once every output emitted so far is released. */
  idle(): Promise<void> {
    this.seal();
    return this.tail;
  }

  get pendingGroups(): number {
    return this.inFlight;
  }

  private scheduleSeal(): void {
    if (this.sealScheduled) return;
    this.sealScheduled = true;
    setImmediate(this.seal);
  }

  private readonly seal = (): void => {
    this.sealScheduled = false;
    const outputs = this.current;
    if (!outputs) return;
    const durable = this.wroteThisTick ? this.barrier() : null;
    this.current = null;
    this.wroteThisTick = false;
    this.inFlight++;
    const previous = this.tail;
    this.tail = (durable ? Promise.all([previous, durable]) : previous).then(
      () => {
        this.inFlight--;
        for (const out of outputs) out();
      },
      (err: unknown) => {
        // A failed commit: its outputs must never be seen. The shard treats this as fatal.
        this.inFlight--;
        this.onError(err);
      },
    );
  };
}
