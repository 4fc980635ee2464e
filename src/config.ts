// The one typed configuration object: every field has a default, an env var and a CLI flag,
// is validated at start-up with a clear message, and is printed (no secrets) when the server starts.
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';

import type { LogLevel } from '../actors/log.js';
import type { Durability } from '../storage/env.js';

export type { Durability, LogLevel };

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  shards: number;
  durability: Durability;
  logLevel: LogLevel;
  maxFrameBytes: number;
  maxBodyBytes: number;
  heartbeatSeconds: number;
  helloTimeoutMs: number;
  slowConsumerBytes: number;
  passwordCost: number;
  askTimeoutMs: number;
  passivateAfterMs: number;
  maxActivations: number;
  maxCommitBacklog: number;
  maxShardRestarts: number;
  maxAsksPerSocket: number;
  maxBufferedBytes: number;
  channelPostsPerSecond: number;
  sseKeepaliveSeconds: number;
  /** log entries older than this are deleted (ms); 0 keeps everything */
  retentionMs: number;
  /** how often the retention sweeper starts a pass (ms) */
  retentionSweepMs: number;
}

interface Field<K extends keyof Config> {
  key: K;
  env: string;
  flag: string;
  help: string;
  parse: (raw: string) => Config[K];
  default: () => Config[K];
  /** how --help shows the default (default: String) */
  show?: (value: Config[K]) => string;
}

class ConfigError extends Error {
  override name = 'ConfigError';
}

function int(min: number, max: number) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`must be an integer from ${min} to ${max}, got "${raw}"`);
    return n;
  };
}

function oneOf<T extends string>(...values: T[]) {
  return (raw: string): T => {
    if (!(values as string[]).includes(raw)) throw new ConfigError(`must be one of ${values.join(', ')}, got "${raw}"`);
    return raw as T;
  };
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration such as `90d`, `12h`, `30m`, `3s` or `500ms` (an integer and a unit), as ms. `0`
 * needs no unit when `zero` is allowed. At least `min` ms, at most `max` ms.
 */
function duration(min: number, max: number, zero: boolean) {
  return (raw: string): number => {
    const s = raw.trim();
    if (zero && /^0+$/.test(s)) return 0;
    const m = /^(\d+)(ms|s|m|h|d)$/.exec(s);
    const unitHelp = `an integer with a unit (ms, s, m, h, d), e.g. 90d, 12h or 3s${zero ? ', or 0 to keep forever' : ''}`;
    if (!m) throw new ConfigError(`must be ${unitHelp}, got "${raw}"`);
    const ms = Number(m[1]) * DURATION_UNITS[m[2]];
    if (!Number.isSafeInteger(ms) || ms < min || ms > max || (ms === 0 && !zero)) {
      throw new ConfigError(`must be from ${formatDuration(min)} to ${formatDuration(max)}${zero ? ' (or 0)' : ''}, got "${raw}"`);
    }
    return ms;
  };
}

/** ms as the largest unit that divides it: 5400000 → "90m". */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  for (const unit of ['d', 'h', 'm', 's'] as const) if (ms % DURATION_UNITS[unit] === 0) return `${ms / DURATION_UNITS[unit]}${unit}`;
  return `${ms}ms`;
}

function nonEmpty(raw: string): string {
  if (raw.trim() === '') throw new ConfigError('must not be empty');
  return raw;
}

