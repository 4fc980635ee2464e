// The one typed configuration object: every field has a default, an env var and a CLI flag,
// is validated at start-up with a clear message, and is printed (no secrets) when the server starts.
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';

import type { LogLevel } from '../actors/log.js';
import type { Durability } from '../storage/env.js';
import { formatWindows, parseWindows, type RateWindow } from './limits/rate-limiter.js';
import { defaultMaxSockets, FILE_RESERVE } from './limits/open-files.js';
import { API_KEY_PATTERN, API_SCOPES, type ApiScope } from '../protocol/validate.js';
import { parseEventTypes, WEBHOOK_EVENT_TYPES, type WebhookEventType } from './webhooks/events.js';

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
  /** WebSockets open at once on this process; beyond, upgrades are answered 503 */
  maxSockets: number;
  channelPostsPerSecond: number;
  sseKeepaliveSeconds: number;
  /** fs: files under DATA_DIR/media; s3: an S3-compatible bucket */
  blobStore: 'fs' | 's3';
  s3Endpoint: string;
  s3Bucket: string;
  s3Region: string;
  s3AccessKeyId: string;
  s3SecretAccessKey: string;
  s3ForcePathStyle: boolean;
  mediaMaxBytes: number;
  /** base of signed URLs ('' = the address the request came to) */
  publicUrl: string;
  /** HMAC key of signed URLs ('' = generated once into DATA_DIR/signing-secret) */
  signingSecret: string;
  /** log entries older than this are deleted (ms); 0 keeps everything */
  retentionMs: number;
  /** how often the retention sweeper starts a pass (ms) */
  retentionSweepMs: number;
  /** a media no message carries is deleted once this old (ms) */
  mediaGraceMs: number;
  /** bearer token for /metrics and /v1/admin/* on the main port ('' = open there, unless adminPort is set) */
  adminToken: string;
  /** a separate port for /metrics and /v1/admin/* without a token (0 = none) */
  adminPort: number;
  adminHost: string;
  /** a session unused (no hello, no 🔒 route) for longer than this is expired (ms) */
  sessionTtlMs: number;
  /** how long after sending its author may edit or delete a message for everyone (ms; 0: never) */
  editWindowMs: number;
  /** who sees a user's presence before they chose with privacy.set */
  defaultLastSeen: 'everyone' | 'contacts' | 'nobody';
  // Push (issue 11): a provider is on when all its required options are set (src/push/open-push-providers.ts).
  pushWebhookUrl: string;
  pushWebhookSecret: string;
  /** VAPID key pair, base64url (public 65 bytes, private 32 bytes) */
  vapidPublicKey: string;
  vapidPrivateKey: string;
  /** mailto: or https: URL push services can reach the operator at */
  vapidSubject: string;
  /** accept http: Web Push endpoints (tests, development; browsers only hand out https) */
  webpushAllowHttp: boolean;
  /** path of the APNs .p8 key (EC P-256) */
  apnsKeyFile: string;
  apnsKeyId: string;
  apnsTeamId: string;
  /** the app's bundle id */
  apnsTopic: string;
  apnsHost: string;
  /** PEM file of extra CA certificates trusted for APNS_HOST ('' = system roots only) */
  apnsCaFile: string;
  /** path of the Google service-account JSON */
  fcmServiceAccountFile: string;
  fcmEndpoint: string;
  /** notifications for one device and thread within this long are merged (ms) */
  pushCoalesceMs: number;
  /** on: notifications carry a preview of the message text */
  pushPreview: 'off' | 'on';
  pushMaxPerHour: number;
  pushMaxPerDay: number;
  /** push deliveries in flight at once */
  pushConcurrency: number;
  /** one delivery attempt may take this long (ms) */
  pushTimeoutMs: number;
  // Rate limits (issue 12, src/limits/edge-limits.ts): windows like 2/s,5/m,10/h,100/d.
  rateLimits: 'on' | 'off';
  /** read the client IP from the last X-Forwarded-For entry (behind a reverse proxy) */
  trustProxy: boolean;
  rlHttpPerIp: RateWindow[];
  rlRegisterPerIp: RateWindow[];
  rlLoginPerIp: RateWindow[];
  rlLoginFailuresPerUsername: RateWindow[];
  rlWsConnectsPerIp: RateWindow[];
  /** open WebSockets per IP */
  rlWsPerIp: number;
  /** commands a second per socket (a burst of twice as many) */
  rlSocketCommands: number;
  /** send and channel.post a second per socket (a burst of twice as many) */
  rlSocketSends: number;
  rlSendsPerUser: RateWindow[];
  rlCostlyPerUser: RateWindow[];
  /** failed invite lookups (unknown, expired, revoked or used-up codes) per IP and per user */
  rlInviteGuess: RateWindow[];
  /** limited frames within the retry window before a socket is closed with 4008 */
  rlStrikes: number;
  /** server API keys given by the operator (API_KEYS: space-separated `key:scope,scope`) */
  apiKeys: ApiKeyEntry[];
  /** server API calls per API key */
  rlServerApi: RateWindow[];
  /** how long the server API remembers an Idempotency-Key's answer */
  idempotencyTtlMs: number;
  // Sign-in with the application's tokens (issue 13, src/auth/jwt-verifier.ts).
  /** HS256 secret ('' = no HS256) */
  authJwtSecret: string;
  /** JWKS URL for RS256/ES256 keys ('' = none) */
  authJwksUrl: string;
  /** PEM text or path of a PEM file: one RS256/ES256 public key ('' = none) */
  authJwtPublicKey: string;
  /** required `aud` ('' = not checked) */
  authJwtAudience: string;
  /** required `iss` ('' = not checked) */
  authJwtIssuer: string;
  /** an unknown kid refetches the JWKS at most this often (ms) */
  authJwksCooldownMs: number;
  /** a socket gets `refresh` this long before its token expires, at most half the token's lifetime (ms) */
  authRefreshGraceMs: number;
  /** off: no registration or login with passwords (403); existing sessions keep working */
  authPasswords: 'on' | 'off';
  /** off: `GET /` does not serve the web chat app (README "Web app") */
  webApp: 'on' | 'off';
  /** off: messages are not indexed and `search` answers forbidden (docs/protocol.md "Search") */
  search: 'on' | 'off';
  // Event webhooks (issue 13, src/webhooks/): on when WEBHOOK_URL is set.
  webhookUrl: string;
  webhookSecret: string;
  /** the event kinds written and delivered (WEBHOOK_EVENTS) */
  webhookEvents: WebhookEventType[];
  /** events per POST at most */
  webhookBatch: number;
  /** one POST may take this long (ms), then it is retried */
  webhookTimeoutMs: number;
  /** first retry after this long (ms), doubling up to WEBHOOK_BACKOFF_MAX */
  webhookBackoffMs: number;
  webhookBackoffMaxMs: number;
  /** delivered events stay readable by GET /v1/server/events this long (ms); 0: deleted once delivered */
  webhookRetentionMs: number;
  // Pre-send hook (issue 13, src/webhooks/send-hook.ts): on when SEND_HOOK_URL is set.
  sendHookUrl: string;
  /** '' = WEBHOOK_SECRET */
  sendHookSecret: string;
  sendHookTimeoutMs: number;
  /** what a timeout or a bad answer means: closed refuses the message, open stores it unchanged */
  sendHookFail: 'open' | 'closed';
  /** hook calls in flight or waiting, across the gateway; beyond, sends get unavailable */
  sendHookConcurrency: number;
  // ---- TLS without a proxy (issue 16, src/gateway/tls-apps.ts): on when both files are set.
  /** PEM file: the server's certificate, then its chain ('' = plain HTTP and WebSocket) */
  tlsCert: string;
  /** PEM file: the certificate's private key, unencrypted */
  tlsKey: string;
  // ---- A cluster over NATS (issue 17, docs/cluster.md): on when CLUSTER_NATS_URL is set.
  /** the NATS server(s) the nodes meet at ('' = this process alone) */
  clusterNatsUrl: string;
  /** this node's id, one of clusterNodes */
  nodeId: string;
  /** the cluster's name: its subjects and KV buckets carry it, so clusters can share a NATS */
  clusterName: string;
  /** every node's id, in the same order on every node: the ring's layout */
  clusterNodes: string[];
  /** a node's ownership lease (ms): renewed every third; a node that cannot renew for this long stops */
  clusterLeaseMs: number;
}

