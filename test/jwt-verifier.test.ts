// The JWT verifier and the deadline buckets on their own (the server-level behaviour is in
// test/jwt-auth.test.ts): AUTH_JWT_PUBLIC_KEY as a path, key options that cannot go together,
// the device derived from the token id, and buckets that never hand out an item early.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { TokenDeadlines } from '../src/auth/jwt-deadlines.js';
import { deviceOf, JwtVerifier, looksLikeJwt, bearerJwt } from '../src/auth/jwt-verifier.js';
import { loadConfig } from '../src/config.js';
import { tempDataDir } from './helpers/server.js';

const none = { secret: '', jwksUrl: '', publicKey: '', audience: '', issuer: '', jwksCooldownMs: 30_000 };

t.test('AUTH_JWT_PUBLIC_KEY may be the path of a PEM file; its key type picks the algorithm', async (t) => {
  const es = await generateKeyPair('ES256');
  const path = join(tempDataDir(t), 'app.pem');
  writeFileSync(path, await exportSPKI(es.publicKey));
  const v = new JwtVerifier({ ...none, publicKey: path });
  t.same(v.algorithms, ['ES256']);
  const token = await new SignJWT({ device: 'tab-1' }).setProtectedHeader({ alg: 'ES256' }).setSubject('42').setExpirationTime('1h').sign(es.privateKey);
  t.match(await v.verify(token), { sub: '42', device: 'tab-1', namedDevice: true });
  t.throws(() => new JwtVerifier({ ...none, publicKey: join(tempDataDir(t), 'missing.pem') }), 'an unreadable file stops start-up');
});

t.test('no key: nothing accepted; JWKS and PEM together are refused', async (t) => {
  const v = new JwtVerifier(none);
  t.notOk(v.enabled);
  await t.rejects(v.verify('a.b.c'), { code: 'unauthorized', message: /not configured/ });
  t.throws(() => loadConfig([], { AUTH_JWKS_URL: 'http://127.0.0.1:1/jwks', AUTH_JWT_PUBLIC_KEY: '/tmp/x.pem' }), /set one of them/);
  t.throws(() => loadConfig([], { AUTH_JWT_SECRET: 'short' }), /AUTH_JWT_SECRET/);
  t.throws(() => loadConfig([], { AUTH_PASSWORDS: 'maybe' }), /AUTH_PASSWORDS/);
});

t.test('JWTs are told from session tokens by shape', async (t) => {
  t.ok(looksLikeJwt('eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_-'));
  t.notOk(looksLikeJwt('Q2hhdHRva2VuLWZvci1hLXNlc3Npb24tNDMtY2hhcnM'), 'a session token has no dots');
  t.notOk(looksLikeJwt('a.b.'), 'an empty signature part');
  t.equal(bearerJwt('Bearer a.b.c'), 'a.b.c');
  t.equal(bearerJwt('Bearer abc'), null);
  t.equal(deviceOf('x.y.z', 'jti-1'), deviceOf('other.token.here', 'jti-1'), 'one device per jti');
  t.not(deviceOf('x.y.z', undefined), deviceOf('x.y.w', undefined), 'else one per token');
});

t.test('deadline buckets: an item is taken once, never before its time', async (t) => {
  const start = 1_000_000;
  const d = new TokenDeadlines<string>(start);
  const slotA = d.add('a', start + 1500);
  d.add('b', start + 3000);
  const seen: string[] = [];
  d.takeDue(start + 1999, (x) => seen.push(x));
  t.same(seen, [], 'a at 1.5 s is not due at 1.999 s (its bucket is second 2)');
  d.takeDue(start + 2000, (x) => seen.push(x));
  t.same(seen, ['a']);
  d.takeDue(start + 2500, (x) => seen.push(x));
  t.same(seen, ['a'], 'taken once');
  d.remove('a', slotA);
  const c = d.add('c', start + 100); // in the past: the next slot still to sweep
  d.remove('c', c);
  d.takeDue(start + 10_000, (x) => seen.push(x));
  t.same(seen, ['a', 'b'], 'removed items are not taken');
  t.equal(d.size, 0);
});
