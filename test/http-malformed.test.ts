// Requests no route takes (docs/protocol.md §11): an unknown path is 404, a known path with another
// method 405 with Allow, the WebSocket path without an upgrade 426 — all as JSON errors, at once.
// Requests uWS's own parser refuses never reach us (docs/protocol.md "Malformed HTTP"); what we
// assert of those is that the server keeps serving.
import t from 'tap';
import { sendRaw } from './helpers/fuzz-http.js';
import { startTestServer } from './helpers/server.js';

const TIMEOUT_MS = 15_000;

t.test('unknown paths, wrong methods and a missing upgrade get a JSON error at once', async (t) => {
  const s = await startTestServer(t);
  const cases: [string, string, string, number, string | null][] = [
    ['unknown path', 'GET', '/nope', 404, null],
    ['unknown path with a body', 'POST', '/v1/nothing/here', 404, null],
    ['PUT on a GET route', 'PUT', '/healthz', 405, 'GET'],
    ['DELETE on a POST route', 'DELETE', '/v1/users', 405, 'POST'],
    ['PUT on GET, PATCH and DELETE', 'PUT', '/v1/users/me', 405, 'DELETE, GET, PATCH'],
    ['POST on a parameter route', 'POST', '/v1/users/somebody', 405, 'GET'],
    ['GET on a DELETE route', 'GET', '/v1/sessions/current', 405, 'DELETE'],
    ['OPTIONS', 'OPTIONS', '/v1/sessions', 405, 'GET, POST'],
    ['POST on the WebSocket path', 'POST', '/v1/ws', 405, 'GET'],
  ];
  for (const [name, method, path, status, allow] of cases) {
    const res = await fetch(s.base + path, { method, body: method === 'GET' || method === 'OPTIONS' ? undefined : '{}' });
    t.equal(res.status, status, name);
    t.equal(res.headers.get('allow'), allow, `${name}: Allow`);
    t.match(await res.json(), { error: status === 404 ? 'not_found' : 'bad_frame', message: /./ }, `${name}: JSON error`);
  }
  const head = await fetch(`${s.base}/healthz`, { method: 'HEAD' });
  t.equal(head.status, 405, 'HEAD on a GET route');
  t.equal(head.headers.get('allow'), 'GET');
  t.equal(head.headers.get('content-length'), '0', 'a HEAD answer without a body');

  const noUpgrade = await fetch(`${s.base}/v1/ws`);
  t.equal(noUpgrade.status, 426, 'the WebSocket path without an upgrade');
  t.equal(noUpgrade.headers.get('upgrade'), 'websocket');
  t.match(await noUpgrade.json(), { error: 'bad_frame' });

  // Over a raw connection too, without waiting for the client to go away.
  const { port } = s.server;
  t.equal(await sendRaw('127.0.0.1', port, Buffer.from('PUT /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n'), TIMEOUT_MS), 405);
});

t.test('requests the HTTP parser refuses leave the server serving', async (t) => {
  const s = await startTestServer(t);
  const { port } = s.server;
  const headers = (n: number) => Array.from({ length: n }, (_, i) => `X-H${i}: v`).join('\r\n');
  const malformed: [string, string | Buffer][] = [
    ['a control byte in a header', 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n'],
    ['a header line without a colon', 'GET /healthz HTTP/1.1\r\nHost: x\r\nbroken header\r\n\r\n'],
    ['GET GET /', 'GET GET / HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['48 header lines', `GET /healthz HTTP/1.1\r\n${headers(48)}\r\n\r\n`],
    ['49 header lines', `GET /healthz HTTP/1.1\r\n${headers(49)}\r\n\r\n`],
    ['100 header lines', `GET /healthz HTTP/1.1\r\n${headers(100)}\r\n\r\n`],
    ['a space in the path', 'GET /heal thz HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a NUL in the path', 'GET /heal\x00thz HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['an unknown method', 'FOO /healthz HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a lowercase method', 'get /healthz HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['no HTTP version', 'GET /healthz\r\nHost: x\r\n\r\n'],
    ['HTTP/2.0 in an HTTP/1 request line', 'GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n'],
    ['Content-Length not a number', 'POST /v1/users HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}'],
    ['a broken chunked body', 'POST /v1/users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
    ['bare LF line ends', 'GET /healthz HTTP/1.1\nHost: x\n\n'],
    ['binary junk', Buffer.from([0, 1, 2, 3, 255, 254, 13, 10, 13, 10])],
    ['a request cut short', 'GET /healthz HTTP/1.1\r\nHost: x\r\n'],
  ];
  // All at once, then each connection half-closed: the server has read every byte once it closes.
  const seen = await Promise.all(malformed.map(([, raw]) => sendRaw('127.0.0.1', port, Buffer.from(raw), TIMEOUT_MS)));
  malformed.forEach(([name], i) => t.comment(`${name}: ${seen[i] ?? 'closed without a status'}`));
  t.equal(seen.length, malformed.length, 'every malformed connection was closed');

  t.equal(await sendRaw('127.0.0.1', port, Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'), TIMEOUT_MS), 200, 'a good raw request after them');
  const res = await fetch(`${s.base}/healthz`);
  t.equal(res.status, 200, 'and through fetch');
});
