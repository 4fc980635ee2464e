// GET / serves the built web app (src/gateway/web-app-routes.ts): content types, cache headers
// (hashed assets immutable, index.html and the service worker revalidated with their ETags), HEAD, 404 for unknown files
// and traversal attempts, the API's routes untouched, and WEB_APP=off.
import { request } from 'node:http';
import t from 'tap';
import { startTestServer } from './helpers/server.js';
import { ensureWebAppBuilt } from './helpers/web-app.js';

ensureWebAppBuilt();

/** A raw request (fetch would normalize `..` in paths away). */
function get(base: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('the app, its assets and the API side by side', async (t) => {
  const s = await startTestServer(t);
  const index = await get(s.base, '/');
  t.equal(index.status, 200);
  t.equal(index.headers['content-type'], 'text/html; charset=utf-8');
  t.equal(index.headers['cache-control'], 'no-cache', 'index.html is revalidated on every load');
  t.match(index.headers['content-security-policy'], /default-src 'self'/, 'nothing from other origins');
  t.notMatch(index.body, /https?:\/\//, 'index.html loads nothing from the internet');
  const js = /src="(\/assets\/app-[A-Z0-9]+\.js)"/.exec(index.body)?.[1];
  const css = /href="(\/assets\/style-[A-Z0-9]+\.css)"/.exec(index.body)?.[1];
  t.ok(js && css, 'index.html names a hashed script and style sheet');

  const script = await get(s.base, js!);
  t.equal(script.status, 200);
  t.equal(script.headers['content-type'], 'text/javascript; charset=utf-8');
  t.equal(script.headers['cache-control'], 'public, max-age=31536000, immutable');
  t.ok(script.body.length > 1000, 'the bundle');
  const sheet = await get(s.base, css!);
  t.equal(sheet.headers['content-type'], 'text/css; charset=utf-8');

  // The service worker: at the root (its scope is the app), revalidated like index.html, and
  // naming exactly the shell index.html loads, which it caches for starting offline.
  const worker = await get(s.base, '/sw.js');
  t.equal(worker.status, 200);
  t.equal(worker.headers['content-type'], 'text/javascript; charset=utf-8');
  t.equal(worker.headers['cache-control'], 'no-cache', 'a new build reaches browsers at once');
  t.match(worker.headers['content-security-policy'], /default-src 'self'/, 'the worker is under the same policy');
  const shell = /\["\/",("\/assets\/[^"]+",?)+\]/.exec(worker.body)?.[0];
  t.same(shell && (JSON.parse(shell) as string[]).sort(), ['/', js, css].sort(), 'sw.js caches index.html and the assets it names');
  t.match(worker.body, /parley-shell-[\w-]{16}/, 'a cache name of this build');

  const etag = index.headers.etag as string;
  t.match(etag, /^"[\w-]+"$/);
  const again = await get(s.base, '/', { 'if-none-match': etag });
  t.equal(again.status, 304, 'unchanged index.html: 304');
  t.equal(again.body, '');
  const head = await get(s.base, '/', {}, 'HEAD');
  t.equal(head.status, 200);
  t.equal(head.body, '', 'HEAD has no body');

  for (const path of ['/assets/nope.js', '/assets/..%2f..%2fpackage.json', '/assets/..%2f..%2f..%2fpackage.json', '/assets/../package.json', '/assets/%2e%2e/index.html', '/index.html/..', '/web/build.mjs', '/package.json']) {
    const r = await get(s.base, path);
    t.equal(r.status, 404, `${path}: 404`);
    t.notMatch(r.body, /"name": "parley"/, `${path}: no file outside the app`);
  }
  t.equal((await get(s.base, '/healthz')).status, 200, '/healthz still answers');
  t.equal((await get(s.base, '/v1/sessions')).status, 401, '/v1/... still reaches the API');
  t.equal((await get(s.base, '/v1/nothing')).headers['content-type'], 'application/json', 'unknown API paths: JSON 404');
  t.equal((await get(s.base, '/admin')).status, 200, '/admin still serves the dashboard');
  t.equal((await get(s.base, '/', {}, 'POST')).status, 405, 'POST / is not allowed');
});

t.test('WEB_APP=off: / is not served', async (t) => {
  const s = await startTestServer(t, { webApp: 'off' });
  t.equal((await get(s.base, '/')).status, 404);
  t.equal((await get(s.base, '/sw.js')).status, 404, 'nor its service worker');
  t.equal((await get(s.base, '/healthz')).status, 200);
});
