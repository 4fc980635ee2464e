// The typed config: defaults, env, flags (flags win), and a clear error naming the bad option.
import t from 'tap';
import { ConfigError, configHelp, loadConfig, printableConfig } from '../src/config.js';

t.test('defaults', async (t) => {
  const c = loadConfig([], {});
  t.match(c, { port: 8080, dataDir: './data', durability: 'fsync', logLevel: 'info', maxFrameBytes: 128 * 1024, heartbeatSeconds: 25 });
  t.ok(c.shards >= 1, 'shards default to the number of cores');
});

t.test('env vars, then flags on top', async (t) => {
  const env = { PORT: '9000', DATA_DIR: '/tmp/x', SHARDS: '3', DURABILITY: 'relaxed', LOG_LEVEL: 'warn' };
  t.match(loadConfig([], env), { port: 9000, dataDir: '/tmp/x', shards: 3, durability: 'relaxed', logLevel: 'warn' });
  t.match(loadConfig(['--port', '9100', '--shards=4'], env), { port: 9100, shards: 4, durability: 'relaxed' }, 'flags win');
  t.match(loadConfig([], { PORT: '' }), { port: 8080 }, 'an empty env var means unset');
});

t.test('invalid values stop start-up with a message naming the option', async (t) => {
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    ['port out of range', [], { PORT: '70000' }, /PORT.*0 to 65535/],
    ['port not a number', ['--port', 'eighty'], {}, /--port/],
    ['zero shards', [], { SHARDS: '0' }, /SHARDS/],
    ['unknown durability', [], { DURABILITY: 'sometimes' }, /DURABILITY.*fsync, relaxed/],
    ['unknown log level', ['--log-level', 'loud'], {}, /--log-level/],
    ['unknown flag', ['--prot', '1'], {}, /prot/],
  ];
  for (const [name, argv, env, message] of cases) {
    t.throws(() => loadConfig(argv, env), { name: 'ConfigError', message }, name);
  }
  t.ok(new ConfigError('x') instanceof Error);
});

t.test('runtime bounds: defaults, env, flags and validation', async (t) => {
  t.match(loadConfig([], {}), {
    passivateAfterMs: 60_000, maxActivations: 100_000, maxCommitBacklog: 512, maxShardRestarts: 5,
    maxAsksPerSocket: 64, maxBufferedBytes: 256 * 1024 * 1024,
  });
  const env = { PASSIVATE_AFTER_MS: '250', MAX_ACTIVATIONS: '1000', MAX_COMMIT_BACKLOG: '8', MAX_SHARD_RESTARTS: '2', MAX_ASKS_PER_SOCKET: '16', MAX_BUFFERED_BYTES: '1048576' };
  t.match(loadConfig([], env), { passivateAfterMs: 250, maxActivations: 1000, maxCommitBacklog: 8, maxShardRestarts: 2, maxAsksPerSocket: 16, maxBufferedBytes: 1 << 20 });
  t.match(loadConfig(['--passivate-after-ms', '500', '--max-asks-per-socket=4'], env), { passivateAfterMs: 500, maxAsksPerSocket: 4 }, 'flags win');
  const bad: [Record<string, string>, RegExp][] = [
    [{ PASSIVATE_AFTER_MS: '0' }, /PASSIVATE_AFTER_MS.*10 to/],
    [{ MAX_ACTIVATIONS: 'many' }, /MAX_ACTIVATIONS/],
    [{ MAX_COMMIT_BACKLOG: '0' }, /MAX_COMMIT_BACKLOG/],
    [{ MAX_SHARD_RESTARTS: '0' }, /MAX_SHARD_RESTARTS/],
    [{ MAX_ASKS_PER_SOCKET: '0' }, /MAX_ASKS_PER_SOCKET/],
    [{ MAX_BUFFERED_BYTES: '1000' }, /MAX_BUFFERED_BYTES/],
  ];
  for (const [e, message] of bad) t.throws(() => loadConfig([], e), { name: 'ConfigError', message }, Object.keys(e)[0]);
});

