// Signed media URLs: an HMAC-SHA256 over the method, the media id and the expiry, compared in
// constant time. Whoever holds the URL may do that one thing to that one media until it expires.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type SignedMethod = 'PUT' | 'GET';

export class UrlSigner {
  constructor(private readonly key: Buffer) {}

  sign(method: SignedMethod, media: string, expires: number): string {
    return createHmac('sha256', this.key).update(`${method}\n${media}\n${expires}`).digest('base64url');
  }

  /** True when `sig` is this server's signature of that request and `expires` has not passed. */
  verify(method: SignedMethod, media: string, expires: number, sig: string, now = Date.now()): boolean {
    if (!Number.isSafeInteger(expires) || expires < now) return false;
    const want = Buffer.from(this.sign(method, media, expires));
    const got = Buffer.from(sig);
    return got.length === want.length && timingSafeEqual(got, want);
  }
}

const SECRET_FILE = 'signing-secret';

/** SIGNING_SECRET when set; else the data directory's own, made on first start (mode 0600). */
export function loadSigningKey(configured: string, dataDir: string): Buffer {
  if (configured !== '') return Buffer.from(configured, 'utf8');
  const file = join(dataDir, SECRET_FILE);
  try {
    return Buffer.from(readFileSync(file, 'utf8').trim(), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const made = randomBytes(32).toString('base64url');
  try {
    writeFileSync(file, made + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process made it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return Buffer.from(readFileSync(file, 'utf8').trim(), 'utf8');
    throw err;
  }
  return Buffer.from(made, 'utf8');
}
