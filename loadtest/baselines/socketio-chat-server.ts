// Baseline for `npm run bench`: what a Node developer would write instead of Parley.
//
//   node dist/loadtest/baselines/socketio-chat-server.js [--port 0] [--host 127.0.0.1] [--data-dir DIR]
//   (or env PORT, HOST, DATA_DIR; without a data dir, a fresh temp dir that is removed on exit)
//
// A minimal Socket.IO 1:1 chat server that, like Parley, stores every message durably before it
// acknowledges it:
//  - one process, one event loop; better-sqlite3 (synchronous) in WAL mode with
//    `synchronous = FULL`: every commit fsyncs the WAL, so an acknowledged message survives a
//    power loss, like Parley's default DURABILITY=fsync (Parley batches many messages per fsync;
//    this server, written the obvious way, commits and fsyncs once per message);
//  - one table of messages, with the per-thread seq and the sender's cid (idempotent resend);
//  - a client authenticates with its user id in the handshake auth ({auth: {user}}) — no tokens,
//    no passwords: strictly less work than Parley's hello;
//  - `send` {to, body, cid} with an ack callback → INSERT in a transaction (COMMIT = fsync) →
//    ack {seq, id, ts} to the sender, then `msg` {thread, seq, id, from, body, ts, cid} to the
//    recipient's room (every socket of that user).
// Prints one JSON line {"msg":"ready","port":N,"pid":P} on stdout when it listens.
// GET /readyz answers 200; GET /stats answers JSON counters (messages, ms spent inside commits, uptimeMs,
// event-loop active/idle ms).
// SIGTERM/SIGINT: closes the sockets and the database, exits 0. With BENCH_EXIT_ON_STDIN_END=1
// it also exits when its stdin closes (the benchmark that started it went away).
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { baselineRequire } from './install.js';

// socket.io and better-sqlite3 come from the baseline's own install (loadtest/baselines/
// node_modules, see install.ts), so the server's tree has neither them nor their types: the few
// calls we use.
interface IoSocket {
  handshake: { auth: unknown };
  data: Record<string, unknown>;
  join(room: string): void | Promise<void>;
  on(event: 'disconnect', fn: () => void): void;
  on(event: 'send', fn: (msg: SendArgs, ack: unknown) => void): void;
}
interface IoServer {
  use(fn: (socket: IoSocket, next: (err?: Error) => void) => void): void;
  on(event: 'connection', fn: (socket: IoSocket) => void): void;
  to(room: string): { emit(event: string, payload: unknown): void };
  close(fn: () => void): void;
}
const { Server } = baselineRequire('socket.io') as { Server: new (http: import('node:http').Server, opts: { serveClient: boolean }) => IoServer };
interface RunResult {
  changes: number;
  lastInsertRowid: number | bigint;
}
interface Statement {
  run(...params: unknown[]): RunResult;
  get(...params: unknown[]): unknown;
}
interface Database {
  pragma(source: string, options?: { simple?: boolean }): unknown;
  exec(sql: string): void;
  prepare(sql: string): Statement;
  transaction<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R;
  close(): void;
}
const SQLite = baselineRequire('better-sqlite3') as new (file: string) => Database;

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    'data-dir': { type: 'string' },
  },
  strict: true,
});
const port = Number(args.port ?? process.env.PORT ?? 0);
const host = args.host ?? process.env.HOST ?? '127.0.0.1';
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`socketio-chat-server: bad port ${args.port ?? process.env.PORT}\n`);
  process.exit(2);
}
let dataDir = args['data-dir'] ?? process.env.DATA_DIR;
const tempDir = !dataDir;
if (!dataDir) dataDir = mkdtempSync(path.join(os.tmpdir(), 'socketio-chat-'));

// ------------------------------------------------------------------ storage

const db = new SQLite(path.join(dataDir, 'chat.db'));
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL'); // fsync the WAL on every commit: durable per commit
db.exec(`
  CREATE TABLE IF NOT EXISTS messages (
    id        INTEGER PRIMARY KEY,
    thread    TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    sender    TEXT    NOT NULL,
    recipient TEXT    NOT NULL,
    cid       TEXT    NOT NULL,
    body      TEXT    NOT NULL,
    ts        INTEGER NOT NULL,
    UNIQUE (thread, seq),
    UNIQUE (sender, cid)
  )
`);
const journal = db.pragma('journal_mode', { simple: true });
const synchronous = db.pragma('synchronous', { simple: true });
if (journal !== 'wal' || synchronous !== 2) {
  process.stderr.write(`socketio-chat-server: expected WAL + synchronous=FULL(2), got ${String(journal)} + ${String(synchronous)}\n`);
  process.exit(1);
}

const byCid = db.prepare('SELECT id, seq, ts FROM messages WHERE sender = ? AND cid = ?');
const nextSeq = db.prepare('SELECT COALESCE(MAX(seq), 0) + 1 AS seq FROM messages WHERE thread = ?');
const insert = db.prepare('INSERT INTO messages (thread, seq, sender, recipient, cid, body, ts) VALUES (?, ?, ?, ?, ?, ?, ?)');