t.test('retention: durations with units, 0 keeps forever, clear errors', async (t) => {
  t.match(loadConfig([], {}), { retentionMs: 0, retentionSweepMs: 60_000 }, 'defaults: keep forever, sweep every minute');
  const ok: [Record<string, string>, number][] = [
    [{ RETENTION: '0' }, 0], [{ RETENTION: '90d' }, 90 * 86_400_000], [{ RETENTION: '12h' }, 12 * 3_600_000],
    [{ RETENTION: '3s' }, 3000], [{ RETENTION: '30m' }, 1_800_000], [{ RETENTION: '1500ms' }, 1500],
  ];
  for (const [env, ms] of ok) t.equal(loadConfig([], env).retentionMs, ms, env.RETENTION);
  t.match(loadConfig(['--retention', '2s', '--retention-sweep=250ms'], { RETENTION: '90d' }), { retentionMs: 2000, retentionSweepMs: 250 }, 'flags win');
  t.equal(loadConfig([], { RETENTION_SWEEP: '5m' }).retentionSweepMs, 300_000);
  const bad: [string[], Record<string, string>, RegExp][] = [
    [[], { RETENTION: '90' }, /RETENTION: .*with a unit.*or 0 to keep forever.*"90"/],
    [[], { RETENTION: '1w' }, /RETENTION: .*with a unit/],
    [[], { RETENTION: '-3s' }, /RETENTION/],
    [[], { RETENTION: '1.5h' }, /RETENTION/],
    [[], { RETENTION: '500ms' }, /RETENTION: must be from 1s to/],
    [[], { RETENTION: '200000d' }, /RETENTION: must be from 1s to/],
    [['--retention', 'forever'], {}, /--retention/],
    [[], { RETENTION_SWEEP: '0' }, /RETENTION_SWEEP: must be an integer with a unit/],
    [[], { RETENTION_SWEEP: '10ms' }, /RETENTION_SWEEP: must be from 100ms to 1d/],
    [[], { RETENTION_SWEEP: '2d' }, /RETENTION_SWEEP/],
  ];
  for (const [argv, env, message] of bad) t.throws(() => loadConfig(argv, env), { name: 'ConfigError', message }, JSON.stringify([argv, env]));
  const help = configHelp();
  t.match(help, /--retention\s+RETENTION .*\(default: 0\)/);
  t.match(help, /--retention-sweep\s+RETENTION_SWEEP .*\(default: 1m\)/);
});

t.test('--help lists every option with its env var', async (t) => {
  const help = configHelp();
  for (const name of [
    '--port', 'PORT', '--data-dir', 'DATA_DIR', '--shards', 'SHARDS', '--durability', 'DURABILITY', '--log-level', 'LOG_LEVEL',
    '--passivate-after-ms', 'PASSIVATE_AFTER_MS', '--max-activations', 'MAX_ACTIVATIONS', '--max-commit-backlog', 'MAX_COMMIT_BACKLOG',
    '--max-shard-restarts', 'MAX_SHARD_RESTARTS', '--max-asks-per-socket', 'MAX_ASKS_PER_SOCKET', '--max-buffered-bytes', 'MAX_BUFFERED_BYTES',
  ]) {
    t.match(help, name);
  }
});

