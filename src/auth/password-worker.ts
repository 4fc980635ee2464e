// Piscina task: scrypt password hashing, off the gateway and shard threads (it is memory-hard
// and takes tens of milliseconds by design).
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';

export interface HashTask { op: 'hash'; password: string; cost: number }
export interface VerifyTask { op: 'verify'; password: string; cost: number; salt: Uint8Array; hash: Uint8Array }

const KEY_BYTES = 32;
const params = (cost: number) => {
  const N = 2 ** cost;
  return { N, r: 8, p: 1, maxmem: 256 * N * 8 };
};

export default function run(task: HashTask | VerifyTask): { salt: Uint8Array; hash: Uint8Array } | boolean {
  if (task.op === 'hash') {
    const salt = randomBytes(16);
    return { salt, hash: scryptSync(task.password, salt, KEY_BYTES, params(task.cost)) };
  }
  const hash = scryptSync(task.password, Buffer.from(task.salt), KEY_BYTES, params(task.cost));
  return timingSafeEqual(hash, Buffer.from(task.hash));
}
