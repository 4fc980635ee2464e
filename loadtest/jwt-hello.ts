// jwt-hello: sign-ins per second with application JWTs (HS256 and RS256: open a WebSocket, hello
// {jwt}, welcome, close) against password logins (POST /v1/sessions: scrypt), on one server run
// as a child process. Bounded by count and time (≤ ~20 s in all). Tokens are signed before the
// timed part; returning users (bound on a warm-up pass), so the cost is verification + attach.
//
//   npx tsc -p tsconfig.json --outDir dist-test && node dist-test/loadtest/jwt-hello.js [--count 2000] [--concurrency 16]
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { importPKCS8, SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { decodeFrame, encodeFrame } from '../protocol/wire.js';

const { values } = parseArgs({ options: { count: { type: 'string' }, concurrency: { type: 'string' }, seconds: { type: 'string' } } });
const COUNT = Number(values.count ?? 2000);
const CONCURRENCY = Number(values.concurrency ?? 16);
/** each timed pass stops after this long even before COUNT */
const PASS_MS = Number(values.seconds ?? 4) * 1000;
const USERS = 50;
const SECRET = 'loadtest-secret-loadtest-secret-loadtest-secret';

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/** One hello {jwt} → welcome round trip on a fresh socket. */
function hello(url: string, jwt: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    ws.on('open', () => ws.send(encodeFrame({ t: 'hello', jwt })));
    ws.on('message', (data: ArrayBuffer) => {
      const f = decodeFrame(new Uint8Array(data)) as { t: string };
      if (f.t === 'welcome') {
        ws.close();
        resolve();
      } else if (f.t === 'kick') reject(new Error(`refused: ${JSON.stringify(f)}`));
    });
    ws.on('error', reject);
    ws.on('close', (code) => code !== 1000 && code !== 1005 && reject(new Error(`closed ${code}`)));
  });
}

/** Runs `task(i)` for i < count with `concurrency` at once, stopping new ones after PASS_MS; returns done/s. */
async function timed(count: number, concurrency: number, task: (i: number) => Promise<void>, limitMs = PASS_MS): Promise<{ done: number; perSecond: number; ms: number }> {
  let next = 0;
  let done = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < count && performance.now() - t0 < limitMs) {
      await task(next++);
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const ms = performance.now() - t0;
  return { done, perSecond: Math.round((done / ms) * 1000), ms: Math.round(ms) };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'parley-jwt-hello-'));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const port = await freePort();
  const child = spawn(process.execPath, [join(import.meta.dirname, '..', 'src', 'main.js')], {
    env: {
      ...process.env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dir, SHARDS: '1', LOG_LEVEL: 'warn', RATE_LIMITS: 'off',
      AUTH_JWT_SECRET: SECRET, AUTH_JWT_PUBLIC_KEY: rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  const url = `ws://127.0.0.1:${port}/v1/ws`;
  try {
    for (let i = 0; ; i++) {
      if (i > 100) throw new Error('the server did not become ready');
      const ready = await fetch(`${base}/readyz`).then((r) => r.ok, () => false);
      if (ready) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const hsKey = new TextEncoder().encode(SECRET);
    const rsKey = await importPKCS8(rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'RS256');
    const sign = (alg: 'HS256' | 'RS256', i: number) =>
      new SignJWT({ device: `d${i % USERS}` }).setProtectedHeader({ alg }).setSubject(`app-${i % USERS}`).setExpirationTime('1h').sign(alg === 'HS256' ? hsKey : rsKey);
    const results: Record<string, unknown> = {};
    const tokens = { HS256: await Promise.all(Array.from({ length: COUNT }, (_, i) => sign('HS256', i))), RS256: await Promise.all(Array.from({ length: COUNT }, (_, i) => sign('RS256', i))) };
    // Warm-up of both before either is timed: the users and devices exist afterwards (first sight
    // is a write: its rate is reported apart), and the server's code paths are warm.
    const first = await timed(USERS, CONCURRENCY, (i) => hello(url, tokens.HS256[i]));
    await timed(USERS, CONCURRENCY, (i) => hello(url, tokens.RS256[i]));
    for (const alg of ['HS256', 'RS256'] as const) {
      const pass = await timed(COUNT, CONCURRENCY, (i) => hello(url, tokens[alg][i]));
      results[alg] = { helloPerSecond: pass.perSecond, hellos: pass.done, ms: pass.ms };
    }
    results.firstSightPerSecond = first.perSecond;
    // Password logins (scrypt at the default PASSWORD_COST), a bounded handful.
    await fetch(`${base}/v1/users`, { method: 'POST', body: JSON.stringify({ username: 'loadtest_pw', password: 'correct horse battery' }) });
    // Concurrency 4: scrypt runs on a small pool; more would only queue (and overrun the time bound).
    const logins = await timed(Math.min(COUNT, 200), 4, async () => {
      const res = await fetch(`${base}/v1/sessions`, { method: 'POST', body: JSON.stringify({ username: 'loadtest_pw', password: 'correct horse battery', device: 'x' }) });
      if (res.status !== 201) throw new Error(`login: ${res.status}`);
      await res.arrayBuffer();
    }, 3000);
    results.passwordLogin = { loginPerSecond: logins.perSecond, logins: logins.done, ms: logins.ms };
    console.log(JSON.stringify({ concurrency: CONCURRENCY, shards: 1, ...results }, null, 2));
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
