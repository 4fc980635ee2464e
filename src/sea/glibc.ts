// The native addons are linked against glibc: on an older one they fail to load with a cryptic
// "version `GLIBC_2.xx' not found". The binary checks first and refuses with a plain message.

import { BinaryRefusal } from './refusal.js';

export class GlibcTooOld extends BinaryRefusal {
  override name = 'GlibcTooOld';
}

/** "2.36" → [2, 36]; anything else → null. */
function parse(version: string): [number, number] | null {
  const m = /^(\d+)\.(\d+)/.exec(version);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

export function olderThan(have: string, need: string): boolean {
  const a = parse(have), b = parse(need);
  if (!a || !b) return false;
  return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
}

/** The C library the process runs on: a glibc version, or null (musl and others report none). */
export function runtimeGlibc(): string | null {
  (process.report as { excludeNetwork?: boolean }).excludeNetwork = true;
  const header = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
  return header?.glibcVersionRuntime ?? null;
}

/** Throws GlibcTooOld unless the system's glibc is at least `need` (`have` defaults to the running one). */
export function requireGlibc(need: string, have: string | null = runtimeGlibc()): void {
  if (have === null) {
    throw new GlibcTooOld(`this parley binary needs glibc ${need} or newer, and this system has no glibc (musl?); run it on a glibc Linux (e.g. Debian 12, Ubuntu 22.04) or use the npm install`);
  }
  if (olderThan(have, need)) {
    throw new GlibcTooOld(`this parley binary needs glibc ${need} or newer for its native addons; this system has glibc ${have}. Run it on a newer distribution (e.g. Debian 12, Ubuntu 22.04), or use the npm install, whose addons match the system`);
  }
}
