// Command-line options of `npm run bench` (loadtest/bench.ts; its header is the --help text).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ParleyClientKind, TargetKind } from './ipc.js';

const TARGETS: readonly TargetKind[] = ['parley', 'socketio', 'uws'];

export interface Options {
  users: number;
  seconds: number;
  /** closed loop: sends unanswered per user */
  window: number;
  /** open loop: messages/s offered in total, across all pairs; undefined = closed loop */
  rate?: number;
  /** open loop: a sender with this many unanswered drops its due send */
  maxInflight: number;
  generators: number;
  targets: TargetKind[];
  parleyClient: ParleyClientKind;
  durability: 'fsync' | 'relaxed';
  shards?: number;
  maxMinutes: number;
  httpConcurrency: number;
  /** idle phase: connections held on a fresh Parley server (0 = no idle phase) */
  idle: number;
  devices: number;
  gc: 'inspector' | 'none';
  /** Parley: server memory before the load and after it (clients gone), bytes per message */
  retained: boolean;
  /** Parley: every device registers for push (webhook) before the load */
  push: boolean;
  /** Parley: WEBHOOK_URL set to a local receiver (every event kind): the cost of the outbox on the send path */
  webhooks: boolean;
  /** Parley: RATE_LIMITS=on, every limit too high to refuse (else off) */
  rateLimits: boolean;
  /** Parley: run the server with --cpu-prof, summarize the profiles */
  cpuProf: boolean;
  unloaded: boolean;
}

function die(msg: string): never {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
}

export function parseOptions(argv = process.argv.slice(2)): Options {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      users: { type: 'string' },
      seconds: { type: 'string', default: '15' },
      window: { type: 'string' },
      rate: { type: 'string' },
      'max-inflight': { type: 'string', default: '64' },
      generators: { type: 'string' },
      targets: { type: 'string', default: 'parley,socketio,uws' },
      'parley-client': { type: 'string', default: 'raw' },
      durability: { type: 'string', default: 'fsync' },
      shards: { type: 'string' },
      'max-minutes': { type: 'string' },
      'http-concurrency': { type: 'string', default: '16' },
      idle: { type: 'string', default: '0' },
      devices: { type: 'string', default: '10' },
      gc: { type: 'string', default: 'inspector' },
      retained: { type: 'boolean', default: false },
      push: { type: 'boolean', default: false },
      webhooks: { type: 'boolean', default: false },
      'rate-limits': { type: 'boolean', default: false },
      'cpu-prof': { type: 'boolean', default: false },
      unloaded: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (v.help) {
    const main = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bench.js');
    const src = readFileSync(main, 'utf8').split('\n');
    process.stdout.write(src.slice(0, src.findIndex((l) => l.startsWith('import'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
    process.exit(0);
  }
  const int = (name: string, raw: string | undefined, min: number, max: number): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) die(`--${name} must be an integer from ${min} to ${max}, got ${raw}`);
    return n;
  };
  if (v.unloaded && (v.users !== undefined || v.window !== undefined || v.rate !== undefined)) die('--unloaded is --users 2 --window 1 (one pair, one send in flight each way): give no --users, --window or --rate with it');
  if (v.rate !== undefined && v.window !== undefined) die('--window is the closed loop; with --rate the per-sender cap is --max-inflight');
  const users = v.unloaded ? 2 : int('users', v.users ?? '1000', 2, 20_000);
  if (users % 2 !== 0) die('--users must be even (users are paired)');
  const targets = v.targets.split(',').map((t) => t.trim()).filter(Boolean) as TargetKind[];
  for (const t of targets) if (!TARGETS.includes(t)) die(`--targets: unknown target ${t} (${TARGETS.join(', ')})`);
  if (targets.length === 0 || new Set(targets).size !== targets.length) die('--targets must list each target at most once');
  const parleyClient = v['parley-client'];
  if (parleyClient !== 'raw' && parleyClient !== 'sdk') die(`--parley-client must be raw or sdk, got ${parleyClient}`);
  const durability = v.durability;
  if (durability !== 'fsync' && durability !== 'relaxed') die(`--durability must be fsync or relaxed, got ${durability}`);
  const gc = v.gc;
  if (gc !== 'inspector' && gc !== 'none') die(`--gc must be inspector or none, got ${gc}`);
  let rate: number | undefined;
  if (v.rate !== undefined) {
    rate = Number(v.rate);
    if (!Number.isFinite(rate) || rate < 1 || rate > 1_000_000) die(`--rate must be a number of messages/s from 1 to 1000000, got ${v.rate}`);
  }
  const idle = int('idle', v.idle, 0, 60_000);
  const needsParley = [idle > 0 && '--idle', v.retained && '--retained', v['cpu-prof'] && '--cpu-prof'].filter(Boolean);
  if (needsParley.length && !targets.includes('parley')) die(`${needsParley.join(', ')} measure the Parley server: add parley to --targets`);
  return {
    users,
    seconds: int('seconds', v.seconds, 2, 120),
    window: v.unloaded ? 1 : int('window', v.window ?? '4', 1, 256),
    rate,
    maxInflight: int('max-inflight', v['max-inflight'], 1, 1024),
    generators: int('generators', v.generators ?? '2', 1, 16),
    targets,
    parleyClient: parleyClient as ParleyClientKind,
    durability: durability as Options['durability'],
    shards: v.shards === undefined ? undefined : int('shards', v.shards, 1, 64),
    maxMinutes: int('max-minutes', v['max-minutes'] ?? (idle > 0 ? '8' : '4'), 1, 30),
    httpConcurrency: int('http-concurrency', v['http-concurrency'], 1, 128),
    idle,
    devices: int('devices', v.devices, 1, 100),
    gc: gc as Options['gc'],
    retained: v.retained,
    push: v.push,
    webhooks: v.webhooks,
    rateLimits: v['rate-limits'],
    cpuProf: v['cpu-prof'],
    unloaded: v.unloaded,
  };
}