t.test('media options: blob store, S3, size limit, public URL and signing secret', async (t) => {
  t.match(loadConfig([], {}), { blobStore: 'fs', s3Region: 'us-east-1', s3ForcePathStyle: false, mediaMaxBytes: 100 * 1024 * 1024, publicUrl: '', signingSecret: '' });
  const env = {
    BLOB_STORE: 's3', S3_ENDPOINT: 'http://127.0.0.1:9000/', S3_BUCKET: 'media', S3_REGION: 'eu-west-1', S3_ACCESS_KEY_ID: 'AK',
    S3_SECRET_ACCESS_KEY: 'SK', S3_FORCE_PATH_STYLE: 'true', MEDIA_MAX_BYTES: '1048576', PUBLIC_URL: 'https://chat.example.com/', SIGNING_SECRET: 'x'.repeat(32),
  };
  t.match(loadConfig([], env), {
    blobStore: 's3', s3Endpoint: 'http://127.0.0.1:9000', s3Bucket: 'media', s3Region: 'eu-west-1', s3AccessKeyId: 'AK',
    s3SecretAccessKey: 'SK', s3ForcePathStyle: true, mediaMaxBytes: 1 << 20, publicUrl: 'https://chat.example.com', signingSecret: 'x'.repeat(32),
  }, 'URLs are kept without their trailing slash');
  const cases: [string, Record<string, string>, RegExp][] = [
    ['s3 without a bucket', { BLOB_STORE: 's3' }, /BLOB_STORE=s3 needs S3_BUCKET/],
    ['unknown blob store', { BLOB_STORE: 'ftp' }, /BLOB_STORE.*fs, s3/],
    ['public URL not a URL', { PUBLIC_URL: 'chat.example.com' }, /PUBLIC_URL.*http\(s\) URL/],
    ['public URL with a query', { PUBLIC_URL: 'https://a.example/?x=1' }, /PUBLIC_URL.*without query/],
    ['short signing secret', { SIGNING_SECRET: 'short' }, /SIGNING_SECRET.*at least 32/],
    ['path style not a boolean', { S3_FORCE_PATH_STYLE: 'yes' }, /S3_FORCE_PATH_STYLE.*true, false/],
    ['zero media bytes', { MEDIA_MAX_BYTES: '0' }, /MEDIA_MAX_BYTES/],
  ];
  for (const [name, e, message] of cases) t.throws(() => loadConfig([], e), { name: 'ConfigError', message }, name);
});

t.test('secrets are never printed', async (t) => {
  const c = loadConfig([], { S3_SECRET_ACCESS_KEY: 'hunter2', SIGNING_SECRET: 's'.repeat(40) });
  const printed = JSON.stringify(printableConfig(c));
  t.notMatch(printed, /hunter2|ssssssss/);
  t.match(printableConfig(c), { s3SecretAccessKey: '***', signingSecret: '***' });
  t.match(printableConfig(loadConfig([], {})), { s3SecretAccessKey: '', signingSecret: '' }, 'an unset secret shows as empty');
});

