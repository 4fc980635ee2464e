// The epoch of the data directory's logs (docs/protocol.md §3): a name for their lineage, made once
// when the logs begin and kept across restarts, so a client can tell a cursor from another
// lineage (data lost, rebuilt or restored) from one it can resume.
import { randomBytes } from 'node:crypto';
import type { StorageEnv } from './env.js';

const KEY = 'epoch';

/** The epoch, created on first use. Safe when several threads or processes race: one wins. */
export function ensureEpoch(storage: StorageEnv): string {
  const { meta } = storage.db;
  const existing = meta.get(KEY);
  if (existing !== undefined) return existing;
  const fresh = randomBytes(9).toString('base64url');
  // Conditional, in a synchronous transaction: a racing opener's epoch is kept if it got there first.
  storage.root.transactionSync(() => {
    if (meta.get(KEY) === undefined) meta.putSync(KEY, fresh);
  });
  return meta.get(KEY)!;
}
