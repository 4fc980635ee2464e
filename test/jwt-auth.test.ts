// Sign-in with the application's tokens (docs/operator-guide.md): real servers, the real SDK over
// real sockets, tokens signed with jose as an operator's backend would — HS256 with a secret,
// RS256 from a JWKS a local node:http server serves (and rotates), ES256 from a PEM public key.
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import WebSocket from 'ws';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK } from 'jose';
import { ParleyClient, ParleyError, deleteAccount, listSessions, revokeSession } from '../client/index.js';
import { apiCall } from '../client/http.js';
import { connect, newDevice, newUser, startTestServer, type TestServer } from './helpers/server.js';

interface Teardown { teardown(fn: () => unknown): void }

const SECRET = 'an-hs256-secret-of-the-operators-backend-0123456789';
const AUDIENCE = 'parley-test';
const ISSUER = 'https://app.example.com';

interface Claims { sub?: string; name?: string; device?: string; jti?: string; aud?: string; iss?: string }

/** A token as the operator's backend signs it; `expIn` seconds from now (null: no exp). */
function hs256(claims: Claims, expIn: number | null = 3600, secret = SECRET): Promise<string> {
  const { aud = AUDIENCE, iss = ISSUER, ...rest } = claims;
  let jwt = new SignJWT(rest as Record<string, unknown>).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setAudience(aud).setIssuer(iss);
  if (expIn !== null) jwt = jwt.setExpirationTime(Math.floor(Date.now() / 1000) + expIn);
  return jwt.sign(new TextEncoder().encode(secret));
}

function jwtClient(t: Teardown, s: { wsUrl: string }, opts: { jwt?: string; getToken?: () => Promise<string> }): ParleyClient {
  const c = new ParleyClient({ url: s.wsUrl, WebSocket, reconnect: false, ...opts });
  t.teardown(() => c.close());
  return c;
}

/** Connecting with `jwt` fails: the close code and the server's reason. */
async function refused(t: Teardown, s: { wsUrl: string }, jwt: string): Promise<{ code: number; reason: string }> {
  const c = jwtClient(t, s, { jwt });
  let code = 0;
  c.on('close', (info) => (code = info.code));
  const err = await c.connect().then(() => null, (e: unknown) => e as ParleyError);
  return { code, reason: err instanceof ParleyError && err.code === 'unauthorized' ? err.message : `not refused: ${String(err)}` };
}

let hs: TestServer;
t.before(async () => {
  hs = await startTestServer(t, { shards: 1, authJwtSecret: SECRET, authJwtAudience: AUDIENCE, authJwtIssuer: ISSUER });
});