t.test('push options (issue 11): defaults, values, errors, half-configured providers, secrets', async (t) => {
  const { configuredPushProviders } = await import('../src/push/open-push-providers.js');
  const c = loadConfig([], {});
  t.strictSame({
    pushWebhookUrl: c.pushWebhookUrl, pushWebhookSecret: c.pushWebhookSecret, vapidPublicKey: c.vapidPublicKey, vapidPrivateKey: c.vapidPrivateKey, vapidSubject: c.vapidSubject,
    webpushAllowHttp: c.webpushAllowHttp, apnsKeyFile: c.apnsKeyFile, apnsKeyId: c.apnsKeyId, apnsTeamId: c.apnsTeamId, apnsTopic: c.apnsTopic, apnsHost: c.apnsHost, apnsCaFile: c.apnsCaFile,
    fcmServiceAccountFile: c.fcmServiceAccountFile, fcmEndpoint: c.fcmEndpoint, pushCoalesceMs: c.pushCoalesceMs, pushPreview: c.pushPreview, pushMaxPerHour: c.pushMaxPerHour,
    pushMaxPerDay: c.pushMaxPerDay, pushConcurrency: c.pushConcurrency, pushTimeoutMs: c.pushTimeoutMs,
  }, {
    pushWebhookUrl: '', pushWebhookSecret: '', vapidPublicKey: '', vapidPrivateKey: '', vapidSubject: '', webpushAllowHttp: false,
    apnsKeyFile: '', apnsKeyId: '', apnsTeamId: '', apnsTopic: '', apnsHost: 'https://api.push.apple.com', apnsCaFile: '',
    fcmServiceAccountFile: '', fcmEndpoint: 'https://fcm.googleapis.com', pushCoalesceMs: 3000, pushPreview: 'off', pushMaxPerHour: 60,
    pushMaxPerDay: 500, pushConcurrency: 32, pushTimeoutMs: 10_000,
  });
  t.strictSame(configuredPushProviders(c), [], 'no provider by default');

  const vapidPublic = `B${'A'.repeat(86)}`; // 65 bytes starting 0x04
  const vapidPrivate = 'A'.repeat(43); // 32 bytes
  const env = {
    PUSH_WEBHOOK_URL: 'https://push-gw.internal/hook/?k=1', PUSH_WEBHOOK_SECRET: 'w'.repeat(32),
    VAPID_PUBLIC_KEY: vapidPublic, VAPID_PRIVATE_KEY: vapidPrivate, VAPID_SUBJECT: 'mailto:ops@example.com', WEBPUSH_ALLOW_HTTP: 'true',
    APNS_KEY_FILE: '/keys/AuthKey.p8', APNS_KEY_ID: 'ABC123DEFG', APNS_TEAM_ID: 'TEAM123456', APNS_TOPIC: 'com.example.chat',
    APNS_HOST: 'https://api.sandbox.push.apple.com/', APNS_CA_FILE: '/keys/ca.pem',
    FCM_SERVICE_ACCOUNT_FILE: '/keys/sa.json', FCM_ENDPOINT: 'http://127.0.0.1:9099/',
    PUSH_COALESCE: '500ms', PUSH_PREVIEW: 'on', PUSH_MAX_PER_HOUR: '10', PUSH_MAX_PER_DAY: '100', PUSH_CONCURRENCY: '4', PUSH_TIMEOUT: '2s',
  };
  const all = loadConfig([], env);
  t.match(all, {
    pushWebhookUrl: 'https://push-gw.internal/hook/?k=1', pushWebhookSecret: 'w'.repeat(32), vapidPublicKey: vapidPublic, vapidPrivateKey: vapidPrivate,
    vapidSubject: 'mailto:ops@example.com', webpushAllowHttp: true, apnsKeyFile: '/keys/AuthKey.p8', apnsKeyId: 'ABC123DEFG', apnsTeamId: 'TEAM123456',
    apnsTopic: 'com.example.chat', apnsHost: 'https://api.sandbox.push.apple.com', apnsCaFile: '/keys/ca.pem', fcmServiceAccountFile: '/keys/sa.json',
    fcmEndpoint: 'http://127.0.0.1:9099', pushCoalesceMs: 500, pushPreview: 'on', pushMaxPerHour: 10, pushMaxPerDay: 100, pushConcurrency: 4, pushTimeoutMs: 2000,
  }, 'the webhook URL is kept as given (path and query); base URLs lose their trailing slash');
  t.strictSame(configuredPushProviders(all), ['webhook', 'webpush', 'apns', 'fcm']);
  t.equal(loadConfig(['--push-coalesce', '1s', '--push-preview=off'], env).pushCoalesceMs, 1000, 'flags win');

  const bad: [Record<string, string>, RegExp][] = [
    [{ PUSH_WEBHOOK_URL: 'ftp://gw/hook' }, /PUSH_WEBHOOK_URL: must be an http\(s\) URL/],
    [{ PUSH_WEBHOOK_URL: 'gw/hook' }, /PUSH_WEBHOOK_URL/],
    [{ PUSH_WEBHOOK_SECRET: 'short' }, /PUSH_WEBHOOK_SECRET: must be at least 32/],
    [{ VAPID_PUBLIC_KEY: 'AAAA' }, /VAPID_PUBLIC_KEY: must be a base64url uncompressed P-256 public key/],
    [{ VAPID_PUBLIC_KEY: `C${'A'.repeat(86)}` }, /VAPID_PUBLIC_KEY/],
    [{ VAPID_PRIVATE_KEY: `${'A'.repeat(42)}+` }, /VAPID_PRIVATE_KEY: must be a base64url P-256 private key/],
    [{ VAPID_SUBJECT: 'http://example.com' }, /VAPID_SUBJECT: must be a mailto: or https: URL/],
    [{ VAPID_SUBJECT: 'ops@example.com' }, /VAPID_SUBJECT/],
    [{ WEBPUSH_ALLOW_HTTP: 'yes' }, /WEBPUSH_ALLOW_HTTP/],
    [{ APNS_KEY_ID: 'ABC 123' }, /APNS_KEY_ID: must be letters and digits/],
    [{ APNS_HOST: 'http://api.push.apple.com' }, /APNS_HOST: must be an https URL/],
    [{ FCM_ENDPOINT: 'fcm.googleapis.com' }, /FCM_ENDPOINT/],
    [{ PUSH_COALESCE: '3' }, /PUSH_COALESCE: must be an integer with a unit/],
    [{ PUSH_COALESCE: '2h' }, /PUSH_COALESCE: must be from 1ms to 1h/],
    [{ PUSH_PREVIEW: 'yes' }, /PUSH_PREVIEW: must be one of off, on/],
    [{ PUSH_MAX_PER_HOUR: '0' }, /PUSH_MAX_PER_HOUR/],
    [{ PUSH_MAX_PER_DAY: '-1' }, /PUSH_MAX_PER_DAY/],
    [{ PUSH_CONCURRENCY: '0' }, /PUSH_CONCURRENCY/],
    [{ PUSH_TIMEOUT: '50ms' }, /PUSH_TIMEOUT: must be from 100ms to 10m/],
  ];
  for (const [e, message] of bad) t.throws(() => loadConfig([], e), { name: 'ConfigError', message }, JSON.stringify(e));

  const half: [Record<string, string>, RegExp][] = [
    [{ APNS_KEY_FILE: '/k.p8' }, /^APNS_KEY_FILE is set but APNS_KEY_ID, APNS_TEAM_ID, APNS_TOPIC are missing/],
    [{ APNS_KEY_FILE: '/k.p8', APNS_KEY_ID: 'K', APNS_TEAM_ID: 'T' }, /^APNS_KEY_FILE, APNS_KEY_ID, APNS_TEAM_ID are set but APNS_TOPIC is missing/],
    [{ PUSH_WEBHOOK_URL: 'http://127.0.0.1/h' }, /^PUSH_WEBHOOK_URL is set but PUSH_WEBHOOK_SECRET is missing/],
    [{ PUSH_WEBHOOK_SECRET: 'w'.repeat(32) }, /^PUSH_WEBHOOK_SECRET is set but PUSH_WEBHOOK_URL is missing/],
    [{ VAPID_PUBLIC_KEY: vapidPublic, VAPID_PRIVATE_KEY: vapidPrivate }, /^VAPID_PUBLIC_KEY, VAPID_PRIVATE_KEY are set but VAPID_SUBJECT is missing/],
    [{ APNS_CA_FILE: '/ca.pem' }, /^APNS_CA_FILE is set but the apns push provider is not configured/],
  ];
  for (const [e, message] of half) t.throws(() => configuredPushProviders(loadConfig([], e)), { name: 'ConfigError', message }, JSON.stringify(e));
  t.strictSame(configuredPushProviders(loadConfig([], { FCM_SERVICE_ACCOUNT_FILE: '/sa.json' })), ['fcm'], 'one provider alone');

  const printed = printableConfig(loadConfig([], { PUSH_WEBHOOK_SECRET: 'hooksecret'.repeat(4), VAPID_PRIVATE_KEY: vapidPrivate }));
  t.match(printed, { pushWebhookSecret: '***', vapidPrivateKey: '***' });
  t.notMatch(JSON.stringify(printed), /hooksecret|AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/, 'push secrets never printed');
  const help = configHelp();
  t.match(help, /--push-coalesce\s+PUSH_COALESCE .*\(default: 3s\)/);
  t.match(help, /--push-timeout\s+PUSH_TIMEOUT .*\(default: 10s\)/);
  t.match(help, /--apns-host\s+APNS_HOST .*\(default: https:\/\/api\.push\.apple\.com\)/);
  for (const name of ['PUSH_WEBHOOK_URL', 'VAPID_PUBLIC_KEY', 'APNS_KEY_FILE', 'FCM_SERVICE_ACCOUNT_FILE', 'PUSH_MAX_PER_DAY', 'PUSH_CONCURRENCY']) t.match(help, name);
});