const fields: { [K in keyof Config]: Field<K> } = {
  port: { key: 'port', env: 'PORT', flag: 'port', help: 'HTTP and WebSocket port (0 = any free port)', parse: int(0, 65535), default: () => 8080 },
  host: { key: 'host', env: 'HOST', flag: 'host', help: 'address to listen on', parse: nonEmpty, default: () => '0.0.0.0' },
  dataDir: { key: 'dataDir', env: 'DATA_DIR', flag: 'data-dir', help: 'LMDB data directory', parse: nonEmpty, default: () => './data' },
  shards: { key: 'shards', env: 'SHARDS', flag: 'shards', help: 'actor shards (worker threads)', parse: int(1, 256), default: () => availableParallelism() },
  durability: {
    key: 'durability', env: 'DURABILITY', flag: 'durability',
    help: 'fsync: ok means flushed to disk; relaxed: ok means committed (survives a process crash, not a power loss)',
    parse: oneOf<Durability>('fsync', 'relaxed'), default: () => 'fsync',
  },
  logLevel: {
    key: 'logLevel', env: 'LOG_LEVEL', flag: 'log-level', help: 'fatal, error, warn, info, debug, trace or silent',
    parse: oneOf<LogLevel>('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'), default: () => 'info',
  },
  maxFrameBytes: { key: 'maxFrameBytes', env: 'MAX_FRAME_BYTES', flag: 'max-frame-bytes', help: 'largest WebSocket frame; larger closes with 1009', parse: int(1024, 16 << 20), default: () => 128 * 1024 },
  maxBodyBytes: { key: 'maxBodyBytes', env: 'MAX_BODY_BYTES', flag: 'max-body-bytes', help: 'largest JSON HTTP body; larger gets 413', parse: int(1024, 16 << 20), default: () => 64 * 1024 },
  heartbeatSeconds: { key: 'heartbeatSeconds', env: 'HEARTBEAT_SECONDS', flag: 'heartbeat-seconds', help: 'client ping interval; a socket silent for twice this is closed', parse: int(1, 3600), default: () => 25 },
  helloTimeoutMs: { key: 'helloTimeoutMs', env: 'HELLO_TIMEOUT_MS', flag: 'hello-timeout-ms', help: 'time allowed between connect and hello (then close 4001)', parse: int(100, 600_000), default: () => 10_000 },
  slowConsumerBytes: { key: 'slowConsumerBytes', env: 'SLOW_CONSUMER_BYTES', flag: 'slow-consumer-bytes', help: 'send buffer above which live pushes stop until the socket drains', parse: int(16 * 1024, 1 << 30), default: () => 1 << 20 },
  passwordCost: { key: 'passwordCost', env: 'PASSWORD_COST', flag: 'password-cost', help: 'scrypt cost as log2(N); 15 = 32 MiB per hash', parse: int(10, 20), default: () => 15 },
  askTimeoutMs: { key: 'askTimeoutMs', env: 'ASK_TIMEOUT_MS', flag: 'ask-timeout-ms', help: 'how long a request to an actor may take before the client gets unavailable', parse: int(100, 600_000), default: () => 10_000 },
  passivateAfterMs: {
    key: 'passivateAfterMs', env: 'PASSIVATE_AFTER_MS', flag: 'passivate-after-ms',
    help: 'an actor unused this long is dropped from memory (its state stays in LMDB)', parse: int(10, 86_400_000), default: () => 60_000,
  },
  maxActivations: {
    key: 'maxActivations', env: 'MAX_ACTIVATIONS', flag: 'max-activations',
    help: 'actors kept in memory per shard; beyond, the least recently used idle ones are dropped', parse: int(100, 100_000_000), default: () => 100_000,
  },
  maxCommitBacklog: {
    key: 'maxCommitBacklog', env: 'MAX_COMMIT_BACKLOG', flag: 'max-commit-backlog',
    help: 'commit groups a shard may have waiting for the disk; beyond, commands get unavailable with retry', parse: int(1, 1_000_000), default: () => 512,
  },
  maxShardRestarts: {
    key: 'maxShardRestarts', env: 'MAX_SHARD_RESTARTS', flag: 'max-shard-restarts',
    help: 'shard deaths within a minute after which the server exits non-zero instead of restarting the shard', parse: int(1, 1000), default: () => 5,
  },
  maxAsksPerSocket: {
    key: 'maxAsksPerSocket', env: 'MAX_ASKS_PER_SOCKET', flag: 'max-asks-per-socket',
    help: 'commands in flight per socket; beyond, rate_limited with retry', parse: int(1, 100_000), default: () => 64,
  },
  maxBufferedBytes: {
    key: 'maxBufferedBytes', env: 'MAX_BUFFERED_BYTES', flag: 'max-buffered-bytes',
    help: 'bytes buffered for slow sockets across the process; beyond, the largest offenders are closed with 4009', parse: int(1 << 20, 2 ** 40), default: () => 256 * 1024 * 1024,
  },
  channelPostsPerSecond: {
    key: 'channelPostsPerSecond', env: 'CHANNEL_POSTS_PER_SECOND', flag: 'channel-posts-per-second',
    help: 'channel posts per user per second (a burst of as many); beyond, rate_limited with retry', parse: int(1, 100_000), default: () => 20,
  },
  sseKeepaliveSeconds: {
    key: 'sseKeepaliveSeconds', env: 'SSE_KEEPALIVE_SECONDS', flag: 'sse-keepalive-seconds',
    help: 'a comment line on every Server-Sent Events stream this often, so proxies keep it open', parse: int(1, 3600), default: () => 15,
  },
  retentionMs: {
    key: 'retentionMs', env: 'RETENTION', flag: 'retention',
    help: 'delete messages, posts and log events older than this (e.g. 90d, 12h, 3s); 0 keeps everything',
    parse: duration(1000, 100 * 365 * 86_400_000, true), default: () => 0, show: formatDuration,
  },
  retentionSweepMs: {
    key: 'retentionSweepMs', env: 'RETENTION_SWEEP', flag: 'retention-sweep',
    help: 'how often the retention sweeper looks for expired entries (e.g. 1m, 30s)',
    parse: duration(100, 86_400_000, false), default: () => 60_000, show: formatDuration,
  },
};

export function configHelp(): string {
  const lines = ['Usage: parley [options]', '', 'Every option is also an environment variable.', ''];
  for (const f of Object.values(fields)) {
    lines.push(`  --${f.flag.padEnd(22)} ${f.env.padEnd(20)} ${f.help} (default: ${(f.show as ((v: unknown) => string) | undefined)?.(f.default()) ?? String(f.default())})`);
  }
  lines.push(`  --${'help'.padEnd(22)} ${''.padEnd(20)} print this help`);
  return lines.join('\n');
}

/**
 * Builds the config from defaults, then env, then flags, then `overrides` (tests).
 * Throws ConfigError naming the option on any invalid value or unknown flag.
 */
export function loadConfig(argv: string[] = [], env: NodeJS.ProcessEnv = {}, overrides: Partial<Config> = {}): Config {
  const options = Object.fromEntries(Object.values(fields).map((f) => [f.flag, { type: 'string' as const }]));
  let values: Record<string, string | undefined>;
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Record<string, string | undefined>;
  } catch (err) {
    throw new ConfigError((err as Error).message, { cause: err });
  }
  const config = {} as Record<keyof Config, unknown>;
  for (const f of Object.values(fields) as Field<keyof Config>[]) {
    const fromFlag = values[f.flag];
    const fromEnv = env[f.env];
    const raw = fromFlag ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined);
    try {
      config[f.key] = raw === undefined ? f.default() : f.parse(raw);
    } catch (err) {
      const source = fromFlag !== undefined ? `--${f.flag}` : f.env;
      throw new ConfigError(`invalid ${source}: ${(err as Error).message}`, { cause: err });
    }
  }
  return { ...(config as unknown as Config), ...overrides };
}

export { ConfigError };