t.test('HS256: the user is created on first sight and is the same at every sign-in; messages flow with a password user', async (t) => {
  const first = jwtClient(t, hs, { jwt: await hs256({ sub: 'app-ann', name: 'Ann', device: 'ann-phone' }) });
  await first.connect();
  t.equal(first.device, 'ann-phone', 'the device claim names the device');
  const laptop = jwtClient(t, hs, { jwt: await hs256({ sub: 'app-ann', name: 'Someone else', device: 'ann-laptop' }) });
  await laptop.connect();
  t.equal(laptop.user, first.user, 'the same user at the second sign-in');
  const me = await apiCall(hs.base, 'GET', '/v1/users/me', { token: await hs256({ sub: 'app-ann', device: 'ann-phone' }) });
  t.match(me, { user: first.user, name: 'Ann' }, 'named from the first token; a Bearer JWT works on 🔒 routes');

  const bob = await newUser(hs, 'bob');
  const bobClient = await connect(t, hs, await newDevice(hs, bob));
  const toBob = bobClient.next('msg', (m) => m.body === 'hi from the app', 30_000);
  await first.send({ to: bob.user, body: 'hi from the app' });
  t.equal((await toBob).from, first.user);
  const toAnn = laptop.next('msg', (m) => m.body === 'hi back', 30_000);
  await bobClient.send({ to: first.user, body: 'hi back' });
  t.equal((await toAnn).from, bob.user, 'every device of the JWT user gets it');

  // The devices are real devices: listed, with cursors; offline, the log replays to them.
  const { devices } = await listSessions(hs.base, await hs256({ sub: 'app-ann', device: 'ann-phone' }));
  t.same(devices.map((d) => d.device).sort(), ['ann-laptop', 'ann-phone']);
  await laptop.close();
  await bobClient.send({ to: first.user, body: 'while the laptop was away' });
  const again = jwtClient(t, hs, { jwt: await hs256({ sub: 'app-ann', device: 'ann-laptop' }) });
  const replayed = again.next('msg', (m) => m.body === 'while the laptop was away', 30_000);
  await again.connect();
  t.equal((await replayed).from, bob.user, 'replayed to the device from its cursor');
  t.equal(again.device, 'ann-laptop');

  // Revoking a JWT device closes its sockets (4003); a valid token for it later brings it back.
  const kicked = new Promise<number>((resolve) => again.on('close', (i) => resolve(i.code)));
  await revokeSession(hs.base, await hs256({ sub: 'app-ann', device: 'ann-phone' }), 'ann-laptop');
  t.equal(await kicked, 4003, 'revoked: its socket closes');
  const back = jwtClient(t, hs, { jwt: await hs256({ sub: 'app-ann', device: 'ann-laptop' }) });
  await back.connect();
  t.equal(back.device, 'ann-laptop', 'the next valid token brings the device back');
});

t.test('without a device claim: one device per jti, or per token', async (t) => {
  const a = jwtClient(t, hs, { jwt: await hs256({ sub: 'app-carl', jti: 'token-1' }) });
  await a.connect();
  const b = jwtClient(t, hs, { jwt: await hs256({ sub: 'app-carl', jti: 'token-1' }) });
  await b.connect();
  t.equal(b.device, a.device, 'the same jti: the same device');
  const c = jwtClient(t, hs, { jwt: await hs256({ sub: 'app-carl' }) });
  await c.connect();
  t.not(c.device, a.device, 'another token: another device');
  t.match(c.device, /^j[A-Za-z0-9_-]{22}$/);
});

t.test('expired, forged, unsigned or incomplete tokens are refused with 4001', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const cases: [string, Promise<string> | string, RegExp][] = [
    ['expired', hs256({ sub: 'x' }, -60), /expired/],
    ['bad signature', hs256({ sub: 'x' }, 3600, 'another-secret-that-is-long-enough-000000000'), /signature/],
    ['missing sub', hs256({}), /sub/],
    ['missing exp', hs256({ sub: 'x' }, null), /exp/],
    ['wrong aud', hs256({ sub: 'x', aud: 'another-app' }), /aud/],
    ['wrong iss', hs256({ sub: 'x', iss: 'https://evil.example.com' }), /iss/],
    ['alg none', `${b64({ alg: 'none' })}.${b64({ sub: 'x', exp: now + 3600, aud: AUDIENCE, iss: ISSUER })}.`, /./],
    ['alg none with a fake signature', `${b64({ alg: 'none' })}.${b64({ sub: 'x', exp: now + 3600, aud: AUDIENCE, iss: ISSUER })}.AAAA`, /algorithm|not allowed|Unsupported/i],
    ['not a JWT', 'abc.def', /./],
  ];
  for (const [name, token, why] of cases) {
    const { code, reason } = await refused(t, hs, await token);
    t.equal(code, 4001, `${name}: closed with 4001`);
    t.match(reason, why, `${name}: ${reason}`);
  }
  const bearer = await fetch(`${hs.base}/v1/users/me`, { headers: { Authorization: `Bearer ${await hs256({ sub: 'x' }, -60)}` } });
  t.equal(bearer.status, 401, 'an expired Bearer JWT: 401');
  t.match(await bearer.json(), { error: 'unauthorized', message: /expired/ });
});

