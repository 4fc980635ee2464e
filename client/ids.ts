// Random client ids (cid): crypto.getRandomValues only, so it runs in browsers and Node alike.

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-';

/** 22 chars of [A-Za-z0-9_-] (132 random bits): unique per user without coordination, ≤ 64 chars. */
export function randomId(length = 22): string {
  const bytes = new Uint8Array(length);
  globalThis.crypto.getRandomValues(bytes);
  let s = '';
  for (let i = 0; i < length; i++) s += ALPHABET[bytes[i]! & 63];
  return s;
}