/** One API_KEYS entry: the secret and what it may do (docs/operator-guide.md). */
export interface ApiKeyEntry { key: string; scopes: ApiScope[] }

/** Options whose values are never printed. */
export const SECRET_OPTIONS: readonly (keyof Config)[] = ['adminToken', 's3SecretAccessKey', 'signingSecret', 'pushWebhookSecret', 'vapidPrivateKey', 'apiKeys', 'authJwtSecret', 'webhookSecret', 'sendHookSecret'];

/** The config as it may be logged: secrets replaced by "***" when set. */
export function printableConfig(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = { ...config };
  for (const key of SECRET_OPTIONS) if (out[key] !== '' && !(Array.isArray(out[key]) && (out[key] as unknown[]).length === 0)) out[key] = '***';
  return out;
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

function bool(raw: string): boolean {
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(`must be true, false, 1 or 0, got "${raw}"`);
}

function anyString(raw: string): string {
  return raw;
}

/** An http(s) URL without query or fragment, stored without a trailing slash. */
function baseUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`must be an http(s) URL, got "${raw}"`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search !== '' || url.hash !== '') throw new ConfigError(`must be an http(s) URL without query or fragment, got "${raw}"`);
  return url.href.replace(/\/+$/, '');
}

/** An http(s) URL without fragment or credentials (an endpoint the server POSTs to). */
function endpointUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`must be an http(s) URL, got "${raw}"`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hash !== '' || url.username !== '' || url.password !== '') throw new ConfigError(`must be an http(s) URL without fragment or credentials, got "${raw}"`);
  return url.href;
}

