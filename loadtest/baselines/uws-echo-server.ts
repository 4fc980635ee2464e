// Ceiling for `npm run bench`: raw uWebSockets.js doing no work at all.
//
//   node dist/loadtest/baselines/uws-echo-server.js [--port 0] [--host 127.0.0.1]   (or env PORT, HOST)
//
// A client connects to ws://host:port/?user=<id>&peer=<id>. Every binary message it sends is
// relayed as is to the socket of its peer (if connected), and the sender gets a tiny ack: the
// message's first 4 bytes (the client's request number). No parsing, no validation, no storage,
// no fan-out bookkeeping: the same traffic shape as the chat-1to1 benchmark (one frame in, one
// frame to the partner, one small frame back to the sender) at the lowest possible cost, on the
// same native uWS binary Parley's gateway uses (loaded through src/gateway/uws.js, never the
// package's JS fallback).
// Prints one JSON line {"msg":"ready","port":N,"pid":P} on stdout when it listens.
// GET /readyz answers 200; GET /stats answers JSON counters. SIGTERM/SIGINT: exit 0.
// With BENCH_EXIT_ON_STDIN_END=1 it also exits when its stdin closes.
import { parseArgs } from 'node:util';
import { uws, type UWS } from '../../src/gateway/uws.js';

const { values: args } = parseArgs({
  options: { port: { type: 'string' }, host: { type: 'string' } },
  strict: true,
});
const port = Number(args.port ?? process.env.PORT ?? 0);
const host = args.host ?? process.env.HOST ?? '127.0.0.1';
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`uws-echo-server: bad port ${args.port ?? process.env.PORT}\n`);
  process.exit(2);
}

interface Peer {
  user: string;
  peer: string;
}

const sockets = new Map<string, UWS.WebSocket<Peer>>();
const stats = { relayed: 0, noPeer: 0, connections: 0, connectionsTotal: 0 };

const app = uws.App();
app.ws<Peer>('/*', {
  compression: uws.DISABLED,
  maxPayloadLength: 128 * 1024,
  idleTimeout: 120,
  maxBackpressure: 64 * 1024 * 1024,
  upgrade: (res, req, context) => {
    const user = req.getQuery('user') ?? '';
    const peer = req.getQuery('peer') ?? '';
    res.upgrade<Peer>({ user, peer }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
  },
  open: (ws) => {
    sockets.set(ws.getUserData().user, ws);
    stats.connections++;
    stats.connectionsTotal++;
  },
  message: (ws, message) => {
    const partner = sockets.get(ws.getUserData().peer);
    if (partner) {
      partner.send(message, true);
      stats.relayed++;
    } else {
      stats.noPeer++;
    }
    ws.send(new Uint8Array(message, 0, Math.min(4, message.byteLength)), true);
  },
  close: (ws) => {
    const { user } = ws.getUserData();
    if (sockets.get(user) === ws) sockets.delete(user);
    stats.connections--;
  },
});
app.get('/readyz', (res) => {
  res.end('ok');
});
app.get('/stats', (res) => {
  res.writeHeader('content-type', 'application/json').end(JSON.stringify({ ...stats, rss: process.memoryUsage().rss }));
});
app.any('/*', (res) => {
  res.writeStatus('404 Not Found').end();
});

let listenSocket: UWS.us_listen_socket | false = false;
let stopping = false;
function shutdown(code: number): void {
  if (stopping) return;
  stopping = true;
  if (listenSocket) uws.us_listen_socket_close(listenSocket);
  for (const ws of [...sockets.values()]) ws.end(1001, 'going away');
  setTimeout(() => process.exit(code), 50);
}
process.once('SIGTERM', () => shutdown(0));
process.once('SIGINT', () => shutdown(0));
if (process.env.BENCH_EXIT_ON_STDIN_END === '1') {
  process.stdin.on('end', () => shutdown(0));
  process.stdin.on('error', () => shutdown(0));
  process.stdin.resume();
}

app.listen(host, port, (ls) => {
  if (!ls) {
    process.stderr.write(`uws-echo-server: cannot listen on ${host}:${port}\n`);
    process.exit(1);
  }
  listenSocket = ls;
  process.stdout.write(JSON.stringify({ msg: 'ready', port: uws.us_socket_local_port(ls), pid: process.pid }) + '\n');
});
