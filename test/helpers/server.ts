// Starts a real Parley server for a test: free port, temp LMDB directory, cheap password hashing.
// Everything is torn down with the test. Rate limits are off (most tests register many users from
// one address); test/rate-limits.test.ts turns them on.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { login, ParleyClient, register, type ClientOptions } from '../../client/index.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../actors/log.js';
import { startServer, type Server } from '../../src/server.js';

interface Teardown { teardown(fn: () => unknown): void }

export interface TestServer {
  server: Server;
  base: string;
  wsUrl: string;
  dataDir: string;
}

export function tempDataDir(t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'parley-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function startTestServer(t: Teardown, overrides: Partial<Config> = {}): Promise<TestServer> {
  const dataDir = overrides.dataDir ?? tempDataDir(t);
  const config = loadConfig([], {}, { port: 0, host: '127.0.0.1', shards: 2, passwordCost: 10, logLevel: 'warn', rateLimits: 'off', dataDir, ...overrides });
  const server = await startServer(config, createLogger(config.logLevel, { test: true }));
  t.teardown(() => server.stop());
  return { server, base: `http://127.0.0.1:${server.port}`, wsUrl: `ws://127.0.0.1:${server.port}/v1/ws`, dataDir };
}

let counter = 0;
export interface TestUser { user: string; username: string; password: string }
export interface TestDevice { user: string; device: string; token: string }

export async function newUser(s: { base: string }, prefix = 'user'): Promise<TestUser> {
  const username = `${prefix}${process.pid % 1000}_${++counter}`.toLowerCase();
  const password = 'correct horse battery';
  const { user } = await register(s.base, { username, password });
  return { user, username, password };
}

export async function newDevice(s: { base: string }, u: TestUser, name = 'phone'): Promise<TestDevice> {
  const { token, user, device } = await login(s.base, { username: u.username, password: u.password, device: name });
  return { token, user, device };
}

/** An SDK client not yet connected (to attach listeners before the replay), closed with the test. */
export function client(t: Teardown, s: { wsUrl: string }, d: TestDevice, opts: Partial<ClientOptions> = {}): ParleyClient {
  const c = new ParleyClient({ url: s.wsUrl, token: d.token, WebSocket, reconnect: false, ...opts });
  t.teardown(() => c.close());
  return c;
}

/** A connected (synced) SDK client, closed with the test. */
export async function connect(t: Teardown, s: { wsUrl: string }, d: TestDevice, opts: Partial<ClientOptions> = {}): Promise<ParleyClient> {
  const c = client(t, s, d, opts);
  await c.connect();
  return c;
}

/** Collects every event of a kind on a client, for assertions on order and uniqueness. */
export function collect<T = any>(client: ParleyClient, event: 'msg' | 'event' | 'close' | 'receipt' | 'thread' | 'presence'): T[] {
  const got: T[] = [];
  client.on(event, (e) => got.push(e as T));
  return got;
}

/** Resolves when `predicate` holds, checking after every event of the client; rejects after timeoutMs. */
export function until(client: ParleyClient, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  if (predicate()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error('condition not met in time'));
    }, timeoutMs);
    const off = client.on('event', () => {
      if (predicate()) {
        clearTimeout(timer);
        off();
        resolve();
      }
    });
  });
}