function eventTypes(raw: string): WebhookEventType[] {
  try {
    return parseEventTypes(raw);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

function secret(raw: string): string {
  if (raw.length < 32) throw new ConfigError('must be at least 32 characters');
  return raw;
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

/** EDIT_WINDOW: plain seconds or a duration, up to ten years; 0 closes the window. */
function editWindow(raw: string): number {
  const s = raw.trim();
  const max = 3650 * 86_400_000;
  const ms = /^\d+$/.test(s) ? Number(s) * 1000 : /^\d+(ms|s|m|h|d)$/.test(s) ? duration(0, max, true)(s) : NaN;
  if (!Number.isSafeInteger(ms) || ms > max) throw new ConfigError(`must be seconds (172800), a duration up to 3650d (48h, 15m) or 0, got "${raw}"`);
  return ms;
}

/** ms as the largest unit that divides it: 5400000 → "90m". */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  for (const unit of ['d', 'h', 'm', 's'] as const) if (ms % DURATION_UNITS[unit] === 0) return `${ms / DURATION_UNITS[unit]}${unit}`;
  return `${ms}ms`;
}

/** A secret sent as `Authorization: Bearer …`: ≥ 32 characters of the token alphabet. */
function bearerSecret(raw: string): string {
  if (!/^[A-Za-z0-9_-]{32,512}$/.test(raw)) throw new ConfigError('must be 32 to 512 characters of A-Z, a-z, 0-9, _ and -');
  return raw;
}

function windows(raw: string): RateWindow[] {
  try {
    return parseWindows(raw);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

/** API_KEYS: `key:scope,scope` entries separated by spaces; keys ≥ 24 characters of A-Z a-z 0-9 _ -, scopes known. */
function apiKeyEntries(raw: string): ApiKeyEntry[] {
  const keyRe = new RegExp(API_KEY_PATTERN);
  const seen = new Set<string>();
  return raw.trim().split(/\s+/).map((entry, i) => {
    const colon = entry.lastIndexOf(':');
    const key = colon < 0 ? entry : entry.slice(0, colon);
    if (colon < 0 || !keyRe.test(key)) throw new ConfigError(`entry ${i + 1} must be key:scope,scope with a key of 24 to 512 characters of A-Z, a-z, 0-9, _ and -`);
    if (seen.has(key)) throw new ConfigError(`entry ${i + 1} repeats a key`);
    seen.add(key);
    const scopes = entry.slice(colon + 1).split(',');
    const bad = scopes.find((sc) => !(API_SCOPES as readonly string[]).includes(sc));
    if (bad !== undefined) throw new ConfigError(`entry ${i + 1}: unknown scope "${bad}" (scopes: ${API_SCOPES.join(', ')})`);
    return { key, scopes: [...new Set(scopes)] as ApiScope[] };
  });
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
  maxSockets: {
    key: 'maxSockets', env: 'MAX_SOCKETS', flag: 'max-sockets',
    help: `WebSockets open at once; beyond, upgrades get 503 with Retry-After (default: the open-file limit less ${FILE_RESERVE}, so a full node still answers)`,
    parse: int(1, 100_000_000), default: () => defaultMaxSockets(),
  },
  channelPostsPerSecond: {
    key: 'channelPostsPerSecond', env: 'CHANNEL_POSTS_PER_SECOND', flag: 'channel-posts-per-second',
    help: 'channel posts per user per second (a burst of as many); beyond, rate_limited with retry', parse: int(1, 100_000), default: () => 20,
  },
  sseKeepaliveSeconds: {
    key: 'sseKeepaliveSeconds', env: 'SSE_KEEPALIVE_SECONDS', flag: 'sse-keepalive-seconds',
    help: 'a comment line on every Server-Sent Events stream this often, so proxies keep it open', parse: int(1, 3600), default: () => 15,
  },
  blobStore: { key: 'blobStore', env: 'BLOB_STORE', flag: 'blob-store', help: 'where media bytes live: fs (DATA_DIR/media) or s3', parse: oneOf<'fs' | 's3'>('fs', 's3'), default: () => 'fs' },
  s3Endpoint: { key: 's3Endpoint', env: 'S3_ENDPOINT', flag: 's3-endpoint', help: 'S3-compatible endpoint URL (empty = AWS for the region)', parse: baseUrl, default: () => '' },
  s3Bucket: { key: 's3Bucket', env: 'S3_BUCKET', flag: 's3-bucket', help: 'bucket for media (required with BLOB_STORE=s3)', parse: nonEmpty, default: () => '' },
  s3Region: { key: 's3Region', env: 'S3_REGION', flag: 's3-region', help: 'S3 region', parse: nonEmpty, default: () => 'us-east-1' },
  s3AccessKeyId: { key: 's3AccessKeyId', env: 'S3_ACCESS_KEY_ID', flag: 's3-access-key-id', help: 'S3 access key id (empty = the AWS SDK default chain)', parse: anyString, default: () => '' },
  s3SecretAccessKey: { key: 's3SecretAccessKey', env: 'S3_SECRET_ACCESS_KEY', flag: 's3-secret-access-key', help: 'S3 secret access key (never printed)', parse: anyString, default: () => '' },
  s3ForcePathStyle: { key: 's3ForcePathStyle', env: 'S3_FORCE_PATH_STYLE', flag: 's3-force-path-style', help: 'path-style bucket URLs (most self-hosted S3 servers need true)', parse: bool, default: () => false },
  mediaMaxBytes: { key: 'mediaMaxBytes', env: 'MEDIA_MAX_BYTES', flag: 'media-max-bytes', help: 'largest media upload', parse: int(1, 2 ** 42), default: () => 100 * 1024 * 1024 },
  publicUrl: { key: 'publicUrl', env: 'PUBLIC_URL', flag: 'public-url', help: 'base of signed media URLs, e.g. https://chat.example.com (empty = the Host the request came to)', parse: baseUrl, default: () => '' },
  signingSecret: { key: 'signingSecret', env: 'SIGNING_SECRET', flag: 'signing-secret', help: 'HMAC key for signed media URLs, ≥ 32 characters (empty = generated into DATA_DIR/signing-secret; never printed)', parse: secret, default: () => '' },
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
  adminToken: {
    key: 'adminToken', env: 'ADMIN_TOKEN', flag: 'admin-token',
    help: 'bearer token that /metrics and /v1/admin/* need on the main port: ≥ 32 of [A-Za-z0-9_-] (never printed)', parse: bearerSecret, default: () => '',
  },
  adminPort: {
    key: 'adminPort', env: 'ADMIN_PORT', flag: 'admin-port',
    help: 'serve /metrics and /v1/admin/* on this separate port without a token (0 = not at all); the main port then needs ADMIN_TOKEN for them', parse: int(0, 65535), default: () => 0,
  },
  adminHost: { key: 'adminHost', env: 'ADMIN_HOST', flag: 'admin-host', help: 'address of the admin port (keep it internal)', parse: nonEmpty, default: () => '127.0.0.1' },
  sessionTtlMs: {
    key: 'sessionTtlMs', env: 'SESSION_TTL', flag: 'session-ttl',
    help: 'a session not used (hello or an authenticated HTTP call) for this long is expired: 401 / close 4001 (e.g. 90d, 12h)',
    parse: duration(1000, 100 * 365 * 86_400_000, false), default: () => 90 * 86_400_000, show: formatDuration,
  },
  editWindowMs: {
    key: 'editWindowMs', env: 'EDIT_WINDOW', flag: 'edit-window',
    help: 'how long after sending its author may edit a message or delete it for everyone: seconds (172800) or a duration (48h); 0: never',
    parse: editWindow,
    default: () => 48 * 3_600_000, show: formatDuration,
  },
  defaultLastSeen: {
    key: 'defaultLastSeen', env: 'DEFAULT_LAST_SEEN', flag: 'default-last-seen',
    help: 'who sees a user\'s online state and last seen until they choose (privacy.set): everyone, contacts or nobody',
    parse: oneOf<'everyone' | 'contacts' | 'nobody'>('everyone', 'contacts', 'nobody'), default: () => 'contacts',
  },
  mediaGraceMs: {
    key: 'mediaGraceMs', env: 'MEDIA_GRACE', flag: 'media-grace',
    help: 'a media that no message or post carries (never attached, or its messages were deleted by retention) is deleted once this old; checked every RETENTION_SWEEP',
    parse: duration(1000, 100 * 365 * 86_400_000, false), default: () => 86_400_000, show: formatDuration,
  },
  // Push (issue 11). Cross-option checks (a provider half configured) are in configuredPushProviders.
  pushWebhookUrl: {
    key: 'pushWebhookUrl', env: 'PUSH_WEBHOOK_URL', flag: 'push-webhook-url', help: 'the webhook push provider: POST each notification to this http(s) URL (needs PUSH_WEBHOOK_SECRET)',
    parse: endpointUrl,
    default: () => '',
  },
  pushWebhookSecret: { key: 'pushWebhookSecret', env: 'PUSH_WEBHOOK_SECRET', flag: 'push-webhook-secret', help: 'HMAC-SHA256 key of X-Parley-Signature, ≥ 32 characters (never printed)', parse: secret, default: () => '' },
  vapidPublicKey: {
    key: 'vapidPublicKey', env: 'VAPID_PUBLIC_KEY', flag: 'vapid-public-key', help: 'Web Push: VAPID public key, base64url (e.g. from npx web-push generate-vapid-keys)',
    parse: (raw) => {
      const bytes = /^[A-Za-z0-9_-]+$/.test(raw) ? Buffer.from(raw, 'base64url') : null;
      if (!bytes || bytes.length !== 65 || bytes[0] !== 4) throw new ConfigError('must be a base64url uncompressed P-256 public key (65 bytes, 87 characters)');
      return raw;
    },
    default: () => '',
  },
  vapidPrivateKey: {
    key: 'vapidPrivateKey', env: 'VAPID_PRIVATE_KEY', flag: 'vapid-private-key', help: 'Web Push: VAPID private key, base64url (never printed)',
    parse: (raw) => {
      if (!/^[A-Za-z0-9_-]+$/.test(raw) || Buffer.from(raw, 'base64url').length !== 32) throw new ConfigError('must be a base64url P-256 private key (32 bytes, 43 characters)');
      return raw;
    },
    default: () => '',
  },
  vapidSubject: {
    key: 'vapidSubject', env: 'VAPID_SUBJECT', flag: 'vapid-subject', help: 'Web Push: a mailto: or https: URL where push services can reach the operator',
    parse: (raw) => {
      if (!/^mailto:[^\s@]+@[^\s@]+$/.test(raw) && !/^https:\/\/[^\s/]+/.test(raw)) throw new ConfigError(`must be a mailto: or https: URL, got "${raw}"`);
      return raw;
    },
    default: () => '',
  },
  webpushAllowHttp: { key: 'webpushAllowHttp', env: 'WEBPUSH_ALLOW_HTTP', flag: 'webpush-allow-http', help: 'accept http: Web Push endpoints (tests and development only: browsers hand out https)', parse: bool, default: () => false },
  apnsKeyFile: { key: 'apnsKeyFile', env: 'APNS_KEY_FILE', flag: 'apns-key-file', help: 'APNs: path of the .p8 token-signing key (read at start-up)', parse: nonEmpty, default: () => '' },
  apnsKeyId: {
    key: 'apnsKeyId', env: 'APNS_KEY_ID', flag: 'apns-key-id', help: 'APNs: the key\'s id (10 characters)',
    parse: (raw) => { if (!/^[A-Za-z0-9]{1,64}$/.test(raw)) throw new ConfigError(`must be letters and digits, got "${raw}"`); return raw; }, default: () => '',
  },
  apnsTeamId: {
    key: 'apnsTeamId', env: 'APNS_TEAM_ID', flag: 'apns-team-id', help: 'APNs: the Apple developer team id (10 characters)',
    parse: (raw) => { if (!/^[A-Za-z0-9]{1,64}$/.test(raw)) throw new ConfigError(`must be letters and digits, got "${raw}"`); return raw; }, default: () => '',
  },
  apnsTopic: { key: 'apnsTopic', env: 'APNS_TOPIC', flag: 'apns-topic', help: 'APNs: the app\'s bundle id, e.g. com.example.chat', parse: nonEmpty, default: () => '' },
  apnsHost: {
    key: 'apnsHost', env: 'APNS_HOST', flag: 'apns-host', help: 'APNs: https://api.push.apple.com, https://api.sandbox.push.apple.com (development builds) or a test server',
    parse: (raw) => { const url = baseUrl(raw); if (!url.startsWith('https:')) throw new ConfigError(`must be an https URL, got "${raw}"`); return url; },
    default: () => 'https://api.push.apple.com',
  },
  apnsCaFile: { key: 'apnsCaFile', env: 'APNS_CA_FILE', flag: 'apns-ca-file', help: 'APNs: PEM file of extra CA certificates to trust for APNS_HOST (a private CA or a test server; empty = system roots)', parse: nonEmpty, default: () => '' },
  fcmServiceAccountFile: { key: 'fcmServiceAccountFile', env: 'FCM_SERVICE_ACCOUNT_FILE', flag: 'fcm-service-account-file', help: 'FCM: path of the Google service-account JSON key (read at start-up)', parse: nonEmpty, default: () => '' },
  fcmEndpoint: { key: 'fcmEndpoint', env: 'FCM_ENDPOINT', flag: 'fcm-endpoint', help: 'FCM: base URL of the HTTP v1 API', parse: baseUrl, default: () => 'https://fcm.googleapis.com' },
  pushCoalesceMs: {
    key: 'pushCoalesceMs', env: 'PUSH_COALESCE', flag: 'push-coalesce', help: 'notifications for one device and thread within this long are merged into the last (e.g. 3s, 500ms)',
    parse: duration(1, 3_600_000, false), default: () => 3000, show: formatDuration,
  },
  pushPreview: { key: 'pushPreview', env: 'PUSH_PREVIEW', flag: 'push-preview', help: 'off: no message text leaves the server; on: notifications carry a preview', parse: oneOf<'off' | 'on'>('off', 'on'), default: () => 'off' },
  pushMaxPerHour: { key: 'pushMaxPerHour', env: 'PUSH_MAX_PER_HOUR', flag: 'push-max-per-hour', help: 'notifications per device per hour; beyond, dropped', parse: int(1, 1_000_000), default: () => 60 },
  pushMaxPerDay: { key: 'pushMaxPerDay', env: 'PUSH_MAX_PER_DAY', flag: 'push-max-per-day', help: 'notifications per device per day; beyond, dropped', parse: int(1, 10_000_000), default: () => 500 },
  pushConcurrency: { key: 'pushConcurrency', env: 'PUSH_CONCURRENCY', flag: 'push-concurrency', help: 'push deliveries in flight at once, all providers together', parse: int(1, 10_000), default: () => 32 },
  pushTimeoutMs: {
    key: 'pushTimeoutMs', env: 'PUSH_TIMEOUT', flag: 'push-timeout', help: 'one delivery attempt may take this long, then it is retried (e.g. 10s)',
    parse: duration(100, 600_000, false), default: () => 10_000, show: formatDuration,
  },
  // Rate limits (issue 12). Windows: "N/unit" (s, m, h, d, or e.g. 10s, 15m), comma-separated, all enforced.
  rateLimits: { key: 'rateLimits', env: 'RATE_LIMITS', flag: 'rate-limits', help: 'on: the RL_* limits below apply; off: none do (load tests, benchmarks)', parse: oneOf<'on' | 'off'>('on', 'off'), default: () => 'on' },
  trustProxy: { key: 'trustProxy', env: 'TRUST_PROXY', flag: 'trust-proxy', help: 'take the client IP from the last X-Forwarded-For entry (only behind a reverse proxy that sets it)', parse: bool, default: () => false },
  rlHttpPerIp: { key: 'rlHttpPerIp', env: 'RL_HTTP_PER_IP', flag: 'rl-http-per-ip', help: 'HTTP requests per IP without a valid session; beyond, 429', parse: windows, default: () => parseWindows('50/s,1000/m,20000/h'), show: formatWindows },
  rlRegisterPerIp: { key: 'rlRegisterPerIp', env: 'RL_REGISTER_PER_IP', flag: 'rl-register-per-ip', help: 'registrations (POST /v1/users) per IP', parse: windows, default: () => parseWindows('2/s,5/m,10/h,100/d'), show: formatWindows },
  rlLoginPerIp: { key: 'rlLoginPerIp', env: 'RL_LOGIN_PER_IP', flag: 'rl-login-per-ip', help: 'logins (POST /v1/sessions) per IP, right or wrong', parse: windows, default: () => parseWindows('10/s,60/m,600/h,5000/d'), show: formatWindows },
  rlLoginFailuresPerUsername: {
    key: 'rlLoginFailuresPerUsername', env: 'RL_LOGIN_FAILURES_PER_USERNAME', flag: 'rl-login-failures-per-username',
    help: 'failed logins per username; beyond, every login for it gets 429 (the right password too) until the window lets one in', parse: windows, default: () => parseWindows('2/s,5/m,10/h,100/d'), show: formatWindows,
  },
  rlWsConnectsPerIp: { key: 'rlWsConnectsPerIp', env: 'RL_WS_CONNECTS_PER_IP', flag: 'rl-ws-connects-per-ip', help: 'WebSocket upgrades per IP; beyond, 429', parse: windows, default: () => parseWindows('20/s,300/m,3000/h'), show: formatWindows },
  rlWsPerIp: { key: 'rlWsPerIp', env: 'RL_WS_PER_IP', flag: 'rl-ws-per-ip', help: 'open WebSockets per IP; beyond, upgrades get 429', parse: int(1, 10_000_000), default: () => 200 },
  rlSocketCommands: { key: 'rlSocketCommands', env: 'RL_SOCKET_COMMANDS', flag: 'rl-socket-commands', help: 'commands per socket per second (a burst of twice as many); beyond, rate_limited with retry', parse: int(1, 1_000_000), default: () => 50 },
  rlSocketSends: { key: 'rlSocketSends', env: 'RL_SOCKET_SENDS', flag: 'rl-socket-sends', help: 'send and channel.post per socket per second (a burst of twice as many)', parse: int(1, 1_000_000), default: () => 10 },
  rlSendsPerUser: { key: 'rlSendsPerUser', env: 'RL_SENDS_PER_USER', flag: 'rl-sends-per-user', help: 'send and channel.post per user, across their devices', parse: windows, default: () => parseWindows('20/s,300/m,5000/h'), show: formatWindows },
  rlCostlyPerUser: { key: 'rlCostlyPerUser', env: 'RL_COSTLY_PER_USER', flag: 'rl-costly-per-user', help: 'presence.sub, history, inbox, user.find and GET /v1/users/:username per user', parse: windows, default: () => parseWindows('20/s,300/m,5000/h'), show: formatWindows },
  apiKeys: { key: 'apiKeys', env: 'API_KEYS', flag: 'api-keys', help: 'server API keys: space-separated key:scope,scope entries (scopes: messages, users, channels, admin; never printed)', parse: apiKeyEntries, default: () => [], show: (v) => (v.length === 0 ? '' : '***') },
  rlServerApi: { key: 'rlServerApi', env: 'RL_SERVER_API', flag: 'rl-server-api', help: 'server API calls (/v1/server/…) per API key', parse: windows, default: () => parseWindows('200/s,6000/m'), show: formatWindows },
  idempotencyTtlMs: {
    key: 'idempotencyTtlMs', env: 'IDEMPOTENCY_TTL', flag: 'idempotency-ttl', help: 'the server API answers a repeated Idempotency-Key from its stored answer for this long (e.g. 24h)',
    parse: duration(60_000, 30 * 86_400_000, false), default: () => 86_400_000, show: formatDuration,
  },
  rlInviteGuess: {
    key: 'rlInviteGuess', env: 'RL_INVITE_GUESS', flag: 'rl-invite-guess',
    help: 'failed invite lookups (GET /i/:code, invite.join with a code that is unknown, expired, revoked or used up) per IP and per user; beyond, every lookup of them gets 429 / rate_limited, valid codes too', parse: windows, default: () => parseWindows('5/s,20/m,100/h,500/d'), show: formatWindows,
  },
  authJwtSecret: { key: 'authJwtSecret', env: 'AUTH_JWT_SECRET', flag: 'auth-jwt-secret', help: 'accept application JWTs signed with HS256 and this secret, ≥ 32 characters (never printed)', parse: secret, default: () => '' },
  authJwksUrl: { key: 'authJwksUrl', env: 'AUTH_JWKS_URL', flag: 'auth-jwks-url', help: 'accept application JWTs signed with RS256 or ES256 by a key of the JWKS at this http(s) URL (fetched, cached 10 min, refetched for an unknown kid)', parse: endpointUrl, default: () => '' },
  authJwtPublicKey: { key: 'authJwtPublicKey', env: 'AUTH_JWT_PUBLIC_KEY', flag: 'auth-jwt-public-key', help: 'accept application JWTs signed by this RSA (RS256) or P-256 (ES256) public key: PEM text, or the path of a PEM file (not with AUTH_JWKS_URL)', parse: nonEmpty, default: () => '' },
  authJwtAudience: { key: 'authJwtAudience', env: 'AUTH_JWT_AUDIENCE', flag: 'auth-jwt-audience', help: 'application JWTs must carry this aud (empty = not checked)', parse: anyString, default: () => '' },
  authJwtIssuer: { key: 'authJwtIssuer', env: 'AUTH_JWT_ISSUER', flag: 'auth-jwt-issuer', help: 'application JWTs must carry this iss (empty = not checked)', parse: anyString, default: () => '' },
  authJwksCooldownMs: {
    key: 'authJwksCooldownMs', env: 'AUTH_JWKS_COOLDOWN', flag: 'auth-jwks-cooldown', help: 'a token with an unknown kid refetches the JWKS at most this often (e.g. 30s)',
    parse: duration(1, 86_400_000, false), default: () => 30_000, show: formatDuration,
  },
  authRefreshGraceMs: {
    key: 'authRefreshGraceMs', env: 'AUTH_REFRESH_GRACE', flag: 'auth-refresh-grace', help: 'a socket signed in with a JWT gets a refresh frame this long before the token expires (at most half its lifetime); closed with 4001 at expiry without a new token',
    parse: duration(1000, 86_400_000, false), default: () => 30_000, show: formatDuration,
  },
  webApp: { key: 'webApp', env: 'WEB_APP', flag: 'web-app', help: 'off: GET / and /assets/* do not serve the web chat app (the API is unchanged)', parse: oneOf<'on' | 'off'>('on', 'off'), default: () => 'on' },
  search: { key: 'search', env: 'SEARCH', flag: 'search', help: 'off: messages are not indexed for search and the search command answers forbidden', parse: oneOf<'on' | 'off'>('on', 'off'), default: () => 'on' },
  authPasswords: { key: 'authPasswords', env: 'AUTH_PASSWORDS', flag: 'auth-passwords', help: 'off: registration and login with passwords answer 403 (existing sessions keep working)', parse: oneOf<'on' | 'off'>('on', 'off'), default: () => 'on' },
  webhookUrl: { key: 'webhookUrl', env: 'WEBHOOK_URL', flag: 'webhook-url', help: 'event webhooks: POST batches of events to this http(s) URL (needs WEBHOOK_SECRET); empty: no events are recorded at all', parse: endpointUrl, default: () => '' },
  webhookSecret: { key: 'webhookSecret', env: 'WEBHOOK_SECRET', flag: 'webhook-secret', help: 'HMAC-SHA256 key of the webhooks\' X-Parley-Signature, ≥ 32 characters (never printed)', parse: secret, default: () => '' },
  webhookEvents: {
    key: 'webhookEvents', env: 'WEBHOOK_EVENTS', flag: 'webhook-events', help: `event kinds recorded and delivered, separated by spaces or commas, or all (${WEBHOOK_EVENT_TYPES.join(', ')})`,
    parse: eventTypes, default: () => [...WEBHOOK_EVENT_TYPES], show: (v) => (v.length === WEBHOOK_EVENT_TYPES.length ? 'all' : v.join(',')),
  },
  webhookBatch: { key: 'webhookBatch', env: 'WEBHOOK_BATCH', flag: 'webhook-batch', help: 'events per webhook POST at most', parse: int(1, 1000), default: () => 100 },
  webhookTimeoutMs: {
    key: 'webhookTimeoutMs', env: 'WEBHOOK_TIMEOUT', flag: 'webhook-timeout', help: 'one webhook POST may take this long, then it is retried (e.g. 10s)',
    parse: duration(100, 600_000, false), default: () => 10_000, show: formatDuration,
  },
  webhookBackoffMs: {
    key: 'webhookBackoffMs', env: 'WEBHOOK_BACKOFF', flag: 'webhook-backoff', help: 'a failed webhook POST is retried after this long, then twice as long each time (with jitter)',
    parse: duration(10, 3_600_000, false), default: () => 1000, show: formatDuration,
  },
  webhookBackoffMaxMs: {
    key: 'webhookBackoffMaxMs', env: 'WEBHOOK_BACKOFF_MAX', flag: 'webhook-backoff-max', help: 'the longest wait between webhook retries (events are never dropped: they wait)',
    parse: duration(10, 86_400_000, false), default: () => 300_000, show: formatDuration,
  },
  webhookRetentionMs: {
    key: 'webhookRetentionMs', env: 'WEBHOOK_RETENTION', flag: 'webhook-retention', help: 'delivered events stay readable by GET /v1/server/events this long (e.g. 7d); 0 deletes them once delivered',
    parse: duration(1000, 365 * 86_400_000, true), default: () => 7 * 86_400_000, show: formatDuration,
  },
  sendHookUrl: { key: 'sendHookUrl', env: 'SEND_HOOK_URL', flag: 'send-hook-url', help: 'pre-send hook: every send and channel.post is POSTed here first, to accept, reject or rewrite it', parse: endpointUrl, default: () => '' },
  sendHookSecret: { key: 'sendHookSecret', env: 'SEND_HOOK_SECRET', flag: 'send-hook-secret', help: 'HMAC-SHA256 key of the hook\'s X-Parley-Signature, ≥ 32 characters (empty: WEBHOOK_SECRET; never printed)', parse: secret, default: () => '' },
  sendHookTimeoutMs: { key: 'sendHookTimeoutMs', env: 'SEND_HOOK_TIMEOUT_MS', flag: 'send-hook-timeout-ms', help: 'the hook must answer within this many ms, else SEND_HOOK_FAIL applies', parse: int(10, 60_000), default: () => 1000 },
  sendHookFail: { key: 'sendHookFail', env: 'SEND_HOOK_FAIL', flag: 'send-hook-fail', help: 'a hook timeout or bad answer: closed refuses the message (unavailable, retry), open stores it unchanged', parse: oneOf<'open' | 'closed'>('open', 'closed'), default: () => 'closed' },
  sendHookConcurrency: { key: 'sendHookConcurrency', env: 'SEND_HOOK_CONCURRENCY', flag: 'send-hook-concurrency', help: 'hook calls in flight or waiting at once; beyond, sends get unavailable with retry', parse: int(1, 100_000), default: () => 256 },
  rlStrikes: { key: 'rlStrikes', env: 'RL_STRIKES', flag: 'rl-strikes', help: 'rate_limited answers a socket may run into while still told to wait; then it is closed with 4008', parse: int(1, 1_000_000), default: () => 10 },
  // ---- TLS without a proxy: both files are read and checked at start-up (a clear refusal on a
  // missing or unreadable file, a key that does not match the certificate), again on SIGHUP.
  tlsCert: { key: 'tlsCert', env: 'TLS_CERT', flag: 'tls-cert', help: 'serve https and wss on PORT with this PEM certificate (chain after it); needs TLS_KEY; SIGHUP reloads both files', parse: nonEmpty, default: () => '' },
  tlsKey: { key: 'tlsKey', env: 'TLS_KEY', flag: 'tls-key', help: 'the PEM private key (unencrypted) of TLS_CERT', parse: nonEmpty, default: () => '' },
  // ---- Cluster: NODE_ID and CLUSTER_NODES are checked together below.
  clusterNatsUrl: { key: 'clusterNatsUrl', env: 'CLUSTER_NATS_URL', flag: 'cluster-nats-url', help: 'join a cluster through this NATS server (nats://host:port, comma-separated for several); unset: this process alone', parse: natsUrls, default: () => '' },
  nodeId: { key: 'nodeId', env: 'NODE_ID', flag: 'node-id', help: 'this node\'s id in CLUSTER_NODES', parse: nodeName, default: () => '' },
  clusterName: { key: 'clusterName', env: 'CLUSTER_NAME', flag: 'cluster-name', help: 'the cluster\'s name (several clusters can share one NATS)', parse: nodeName, default: () => 'parley' },
  clusterNodes: {
    key: 'clusterNodes', env: 'CLUSTER_NODES', flag: 'cluster-nodes', help: 'every node\'s id, comma-separated, in the same order on every node (the static ring; every node runs SHARDS shards)',
    parse: nodeList, default: () => [], show: (v) => v.join(','),
  },
  clusterLeaseMs: { key: 'clusterLeaseMs', env: 'CLUSTER_LEASE_MS', flag: 'cluster-lease-ms', help: 'a node\'s ownership lease; a node that cannot renew it for this long stops', parse: int(500, 600_000), default: () => 10_000 },
};

/** Node and cluster names: they become parts of NATS subjects and KV bucket names. */
function nodeName(raw: string): string {
  if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(raw)) throw new ConfigError(`must be 1-32 of a-z, 0-9 and - (not first), got "${raw}"`);
  return raw;
}

function nodeList(raw: string): string[] {
  const nodes = raw.split(',').map((n) => nodeName(n.trim()));
  if (new Set(nodes).size !== nodes.length) throw new ConfigError(`lists a node twice: "${raw}"`);
  if (nodes.length > 255) throw new ConfigError('at most 255 nodes');
  return nodes;
}

function natsUrls(raw: string): string {
  for (const part of raw.split(',')) {
    let url: URL;
    try {
      url = new URL(part.trim());
    } catch {
      throw new ConfigError(`must be nats://host:port URLs, got "${raw}"`);
    }
    if (!['nats:', 'tls:'].includes(url.protocol) || url.hostname === '') throw new ConfigError(`must be nats://host:port URLs, got "${raw}"`);
  }
  return raw;
}

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
  const result = { ...(config as unknown as Config), ...overrides };
  if (result.blobStore === 's3' && result.s3Bucket === '') throw new ConfigError('BLOB_STORE=s3 needs S3_BUCKET');
  if (result.authJwksUrl !== '' && result.authJwtPublicKey !== '') throw new ConfigError('AUTH_JWKS_URL and AUTH_JWT_PUBLIC_KEY: set one of them');
  if (result.webhookUrl !== '' && result.webhookSecret === '') throw new ConfigError('WEBHOOK_URL needs WEBHOOK_SECRET');
  if ((result.tlsCert === '') !== (result.tlsKey === '')) throw new ConfigError(result.tlsCert === '' ? 'TLS_KEY needs TLS_CERT' : 'TLS_CERT needs TLS_KEY');
  if (result.sendHookUrl !== '' && result.sendHookSecret === '' && result.webhookSecret === '') throw new ConfigError('SEND_HOOK_URL needs SEND_HOOK_SECRET (or WEBHOOK_SECRET)');
  if (result.clusterNatsUrl !== '') {
    if (result.nodeId === '') throw new ConfigError('CLUSTER_NATS_URL needs NODE_ID');
    if (!result.clusterNodes.includes(result.nodeId)) throw new ConfigError(`NODE_ID ${result.nodeId} is not in CLUSTER_NODES (${result.clusterNodes.join(',') || 'empty'})`);
  } else if (result.nodeId !== '' || result.clusterNodes.length > 0) {
    throw new ConfigError('NODE_ID and CLUSTER_NODES need CLUSTER_NATS_URL');
  }
  return result;
}

export { ConfigError };