t.test('admin options: token alphabet and length, port, host; the token is never printed', async (t) => {
  t.match(loadConfig([], {}), { adminToken: '', adminPort: 0, adminHost: '127.0.0.1' });
  const token = 'a'.repeat(40);
  t.match(loadConfig([], { ADMIN_TOKEN: token, ADMIN_PORT: '9100', ADMIN_HOST: '10.0.0.1' }), { adminToken: token, adminPort: 9100, adminHost: '10.0.0.1' });
  t.throws(() => loadConfig([], { ADMIN_TOKEN: 'short' }), { message: /ADMIN_TOKEN.*32 to 512/ });
  t.throws(() => loadConfig([], { ADMIN_TOKEN: 'x'.repeat(31) + '!' }), { message: /ADMIN_TOKEN/ }, 'outside the bearer alphabet');
  t.throws(() => loadConfig([], { ADMIN_PORT: '70000' }), { message: /ADMIN_PORT/ });
  t.match(printableConfig(loadConfig([], { ADMIN_TOKEN: token })), { adminToken: '***' });
});

t.test('cluster options: parsed, and checked together', async (t) => {
  const ok = loadConfig([], { CLUSTER_NATS_URL: 'nats://127.0.0.1:4222,nats://10.0.0.2:4222', NODE_ID: 'n2', CLUSTER_NODES: 'n1, n2,n3', CLUSTER_LEASE_MS: '5000' });
  t.match(ok, { clusterNatsUrl: 'nats://127.0.0.1:4222,nats://10.0.0.2:4222', nodeId: 'n2', clusterNodes: ['n1', 'n2', 'n3'], clusterName: 'parley', clusterLeaseMs: 5000 });
  t.match(loadConfig([], {}), { clusterNatsUrl: '', nodeId: '', clusterNodes: [] }, 'alone by default');
  const bad: [Record<string, string>, RegExp][] = [
    [{ CLUSTER_NATS_URL: 'http://127.0.0.1:4222', NODE_ID: 'n1', CLUSTER_NODES: 'n1' }, /CLUSTER_NATS_URL: must be nats:\/\/host:port URLs/],
    [{ CLUSTER_NATS_URL: 'nats://127.0.0.1:4222', CLUSTER_NODES: 'n1' }, /CLUSTER_NATS_URL needs NODE_ID/],
    [{ CLUSTER_NATS_URL: 'nats://127.0.0.1:4222', NODE_ID: 'n4', CLUSTER_NODES: 'n1,n2' }, /NODE_ID n4 is not in CLUSTER_NODES \(n1,n2\)/],
    [{ CLUSTER_NATS_URL: 'nats://127.0.0.1:4222', NODE_ID: 'n1', CLUSTER_NODES: 'n1,n1' }, /CLUSTER_NODES: lists a node twice/],
    [{ CLUSTER_NATS_URL: 'nats://127.0.0.1:4222', NODE_ID: 'N1', CLUSTER_NODES: 'n1' }, /NODE_ID: must be 1-32 of a-z/],
    [{ CLUSTER_NATS_URL: 'nats://127.0.0.1:4222', NODE_ID: 'n1', CLUSTER_NODES: 'n1', CLUSTER_NAME: 'a.b' }, /CLUSTER_NAME: must be 1-32/],
    [{ CLUSTER_NATS_URL: 'nats://127.0.0.1:4222', NODE_ID: 'n1', CLUSTER_NODES: 'n1', CLUSTER_LEASE_MS: '100' }, /CLUSTER_LEASE_MS/],
    [{ NODE_ID: 'n1', CLUSTER_NODES: 'n1' }, /NODE_ID and CLUSTER_NODES need CLUSTER_NATS_URL/],
  ];
  for (const [e, message] of bad) t.throws(() => loadConfig([], e), { name: 'ConfigError', message }, JSON.stringify(e));
});