t.test('a socket whose token expires gets refresh: answering keeps it open, not answering closes it with 4001', async (t) => {
  // Both tokens expire in the same second; one socket answers the refresh, the other does not.
  const exp = 8;
  const answering = jwtClient(t, hs, { jwt: await hs256({ sub: 'app-dora', device: 'dora-a' }, exp) });
  const silent = jwtClient(t, hs, { jwt: await hs256({ sub: 'app-dora', device: 'dora-b' }, exp) });
  // Safety nets only: the events come ~4–6 s in (half the lifetime before exp, swept per second).
  const asked = answering.next('refresh', undefined, 60_000);
  const silentAsked = silent.next('refresh', undefined, 60_000);
  const silentClosed = new Promise<{ code: number; reason: string }>((resolve) => silent.on('close', (i) => resolve(i)));
  let answeringClosed = false;
  answering.on('close', () => (answeringClosed = true));
  await Promise.all([answering.connect(), silent.connect()]);
  const { exp: expMs } = await asked;
  t.ok(expMs > Date.now() && expMs - Date.now() < exp * 1000, 'sent before exp, with exp');
  await answering.refreshToken(await hs256({ sub: 'app-dora', device: 'dora-a' }, 3600));
  await silentAsked;
  const closed = await silentClosed;
  t.equal(closed.code, 4001, 'no new token by exp: 4001');
  t.ok(Date.now() >= expMs, 'not before exp');
  // The same sweep would have closed the other one: it still answers, past the old exp.
  await answering.request('contacts.list');
  t.notOk(answeringClosed, 'the refreshed socket is open past the old exp');
  t.equal(answering.state, 'live');

  await t.rejects(answering.refreshToken(await hs256({ sub: 'app-someone-else', device: 'dora-a' })), { code: 'unauthorized' }, 'another sub: unauthorized');
  await t.rejects(answering.refreshToken(await hs256({ sub: 'app-dora', device: 'dora-b' })), { code: 'unauthorized' }, 'another device: unauthorized');
  await t.rejects(answering.refreshToken(await hs256({ sub: 'app-dora', device: 'dora-a' }, -5)), { code: 'unauthorized' }, 'an expired token: unauthorized');
});

t.test('the SDK answers refresh with getToken by itself', async (t) => {
  let calls = 0;
  let called!: () => void;
  const asked = new Promise<void>((resolve) => (called = resolve));
  const c = jwtClient(t, hs, {
    jwt: await hs256({ sub: 'app-eve', device: 'eve' }, 8),
    getToken: () => {
      calls++;
      called();
      return hs256({ sub: 'app-eve', device: 'eve' }, 3600);
    },
  });
  await c.connect();
  t.equal(calls, 0, 'the given token is used for the first hello');
  await asked;
  // The answer is in once a ping after it comes back (frames are handled in order).
  await c.request('contacts.list');
  t.equal(c.state, 'live');
});

t.test('a deleted application account is refused at sign-in, even with a valid token', async (t) => {
  const token = await hs256({ sub: 'app-fred', device: 'fred' });
  const c = jwtClient(t, hs, { jwt: token });
  await c.connect();
  const kicked = new Promise<number>((resolve) => c.on('close', (i) => resolve(i.code)));
  await deleteAccount(hs.base, token);
  t.equal(await kicked, 4003, 'its sockets close');
  const { code, reason } = await refused(t, hs, await hs256({ sub: 'app-fred', device: 'fred' }));
  t.equal(code, 4001);
  t.match(reason, /deleted/);
  const me = await fetch(`${hs.base}/v1/users/me`, { headers: { Authorization: `Bearer ${token}` } });
  t.equal(me.status, 401);
});

