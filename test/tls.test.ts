// TLS without a proxy (TLS_CERT/TLS_KEY, src/gateway/tls-apps.ts): the real server process serves
// https and wss with a self-signed certificate made here; SIGHUP reloads the files: a new
// connection sees the new certificate while an open wss session goes on; bad files refuse to start.
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import tls from 'node:tls';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { generate } from 'selfsigned';
import WebSocket from 'ws';
import { ParleyClient } from '../client/index.js';
import { startChildServer, type ChildServer } from './helpers/child-server.js';
import { tempDataDir } from './helpers/server.js';

interface Pair {
  cert: string;
  key: string;
  fingerprint: string;
}

async function makePair(cn: string): Promise<Pair> {
  const p = await generate([{ name: 'commonName', value: cn }], {
    keyType: 'ec',
    curve: 'P-256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  });
  return { cert: p.cert, key: p.private, fingerprint: new X509Certificate(p.cert).fingerprint256 };
}

function install(dir: string, pair: Pair): { certFile: string; keyFile: string } {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  writeFileSync(certFile, pair.cert);
  writeFileSync(keyFile, pair.key, { mode: 0o600 });
  return { certFile, keyFile };
}

/** JSON over https, trusting only `ca` (a new connection, unless a keep-alive `agent` is given). */
function httpsJson(port: number, ca: string, method: string, path: string, body?: unknown, agent: https.Agent | false = false): Promise<{ status: number; body: any; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request({ host: '127.0.0.1', port, method, path, ca, agent, headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text.startsWith('{') ? JSON.parse(text) : text, reused: req.reusedSocket }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** The fingerprint of the certificate a new TLS connection is shown (not verified: https calls verify). */
function peerFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const fp = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fp);
    });
    socket.on('error', reject);
  });
}

/** A `ws` WebSocket that trusts `ca`, for the SDK's `WebSocket` option. */
function trusting(ca: string) {
  return class TrustingWebSocket extends WebSocket {
    constructor(url: string) {
      super(url, { ca });
    }
  };
}

/** Resolves on the server's next log line with this msg (JSON lines on stdout). */
function nextLog(server: ChildServer, msg: string): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const lines = createInterface({ input: server.proc.stdout! });
    lines.on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.msg === msg) {
        lines.close();
        resolve(entry);
      }
    });
  });
}

async function signIn(port: number, ca: string, username: string): Promise<{ user: string; token: string }> {
  const password = 'correct horse battery';
  const reg = await httpsJson(port, ca, 'POST', '/v1/users', { username, password });
  if (reg.status !== 200 && reg.status !== 201) throw new Error(`register ${username}: ${reg.status} ${JSON.stringify(reg.body)}`);
  const login = await httpsJson(port, ca, 'POST', '/v1/sessions', { username, password, device: 'phone' });
  if (login.status !== 200 && login.status !== 201) throw new Error(`login ${username}: ${login.status} ${JSON.stringify(login.body)}`);
  return { user: login.body.user, token: login.body.token };
}

