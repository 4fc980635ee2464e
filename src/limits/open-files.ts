// How many files this process may open (its soft RLIMIT_NOFILE): every socket is one, and a
// process at the limit cannot even accept (uWS retries the failed accept in a busy loop, a core at
// 100 % answering nothing), so the gateway stops taking WebSockets some files short of it.
import { readFileSync } from 'node:fs';

/** Files kept free for the process's own (LMDB, pipes, event fds, listening sockets) and for HTTP. */
export const FILE_RESERVE = 64;

/** The soft open-file limit, from /proc (Linux); undefined where it cannot be read or is unlimited. */
export function openFileLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    return soft !== undefined && /^\d+$/.test(soft) ? Number(soft) : undefined;
  } catch {
    return undefined;
  }
}

/** MAX_SOCKETS for an open-file limit: the limit less the reserve (no limit known: a million). */
export function maxSocketsFor(limit: number | undefined): number {
  return limit === undefined ? 1_000_000 : Math.max(16, limit - FILE_RESERVE);
}

/** MAX_SOCKETS' default, for this process's limit. */
export const defaultMaxSockets = (): number => maxSocketsFor(openFileLimit());
