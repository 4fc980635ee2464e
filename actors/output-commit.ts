// Output commit: outputs (replies, pushes, tells) that depend on this thread's writes are held
// until those writes are durable, then released in the order they were produced. Actors keep
// running meanwhile; their state may run ahead of the disk, their outputs never do.

import { LatencyStats, type LatencySnapshot } from './latency-stats.js';

/** Commits of groups with writes: their seal-to-durable latency, and the outputs they released. */
export interface CommitStats { latency: LatencySnapshot; outputs: number }

export class OutputCommit {
  /** Read by the shard's stats when /metrics is scraped. */
  private readonly latency = new LatencyStats();
  private outputsReleased = 0;
  /** Outputs of the tick in progress that follow a write. */
  private current: (() => void)[] | null = null;
  private wroteThisTick = false;
  private sealScheduled = false;
  /** Resolves when every group sealed so far has been released. */
  private tail: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private held = 0;
  /** Groups are numbered from 1 in seal order and released in that order. */
  private sealedGroups = 0;
  private releasedGroups = 0;
  private failed = false;
  private failure: unknown;

  /** @param onError a commit failed: called once; nothing held is ever released after it */
  constructor(private readonly barrier: () => Promise<unknown>, private readonly onError: (err: unknown) => void) {}

  /**
   * Call after issuing a write: later outputs of this tick wait for its commit. Returns the
   * number of the group the write belongs to (see `isReleased`).
   */
  wrote(): number {
    this.wroteThisTick = true;
    this.current ??= [];
    this.scheduleSeal();
    return this.sealedGroups + 1;
  }

  /** Has group `group` (a number `wrote` returned) been committed and its outputs released? */
  isReleased(group: number): boolean {
    return this.releasedGroups >= group;
  }

  /** Releases `output` now if nothing it could depend on is pending, else after the commit. */
  emit(output: () => void): void {
    if (this.failed) return; // the shard is going down: nothing may leave any more
    if (this.current) {
      this.current.push(output);
      this.held++;
    } else if (this.inFlight > 0) {
      // A group is still waiting for its commit: keep order, go out right after it.
      this.current = [output];
      this.held++;
      this.scheduleSeal();
    } else output();
  }

  /** Resolves once every output emitted so far is released; rejects if a commit failed. */
  idle(): Promise<void> {
    this.seal();
    return this.tail.then(() => {
      if (this.failed) throw this.failure;
    });
  }

  /** Sealed groups waiting for their commit: the commit backlog. */
  get pendingGroups(): number {
    return this.inFlight;
  }

  /** Outputs held back until their commit (in sealed groups and the tick in progress). */
  get heldOutputs(): number {
    return this.held;
  }

  /** Nothing is held: every output emitted so far has been released. */
  get isIdle(): boolean {
    return this.inFlight === 0 && this.current === null;
  }

  private measure(sealedAt: number, outputs: number): void {
    this.latency.record((performance.now() - sealedAt) / 1000);
    this.outputsReleased += outputs;
  }

  get stats(): CommitStats {
    return { latency: this.latency.snapshot(), outputs: this.outputsReleased };
  }

  private scheduleSeal(): void {
    if (this.sealScheduled) return;
    this.sealScheduled = true;
    setImmediate(this.seal);
  }

  private readonly seal = (): void => {
    this.sealScheduled = false;
    const outputs = this.current;
    if (!outputs || this.failed) return;
    const durable = this.wroteThisTick ? this.barrier() : null;
    const sealedAt = durable ? performance.now() : 0;
    const group = ++this.sealedGroups;
    this.current = null;
    this.wroteThisTick = false;
    this.inFlight++;
    const previous = this.tail;
    if (durable) void durable.then(() => this.measure(sealedAt, outputs.length), () => undefined);
    this.tail = (durable ? Promise.all([previous, durable]) : previous).then(
      () => {
        this.inFlight--;
        if (this.failed) return;
        this.held -= outputs.length;
        this.releasedGroups = group;
        for (const out of outputs) out();
      },
      (err: unknown) => {
        // A failed commit: its outputs (and every later one) must never be seen. The shard
        // treats this as fatal; idle() rejects from now on.
        this.inFlight--;
        if (this.failed) return;
        this.failed = true;
        this.failure = err;
        this.current = null;
        this.onError(err);
      },
    );
  };
}
