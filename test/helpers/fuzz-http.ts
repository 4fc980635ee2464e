// Seeded generator of random HTTP requests for the fuzz test and loadtest/fuzz.ts: well-formed
// requests with random methods, paths, headers and bodies (sent with fetch), and malformed raw
// requests (sent over node:net, which writes whatever bytes it is given).
import { connect } from 'node:net';
import type { FuzzContext, Rng } from './fuzz-frames.js';

export interface FuzzHttpContext extends FuzzContext {
  tokens: string[];
}

export type FuzzRequest =
  | { kind: 'fetch'; method: string; path: string; headers: Record<string, string>; body?: string | Uint8Array }
  | { kind: 'raw'; bytes: Uint8Array };

const PATHS = [
  '/v1/users', '/v1/users/me', '/v1/users/:username', '/v1/sessions', '/v1/sessions/current', '/v1/sessions/:device',
  '/v1/push', '/v1/media', '/v1/media/:id', '/v1/ws', '/healthz', '/readyz', '/metrics', '/', '/admin', '/v1/admin/x',
  '/v1/channels/:id/events', '/v1/channels/:id/messages', '/v1/media/:id/upload', '/v1/media/:id/content',
  '/i/:code', '/v1/server/users', '/v1/server/users/:id', '/v1/server/users/:id/ban', '/v1/server/users/:id/export',
  '/v1/server/messages', '/v1/server/groups', '/v1/server/channels', '/v1/server/keys', '/v1/server/events',
  '/v1/server/threads/:thread/history',
];
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];
const JUNK_PATH = ['%00', '%zz', '..', '//', '?', '#', ';', '%2F', 'é', '~', '*', '\u2028'];

function path(rng: Rng, ctx: FuzzHttpContext): string {
  let p = rng.pick(PATHS).replace(/:[a-z]+/, () => (rng.chance(0.5) && ctx.usernames.length ? rng.pick(ctx.usernames) : encodeURIComponent(rng.pick(['me', 'x', 'a'.repeat(rng.int(300)), ...JUNK_PATH]))));
  if (rng.chance(0.2)) p += `/${encodeURIComponent(rng.pick(JUNK_PATH))}`;
  if (rng.chance(0.2)) p += `?${rng.pick(['since=1', 'a=b&c', '=', 'x'.repeat(rng.int(2000))])}`;
  return p;
}

function jsonBody(rng: Rng, ctx: FuzzHttpContext): string {
  const bodies: unknown[] = [
    { username: `fz${rng.int(1e6)}`, password: 'fuzz password' },
    { username: rng.pick(ctx.usernames.length ? ctx.usernames : ['x']), password: 'wrong password', device: 'fuzz' },
    { name: 'x'.repeat(rng.int(80)) },
    { username: rng.int(10), password: null },
    [1, 2, 3],
    'string',
    null,
    { mime: 'image/png', size: rng.int(1e9), sha256: 'x' },
    { provider: 'webpush', token: 'x' },
    { id: `fz-app-${rng.int(1e6)}`, name: 'fuzz bot', bot: rng.chance(0.5) },
    { as: rng.pick(ctx.usernames.length ? ctx.usernames : ['x']), to: 'nobody', body: 'fuzz' },
    { name: 'fuzz key', scopes: ['messages', 'nope'] },
    { __proto__: { admin: true } },
    { nested: JSON.parse('['.repeat(200) + ']'.repeat(200)) },
  ];
  const value = rng.pick(bodies);
  const text = JSON.stringify(value) ?? 'null';
  // Sometimes broken JSON: cut short, or a stray byte.
  if (rng.chance(0.15)) return text.slice(0, rng.int(text.length));
  if (rng.chance(0.05)) return text + '\u0000';
  return text;
}

const ENC = new TextEncoder();

