// Comparing a presented secret (a token, an API key) with a known one without leaking, by timing,
// how much of it matched — or its length: the digests compared are of fixed length.
import { createHash, timingSafeEqual } from 'node:crypto';

export function sameSecret(given: string, want: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(want));
}
