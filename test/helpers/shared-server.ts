// One test server shared by the subtests of a file that need the same configuration: a server
// start (two shard threads, an LMDB directory, a password pool) costs more than most subtests.
// Started on first use, stopped when the file's root test ends. Subtests that share it must use
// their own fresh users, threads and channels (newUser gives unique names) and must not depend
// on one another's order; a subtest that needs other config, a restart, kill -9 or exact global
// counts starts its own server.
import type { Config } from '../../src/config.js';
import { startTestServer, type TestServer } from './server.js';

interface Teardown { teardown(fn: () => unknown): void }

/** `root` is the file's top-level tap object, so the server outlives each subtest. */
export function sharedServer(root: Teardown, overrides: Partial<Config> = {}): () => Promise<TestServer> {
  let started: Promise<TestServer> | null = null;
  closeFetchPoolAtEnd(root);
  return () => (started ??= startTestServer(root, overrides));
}

let closing = false;

/**
 * When the file's root test ends, closes the pool of fetch's keep-alive connections: its idle
 * sockets would otherwise keep the test process alive for undici's keep-alive timeout (4 s)
 * after the last server stopped, a slot of the runner spent on nothing. Graceful: a request
 * still in flight is let finish.
 */
export function closeFetchPoolAtEnd(root: Teardown): void {
  if (closing) return;
  closing = true;
  root.teardown(() => {
    const pool = (globalThis as Record<symbol, { close?: () => Promise<void> } | undefined>)[Symbol.for('undici.globalDispatcher.1')];
    pool?.close?.().catch(() => undefined);
  });
}