t.test('RS256 from a JWKS: cached, and a rotated key (a new kid) is fetched', async (t) => {
  const k1 = await generateKeyPair('RS256');
  const k2 = await generateKeyPair('RS256');
  const jwk = async (k: CryptoKey, kid: string): Promise<JWK> => ({ ...(await exportJWK(k)), kid, alg: 'RS256', use: 'sig' });
  let keys: JWK[] = [await jwk(k1.publicKey, 'k1')];
  let fetches = 0;
  const jwks = createServer((_req, res) => {
    fetches++;
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  jwks.listen(0, '127.0.0.1');
  await once(jwks, 'listening');
  t.teardown(() => jwks.close());
  const s = await startTestServer(t, { shards: 1, authJwksUrl: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`, authJwksCooldownMs: 1 });
  const rs256 = (key: CryptoKey, kid: string, sub: string) =>
    new SignJWT({ device: 'web' }).setProtectedHeader({ alg: 'RS256', kid }).setSubject(sub).setExpirationTime('1h').sign(key);

  const a = jwtClient(t, s, { jwt: await rs256(k1.privateKey, 'k1', 'app-gus') });
  await a.connect();
  const b = jwtClient(t, s, { jwt: await rs256(k1.privateKey, 'k1', 'app-gus') });
  await b.connect();
  t.equal(b.user, a.user);
  t.equal(fetches, 1, 'the key set is cached');

  keys = [await jwk(k2.publicKey, 'k2')];
  const rotated = jwtClient(t, s, { jwt: await rs256(k2.privateKey, 'k2', 'app-gus') });
  await rotated.connect();
  t.equal(rotated.user, a.user, 'a token with the new kid is accepted after the key set changed');
  t.equal(fetches, 2, 'fetched again for the unknown kid');
  t.equal((await refused(t, s, await rs256(k1.privateKey, 'k2', 'app-gus'))).code, 4001, 'signed by the old key under the new kid: refused');

  // No key confusion: an HS256 token whose "secret" is the public key is refused.
  const pub = JSON.stringify(keys[0]);
  const confused = await new SignJWT({}).setProtectedHeader({ alg: 'HS256', kid: 'k2' }).setSubject('app-gus').setExpirationTime('1h').sign(new TextEncoder().encode(pub));
  const r = await refused(t, s, confused);
  t.equal(r.code, 4001);
  t.match(r.reason, /algorithm/);
});

t.test('ES256 with AUTH_JWT_PUBLIC_KEY; AUTH_PASSWORDS=off refuses register and login', async (t) => {
  const es = await generateKeyPair('ES256');
  const pem = await exportSPKI(es.publicKey);
  const s = await startTestServer(t, { shards: 1, authJwtPublicKey: pem, authPasswords: 'off' });
  const es256 = (key: CryptoKey, alg = 'ES256') => new SignJWT({ name: 'Hal' }).setProtectedHeader({ alg }).setSubject('app-hal').setExpirationTime('1h').sign(key);
  const c = jwtClient(t, s, { jwt: await es256(es.privateKey) });
  await c.connect();
  t.ok(c.user);

  const other = await generateKeyPair('ES256');
  t.equal((await refused(t, s, await es256(other.privateKey))).code, 4001, 'signed by another key');
  const rsa = await generateKeyPair('RS256');
  const wrongAlg = await refused(t, s, await es256(rsa.privateKey, 'RS256'));
  t.equal(wrongAlg.code, 4001, 'RS256 on an ES256 server');
  t.match(wrongAlg.reason, /algorithm/);
  t.equal((await refused(t, s, await hs256({ sub: 'app-hal' }))).code, 4001, 'HS256 without a secret configured');

  for (const [path, body] of [['/v1/users', { username: 'ivy_1', password: 'correct horse battery' }], ['/v1/sessions', { username: 'ivy_1', password: 'correct horse battery', device: 'x' }]] as const) {
    const res = await fetch(`${s.base}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    t.equal(res.status, 403, `POST ${path}: 403`);
    t.match(await res.json(), { error: 'forbidden', message: /AUTH_PASSWORDS=off/ });
  }
});

function b64(o: object): string {
  return Buffer.from(JSON.stringify(o)).toString('base64url');
}
