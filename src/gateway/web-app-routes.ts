// The web chat app (docs/protocol.md §8.7, README "Web app"): the static files `npm run build`
// wrote (web/build.mjs → dist/web) served at `GET /`, `GET /assets/:file` and `GET /sw.js` (the
// service worker: at the root, so its scope is the whole app). The files are read once at
// start-up into memory (they are small); a request can only name a file of that set, so no path
// ever reaches the file system (no traversal). Assets have content hashes in their names:
// cached for a year; index.html and sw.js are revalidated on every load (no-cache + ETag), so a
// new build reaches browsers at once.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import { STATUS_TEXT, type Reply } from './http.js';

/** Where the build writes the app: next to the compiled server (dist/web for dist/src/gateway). */
export const DEFAULT_WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
  '.webmanifest': 'application/manifest+json',
};

interface StaticFile { body: Buffer; type: string; etag: string; cache: string }

export interface WebAppRequest { ifNoneMatch: string; param: string }
type On<R> = (method: 'GET' | 'HEAD', pattern: string, handler: (reply: Reply, req: R) => void) => void;

/** Mounts `/`, `/sw.js` and `/assets/:file` unless `mode` is off. A missing build answers 404 saying how to build it. */
export function mountWebAppRoutes<R extends WebAppRequest>(on: On<R>, mode: 'on' | 'off', dir = DEFAULT_WEB_DIR): void {
  if (mode === 'off') return;
  const { index, worker, assets } = loadWebApp(dir);
  const missing = () => {
    throw new ProtocolError(ErrorCode.not_found, `the web app is not built (no ${join(dir, 'index.html')}): run npm run build`);
  };
  const serve = (head: boolean) => (reply: Reply, req: R, file: StaticFile | undefined) => {
    if (!file) throw new ProtocolError(ErrorCode.not_found, 'no such file');
    sendFile(reply, file, req.ifNoneMatch, head);
  };
  for (const [method, head] of [['GET', false], ['HEAD', true]] as const) {
    on(method, '/', (reply, req) => (index ? serve(head)(reply, req, index) : missing()));
    on(method, '/sw.js', (reply, req) => serve(head)(reply, req, worker));
    on(method, '/assets/:file', (reply, req) => serve(head)(reply, req, assets.get(req.param)));
  }
}

/** index.html, sw.js and every file of assets/, or nothing when the app was not built. */
export function loadWebApp(dir: string): { index?: StaticFile; worker?: StaticFile; assets: Map<string, StaticFile> } {
  const assets = new Map<string, StaticFile>();
  const indexPath = join(dir, 'index.html');
  if (!existsSync(indexPath)) return { assets };
  const index = staticFile(readFileSync(indexPath), '.html', 'no-cache');
  const workerPath = join(dir, 'sw.js');
  const worker = existsSync(workerPath) ? staticFile(readFileSync(workerPath), '.js', 'no-cache') : undefined;
  const assetDir = join(dir, 'assets');
  if (existsSync(assetDir)) {
    for (const entry of readdirSync(assetDir, { withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const type = extname(entry.name);
      if (!(type in TYPES)) continue;
      assets.set(entry.name, staticFile(readFileSync(join(assetDir, entry.name)), type, 'public, max-age=31536000, immutable'));
    }
  }
  return { index, worker, assets };
}

function staticFile(body: Buffer, ext: string, cache: string): StaticFile {
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  return { body, type: TYPES[ext]!, etag, cache };
}

function sendFile(reply: Reply, file: StaticFile, ifNoneMatch: string, head: boolean): void {
  if (reply.aborted) return;
  const fresh = ifNoneMatch !== '' && ifNoneMatch.split(',').some((tag) => tag.trim() === file.etag);
  const status = fresh ? 304 : 200;
  reply.onAnswer?.(status);
  const res = reply.res;
  res.cork(() => {
    res.writeStatus(STATUS_TEXT[status]!);
    res.writeHeader('Content-Type', file.type);
    res.writeHeader('Cache-Control', file.cache);
    res.writeHeader('ETag', file.etag);
    res.writeHeader('X-Content-Type-Options', 'nosniff');
    // Scripts, styles and images come only from the app's origin (connections may also reach a
    // media bucket's signed URLs elsewhere); nothing may frame it.
    res.writeHeader('Content-Security-Policy', "default-src 'self'; connect-src 'self' ws: wss: http: https:; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; frame-ancestors 'none'");
    res.writeHeader('Referrer-Policy', 'no-referrer');
    // HEAD: no body. (uWS's endWithoutBody with a reported length left keep-alive connections
    // unusable, so HEAD answers Content-Length 0.)
    if (fresh || head) res.end();
    else res.end(file.body);
  });
}
