// The native addons are linked against glibc and libstdc++: on older ones they fail to load
// with a cryptic "version `GLIBC_2.xx' not found". The binary checks first (before any addon
// loads) and refuses with a plain message naming what it needs and what the system has.
import { readFileSync } from 'node:fs';
import { BinaryRefusal } from './refusal.js';

export class GlibcTooOld extends BinaryRefusal {
  override name = 'GlibcTooOld';
}

/** "2.36" or "3.4.29" → [2, 36] / [3, 4, 29]. */
function parts(version: string): number[] {
  return version.split('.').map(Number);
}

export function olderThan(have: string, need: string): boolean {
  const a = parts(have), b = parts(need);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0, y = b[i] ?? 0;
    if (Number.isNaN(x) || Number.isNaN(y)) return false;
    if (x !== y) return x < y;
  }
  return false;
}

export interface SystemLibraries {
  /** the glibc version the process runs on; null: no glibc (musl and others report none) */
  glibc: string | null;
  /** the libstdc++ the process loaded (Node links it), if any */
  libstdcxx: string | null;
}

export function systemLibraries(): SystemLibraries {
  (process.report as { excludeNetwork?: boolean }).excludeNetwork = true;
  const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string }; sharedObjects?: string[] };
  return {
    glibc: report.header?.glibcVersionRuntime ?? null,
    libstdcxx: report.sharedObjects?.find((path) => /\/libstdc\+\+\.so(\.\d+)*$/.test(path)) ?? null,
  };
}

/** Does the library file define symbol version `tag` (e.g. GLIBCXX_3.4.29)? */
function defines(file: string, tag: string): boolean {
  try {
    return readFileSync(file).includes(`${tag}\0`, 0, 'latin1');
  } catch {
    return false;
  }
}

const ADVICE = 'run it on a newer distribution (Debian 12, Ubuntu 22.04, RHEL 9 or later), or use the npm install';

/**
 * Throws GlibcTooOld unless the system's glibc is at least `glibc` and its libstdc++ has
 * GLIBCXX_`glibcxx` ('' = none needed).
 */
export function requireSystemLibraries(need: { glibc: string; glibcxx: string }, have: SystemLibraries = systemLibraries()): void {
  if (have.glibc === null) throw new GlibcTooOld(`this parley binary needs glibc ${need.glibc} or newer, and this system has no glibc (musl?): ${ADVICE}`);
  if (olderThan(have.glibc, need.glibc)) throw new GlibcTooOld(`this parley binary needs glibc ${need.glibc} or newer for its native addons; this system has glibc ${have.glibc}: ${ADVICE}`);
  if (need.glibcxx !== '' && have.libstdcxx !== null && !defines(have.libstdcxx, `GLIBCXX_${need.glibcxx}`)) {
    throw new GlibcTooOld(`this parley binary needs libstdc++ with GLIBCXX_${need.glibcxx} (GCC 11 or newer) for its native addons; ${have.libstdcxx} is older: ${ADVICE}`);
  }
}