interface Stored {
  thread: string;
  id: string;
  seq: number;
  ts: number;
  duplicate: boolean;
}

const threadOf = (a: string, b: string): string => (a < b ? `${a}:${b}` : `${b}:${a}`);

const store = db.transaction((from: string, to: string, cid: string, body: string): Stored => {
  const thread = threadOf(from, to);
  const old = byCid.get(from, cid) as { id: number; seq: number; ts: number } | undefined;
  if (old) return { thread, id: String(old.id), seq: old.seq, ts: old.ts, duplicate: true };
  const { seq } = nextSeq.get(thread) as { seq: number };
  const ts = Date.now();
  const r = insert.run(thread, seq, from, to, cid, body, ts);
  return { thread, id: String(r.lastInsertRowid), seq, ts, duplicate: false };
});

/** Cumulative event-loop active/idle ms (a synchronous fsync counts as active: the loop is blocked). */
function loopTimes(): { loopActiveMs: number; loopIdleMs: number } {
  const u = performance.eventLoopUtilization();
  return { loopActiveMs: u.active, loopIdleMs: u.idle };
}

const stats = { messages: 0, duplicates: 0, rejected: 0, commitMs: 0, connections: 0, connectionsTotal: 0 };

// ------------------------------------------------------------------ Socket.IO

const httpServer = createServer((req, res) => {
  if (req.url === '/readyz' || req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  } else if (req.url === '/stats') {
    const mem = process.memoryUsage();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...stats, rss: mem.rss, heapUsed: mem.heapUsed, uptimeMs: performance.now(), ...loopTimes() }));
  } else {
    res.writeHead(404).end();
  }
});

const io = new Server(httpServer, { serveClient: false });

const ID = /^[A-Za-z0-9_:-]{1,40}$/;

io.use((socket, next) => {
  const user = (socket.handshake.auth as { user?: unknown } | undefined)?.user;
  if (typeof user !== 'string' || !ID.test(user)) return next(new Error('unauthorized'));
  socket.data.user = user;
  next();
});

interface SendArgs {
  to?: unknown;
  body?: unknown;
  cid?: unknown;
}
type Ack = (answer: { seq: number; id: string; ts: number } | { error: string }) => void;

io.on('connection', (socket) => {
  const user = socket.data.user as string;
  stats.connections++;
  stats.connectionsTotal++;
  void socket.join(user);
  socket.on('disconnect', () => {
    stats.connections--;
  });

  socket.on('send', (msg: SendArgs, ack: unknown) => {
    const reply: Ack = typeof ack === 'function' ? (ack as Ack) : () => undefined;
    const { to, body, cid } = msg ?? {};
    if (typeof to !== 'string' || !ID.test(to) || typeof body !== 'string' || body.length > 16_384 || typeof cid !== 'string' || cid.length === 0 || cid.length > 64) {
      stats.rejected++;
      reply({ error: 'bad_frame' });
      return;
    }
    let m: Stored;
    const t0 = performance.now();
    try {
      m = store(user, to, cid, body); // COMMIT returns after the WAL is fsynced
    } catch (err) {
      stats.rejected++;
      reply({ error: `internal: ${(err as Error).message}` });
      return;
    } finally {
      stats.commitMs += performance.now() - t0;
    }
    reply({ seq: m.seq, id: m.id, ts: m.ts });
    if (m.duplicate) {
      stats.duplicates++;
      return; // already delivered the first time
    }
    stats.messages++;
    io.to(to).emit('msg', { thread: m.thread, seq: m.seq, id: m.id, from: user, body, ts: m.ts, cid });
  });
});

// ------------------------------------------------------------------ lifecycle

let stopping = false;
function shutdown(code: number): void {
  if (stopping) return;
  stopping = true;
  const force = setTimeout(() => process.exit(1), 10_000);
  force.unref();
  io.close(() => {
    try {
      db.close();
    } catch {
      // already closed
    }
    if (tempDir && dataDir) rmSync(dataDir, { recursive: true, force: true });
    process.exit(code);
  });
}
process.once('SIGTERM', () => shutdown(0));
process.once('SIGINT', () => shutdown(0));
if (process.env.BENCH_EXIT_ON_STDIN_END === '1') {
  process.stdin.on('end', () => shutdown(0));
  process.stdin.on('error', () => shutdown(0));
  process.stdin.resume();
}

httpServer.once('error', (err) => {
  process.stderr.write(`socketio-chat-server: cannot listen on ${host}:${port}: ${err.message}\n`);
  process.exit(1);
});
httpServer.listen(port, host, () => {
  const addr = httpServer.address();
  const actual = typeof addr === 'object' && addr ? addr.port : port;
  process.stdout.write(JSON.stringify({ msg: 'ready', port: actual, pid: process.pid, dataDir, journal, synchronous: 'FULL' }) + '\n');
});
