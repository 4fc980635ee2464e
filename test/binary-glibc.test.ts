// The single binary refuses a system too old for its native addons before loading any
// (src/sea/glibc.ts, called by src/sea/embedded-root.ts ahead of the extraction): glibc from
// process.report, libstdc++'s symbol versions from the library file the process loaded.
import t from 'tap';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GlibcTooOld, olderThan, requireSystemLibraries, systemLibraries } from '../src/sea/glibc.js';
import { tempDataDir } from './helpers/server.js';

const NEED = { glibc: '2.34', glibcxx: '3.4.29' };

t.test('versions compare by number, part by part', async (t) => {
  t.ok(olderThan('2.9', '2.34'));
  t.ok(olderThan('2.31', '2.34'));
  t.notOk(olderThan('2.34', '2.34'));
  t.notOk(olderThan('2.36', '2.34'));
  t.notOk(olderThan('3.0', '2.34'));
  t.ok(olderThan('3.4.28', '3.4.29'));
  t.notOk(olderThan('3.4.30', '3.4.29'));
});

t.test('this system: its glibc and libstdc++ are read and suit the addons', async (t) => {
  const have = systemLibraries();
  t.match(have.glibc, /^\d+\.\d+$/, `glibc ${have.glibc}`);
  t.ok(have.libstdcxx !== null && existsSync(have.libstdcxx), `libstdc++ at ${have.libstdcxx}`);
  t.doesNotThrow(() => requireSystemLibraries(NEED, have));
});

t.test('an old glibc, no glibc, an old libstdc++: refused with what is needed and what is there', async (t) => {
  const real = systemLibraries();
  t.throws(() => requireSystemLibraries(NEED, { ...real, glibc: '2.31' }), { name: 'GlibcTooOld', message: /needs glibc 2\.34 or newer for its native addons; this system has glibc 2\.31: run it on a newer distribution/ });
  t.throws(() => requireSystemLibraries(NEED, { glibc: null, libstdcxx: null }), { message: /needs glibc 2\.34 or newer, and this system has no glibc \(musl\?\)/ });
  // A library file that defines versions up to GLIBCXX_3.4.28 only (GCC 10's).
  const old = join(tempDataDir(t), 'libstdc++.so.6');
  writeFileSync(old, Buffer.from('\0GLIBCXX_3.4\0GLIBCXX_3.4.28\0', 'latin1'));
  t.throws(() => requireSystemLibraries(NEED, { ...real, libstdcxx: old }), { message: new RegExp(`needs libstdc\\+\\+ with GLIBCXX_3\\.4\\.29 \\(GCC 11 or newer\\) for its native addons; ${old.replaceAll('+', '\\+')} is older`) });
  t.ok(new GlibcTooOld('x') instanceof Error);
});
