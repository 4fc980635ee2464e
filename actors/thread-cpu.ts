// CPU time of the calling thread (Linux /proc/thread-self/stat: utime + stime in clock ticks of
// 1/100 s, the kernel's USER_HZ on every Linux we run on), for a shard's own CPU share.
import { readFileSync } from 'node:fs';

const MICROS_PER_TICK = 10_000;

/** µs of CPU this thread used so far; NaN where /proc/thread-self is not there. */
export function threadCpuMicros(): number {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // from field 3 (state) on
    return (Number(fields[11]) + Number(fields[12])) * MICROS_PER_TICK;
  } catch {
    return NaN;
  }
}