function rawRequest(rng: Rng, ctx: FuzzHttpContext): Uint8Array {
  const method = rng.pick(['GET', 'POST', 'GET GET', 'FOO', 'get', 'PROPFIND', 'CONNECT', 'TRACE', '', 'G\u0000T', 'PUT']);
  const target = rng.pick([path(rng, ctx), '/heal thz', '/a\u0000b', '*', 'http://x/healthz', '', '/\u0001', '/' + 'a'.repeat(rng.int(20_000))]);
  const version = rng.pick(['HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/9', '', 'http/1.1']);
  const lines = [`${method} ${target} ${version}`.trimEnd(), 'Host: 127.0.0.1'];
  const headerCount = rng.chance(0.2) ? 40 + rng.int(30) : rng.int(5);
  for (let i = 0; i < headerCount; i++) lines.push(`X-F${i}: v`);
  switch (rng.int(8)) {
    case 0: lines.push('X-Ctl: a\u0001b'); break;
    case 1: lines.push('broken header line'); break;
    case 2: lines.push('Content-Length: abc'); break;
    case 3: lines.push('Content-Length: 5', 'Content-Length: 7'); break;
    case 4: lines.push('Transfer-Encoding: chunked'); break;
    case 5: lines.push(`Authorization: Bearer ${rng.pick(ctx.tokens.length ? ctx.tokens : ['x'])}`); break;
    case 6: lines.push(`X-Big: ${'a'.repeat(rng.int(30_000))}`); break;
    default: break;
  }
  const eol = rng.chance(0.1) ? '\n' : '\r\n';
  const head = lines.join(eol) + eol + eol;
  const body = rng.chance(0.3) ? jsonBody(rng, ctx) : '';
  const bytes = ENC.encode(head + body);
  // Sometimes: truncated, or random bytes altogether.
  if (rng.chance(0.1)) return bytes.subarray(0, rng.int(bytes.length));
  if (rng.chance(0.05)) return rng.bytes(1 + rng.int(300));
  return bytes;
}

/** One random request. */
export function fuzzRequest(rng: Rng, ctx: FuzzHttpContext): FuzzRequest {
  if (rng.chance(0.35)) return { kind: 'raw', bytes: rawRequest(rng, ctx) };
  const method = rng.pick(METHODS);
  const headers: Record<string, string> = {};
  if (rng.chance(0.6)) headers.authorization = rng.pick([`Bearer ${rng.pick(ctx.tokens.length ? ctx.tokens : ['x'])}`, 'Bearer', 'Bearer !!', 'Basic abc', `Bearer ${'a'.repeat(600)}`]);
  if (rng.chance(0.5)) headers['content-type'] = rng.pick(['application/json', 'text/plain', 'application/octet-stream', 'multipart/form-data; boundary=x']);
  if (rng.chance(0.1)) headers['x-fuzz'] = 'a'.repeat(rng.int(8000));
  const hasBody = method !== 'GET' && method !== 'HEAD' && rng.chance(0.8);
  const body = !hasBody ? undefined : rng.chance(0.85) ? jsonBody(rng, ctx) : rng.bytes(rng.int(rng.chance(0.05) ? 100_000 : 500));
  return { kind: 'fetch', method, path: path(rng, ctx), headers, body };
}

/** Status of a fetch request; null when fetch itself failed (e.g. the server cut the connection). */
export async function sendFetch(base: string, req: Extract<FuzzRequest, { kind: 'fetch' }>, timeoutMs: number): Promise<number | null> {
  try {
    const res = await fetch(base + req.path, { method: req.method, headers: req.headers, body: req.body as BodyInit | undefined, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    await res.arrayBuffer();
    return res.status;
  } catch (err) {
    if ((err as Error).name === 'TimeoutError') throw new Error(`no answer in ${timeoutMs} ms to ${req.method} ${req.path}`);
    return null;
  }
}

/**
 * Writes raw bytes on a fresh connection and half-closes it: the server reads everything before
 * the FIN, so once it has closed the connection it has handled our bytes. Resolves with the
 * status line's code, or null when it closed without one.
 */
export function sendRaw(host: string, port: number, bytes: Uint8Array, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    let head = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connection not closed within ${timeoutMs} ms after a raw request`));
    }, timeoutMs);
    socket.on('data', (d: Buffer) => {
      if (head.length < 64) head += d.toString('latin1');
    });
    socket.on('error', () => {}); // a reset is an answer too: the close below still comes
    socket.on('close', () => {
      clearTimeout(timer);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      resolve(m ? Number(m[1]) : null);
    });
    socket.end(bytes);
  });
}