t.test('https and wss on the main port; SIGHUP swaps the certificate for new connections and keeps open ones', async (t) => {
  const dir = tempDataDir(t);
  const first = await makePair('parley first');
  const second = await makePair('parley second');
  const files = install(dir, first);
  const server = await startChildServer(join(dir, 'data'), { TLS_CERT: files.certFile, TLS_KEY: files.keyFile });
  t.teardown(() => {
    server.proc.kill('SIGKILL');
  });
  const { port } = server;

  const ready = await httpsJson(port, first.cert, 'GET', '/readyz');
  t.equal(ready.status, 200, 'GET /readyz over https');
  const health = await runMain(['health', '--port', String(port), '--host', '127.0.0.1'], { TLS_CERT: files.certFile, TLS_KEY: files.keyFile });
  t.match(health, { code: 0, stdout: /https:\/\/127\.0\.0\.1:\d+\/readyz ready/ }, 'parley health speaks https when TLS_CERT is set');
  t.equal(await peerFingerprint(port), first.fingerprint, 'the first certificate is served');

  const ann = await signIn(port, first.cert, `ann${process.pid % 1000}`);
  const bob = await signIn(port, first.cert, `bob${process.pid % 1000}`);
  const url = `wss://127.0.0.1:${port}/v1/ws`;
  const annClient = new ParleyClient({ url, token: ann.token, WebSocket: trusting(first.cert), reconnect: false });
  const bobClient = new ParleyClient({ url, token: bob.token, WebSocket: trusting(first.cert), reconnect: false });
  t.teardown(() => Promise.all([annClient.close(), bobClient.close()]));
  const closes: unknown[] = [];
  annClient.on('close', (e) => closes.push(e));
  bobClient.on('close', (e) => closes.push(e));
  await annClient.connect();
  await bobClient.connect();
  const received = (body: string) =>
    new Promise<void>((resolve) => {
      const off = bobClient.on('msg', (m: { body?: unknown }) => {
        if (m.body === body) {
          off();
          resolve();
        }
      });
    });
  // A channel Bob follows from a socket of the first certificate (its posts travel by uWS publish).
  const { channel } = await annClient.channelCreate({ name: `tls${process.pid % 1000}`, title: 'TLS', mode: 'open' });
  await bobClient.channelJoin({ channel });
  // A keep-alive https connection opened before the reload.
  const keepAlive = new https.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => keepAlive.destroy());
  t.equal((await httpsJson(port, first.cert, 'GET', '/readyz', undefined, keepAlive)).status, 200, 'a keep-alive https connection');

  let got = received('before the reload');
  await annClient.send({ to: bob.user, body: 'before the reload' });
  await got;
  t.pass('a message crossed the wss session');

  // Replace both files, then SIGHUP.
  install(dir, second);
  const reloaded = nextLog(server, 'tls certificate reloaded');
  server.proc.kill('SIGHUP');
  const entry = await reloaded;
  t.equal((entry.certificate as { fingerprint256?: string }).fingerprint256, second.fingerprint, 'the log names the new certificate');
  t.equal(await peerFingerprint(port), second.fingerprint, 'a new connection sees the new certificate');
  t.equal((await httpsJson(port, second.cert, 'GET', '/readyz')).status, 200, 'https verified against the new certificate');
  await t.rejects(httpsJson(port, first.cert, 'GET', '/readyz'), /self-signed certificate/, 'and no longer against the old one');

  got = received('after the reload');
  await annClient.send({ to: bob.user, body: 'after the reload' });
  await got;
  t.pass('the wss sessions opened before the reload still carry messages');
  t.same(closes, [], 'no socket closed');
  const again = await httpsJson(port, first.cert, 'GET', '/readyz', undefined, keepAlive);
  t.match(again, { status: 200, reused: true }, 'the keep-alive https connection opened before the reload answers another request');

  // A new wss session on the new certificate exchanges with the old ones (publish spans the apps of both certificates).
  const carl = await signIn(port, second.cert, `carl${process.pid % 1000}`);
  const carlClient = new ParleyClient({ url, token: carl.token, WebSocket: trusting(second.cert), reconnect: false });
  t.teardown(() => carlClient.close());
  await carlClient.connect();
  got = received('from the new certificate');
  await carlClient.send({ to: bob.user, body: 'from the new certificate' });
  await got;
  t.pass('a session opened after the reload reaches one opened before it');
  await carlClient.channelJoin({ channel });
  const toBob = bobClient.next('cmsg', (e) => e.body === 'to every follower');
  const toCarl = carlClient.next('cmsg', (e) => e.body === 'to every follower');
  await annClient.channelPost({ channel, body: 'to every follower' });
  await Promise.all([toBob, toCarl]);
  t.pass('a channel post reaches followers on sockets of both certificates');

  // A bad pair on SIGHUP: refused, the current certificate stays.
  writeFileSync(files.keyFile, first.key);
  const refused = nextLog(server, 'tls certificate not reloaded; the previous one stays in use');
  server.proc.kill('SIGHUP');
  t.match((await refused).err, /TLS_KEY: .* is not the private key of the certificate/, 'a key of another certificate is refused with its reason');
  t.equal(await peerFingerprint(port), second.fingerprint, 'the second certificate is still served');

  server.proc.kill('SIGTERM');
  t.same(await server.exited, { code: 0, signal: null }, 'SIGTERM still exits 0');
});

t.test('a bad TLS_CERT or TLS_KEY refuses to start with a clear message', async (t) => {
  const dir = tempDataDir(t);
  const pair = await makePair('parley bad');
  const other = await makePair('parley other');
  const files = install(dir, pair);
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['a missing certificate file', { TLS_CERT: join(dir, 'nope.pem'), TLS_KEY: files.keyFile }, /parley: TLS_CERT: cannot read .*nope\.pem: ENOENT/],
    ['a key file that is not a key', { TLS_CERT: files.certFile, TLS_KEY: files.certFile }, /parley: TLS_KEY: .* holds no unencrypted PEM private key/],
    ['a certificate file that is not a certificate', { TLS_CERT: files.keyFile, TLS_KEY: files.keyFile }, /parley: TLS_CERT: .* holds no PEM certificate/],
    ['the key of another certificate', { TLS_CERT: files.certFile, TLS_KEY: writeKey(dir, other.key) }, /parley: TLS_KEY: .* is not the private key of the certificate/],
    ['a certificate without its key', { TLS_CERT: files.certFile }, /parley: TLS_CERT needs TLS_KEY/],
  ];
  for (const [what, env, message] of cases) {
    const { code, stderr } = await startExpectingRefusal(join(dir, 'data'), env);
    t.equal(code, 2, `${what}: exit 2`);
    t.match(stderr, message, `${what}: says why`);
  }
});

/** Runs the server process with these options and waits for it to exit (it must refuse to start). */
function startExpectingRefusal(dataDir: string, env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return runMain([], { PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, SHARDS: '1', ...env });
}

/** `node dist/src/main.js ARGS` (a subcommand, or a start that must end) until it exits. */
function runMain(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const main = fileURLToPath(new URL('../src/main.js', import.meta.url));
  const proc = spawn(process.execPath, [main, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => proc.once('exit', (code) => resolve({ code, stdout, stderr })));
}

function writeKey(dir: string, key: string): string {
  const file = join(dir, 'other-key.pem');
  writeFileSync(file, key, { mode: 0o600 });
  return file;
}

t.test('without TLS, SIGHUP is logged and changes nothing (systemctl reload must not stop the server)', async (t) => {
  const server = await startChildServer(join(tempDataDir(t), 'data'));
  t.teardown(() => {
    server.proc.kill('SIGKILL');
  });
  const noted = nextLog(server, 'SIGHUP: nothing to reload (no TLS_CERT/TLS_KEY)');
  server.proc.kill('SIGHUP');
  await noted;
  t.equal((await fetch(`${server.base}/readyz`)).status, 200, 'still serving plain HTTP');
  server.proc.kill('SIGTERM');
  t.same(await server.exited, { code: 0, signal: null }, 'SIGTERM exits 0');
});
