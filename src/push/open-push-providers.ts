// Which push providers the operator configured, and opening them at start-up.
// A provider is on when all its required options are set, off when none is; anything between is a
// ConfigError naming what is missing. The constructors read the key files, so a missing or
// unreadable file, or a key of the wrong kind, stops start-up with a message naming the option.
import { ConfigError, type Config } from '../config.js';
import { ApnsProvider } from './apns-provider.js';
import { FcmProvider } from './fcm-provider.js';
import type { PushProvider, PushProviderName } from './push-provider.js';
import { WebhookProvider } from './webhook-provider.js';
import { WebPushProvider } from './webpush-provider.js';

/** Each provider's required options: [config key, env name]. */
const REQUIRED: Record<PushProviderName, [keyof Config, string][]> = {
  webhook: [['pushWebhookUrl', 'PUSH_WEBHOOK_URL'], ['pushWebhookSecret', 'PUSH_WEBHOOK_SECRET']],
  webpush: [['vapidPublicKey', 'VAPID_PUBLIC_KEY'], ['vapidPrivateKey', 'VAPID_PRIVATE_KEY'], ['vapidSubject', 'VAPID_SUBJECT']],
  apns: [['apnsKeyFile', 'APNS_KEY_FILE'], ['apnsKeyId', 'APNS_KEY_ID'], ['apnsTeamId', 'APNS_TEAM_ID'], ['apnsTopic', 'APNS_TOPIC']],
  fcm: [['fcmServiceAccountFile', 'FCM_SERVICE_ACCOUNT_FILE']],
};

/**
 * The configured providers, in PUSH_PROVIDERS order. Throws ConfigError when a provider is half
 * configured, e.g. "APNS_KEY_FILE is set but APNS_KEY_ID is missing".
 */
export function configuredPushProviders(config: Config): PushProviderName[] {
  const on: PushProviderName[] = [];
  for (const [name, options] of Object.entries(REQUIRED) as [PushProviderName, [keyof Config, string][]][]) {
    const set = options.filter(([key]) => config[key] !== '');
    if (set.length === 0) continue;
    const missing = options.filter(([key]) => config[key] === '');
    if (missing.length > 0) {
      throw new ConfigError(`${set.map(([, env]) => env).join(', ')} ${set.length === 1 ? 'is' : 'are'} set but ${missing.map(([, env]) => env).join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing (the ${name} push provider needs all of them)`);
    }
    on.push(name);
  }
  if (config.apnsCaFile !== '' && !on.includes('apns')) throw new ConfigError('APNS_CA_FILE is set but the apns push provider is not configured (APNS_KEY_FILE, APNS_KEY_ID, APNS_TEAM_ID, APNS_TOPIC)');
  return on;
}

/**
 * Opens every configured provider (none configured: an empty map). Throws ConfigError for a half
 * configured provider or a key file that cannot be read or used; providers opened before the
 * failing one are closed.
 */
export function openPushProviders(config: Config): Map<PushProviderName, PushProvider> {
  const providers = new Map<PushProviderName, PushProvider>();
  const maxSockets = config.pushConcurrency;
  try {
    for (const name of configuredPushProviders(config)) {
      providers.set(name, openOne(name, config, maxSockets));
    }
  } catch (err) {
    for (const p of providers.values()) void p.close();
    if (err instanceof ConfigError) throw err;
    throw new ConfigError((err as Error).message, { cause: err });
  }
  return providers;
}

function openOne(name: PushProviderName, c: Config, maxSockets: number): PushProvider {
  switch (name) {
    case 'webhook':
      return new WebhookProvider({ url: c.pushWebhookUrl, secret: c.pushWebhookSecret, maxSockets });
    case 'webpush':
      return new WebPushProvider({ publicKey: c.vapidPublicKey, privateKey: c.vapidPrivateKey, subject: c.vapidSubject, allowHttp: c.webpushAllowHttp, maxSockets });
    case 'apns':
      return new ApnsProvider({ keyFile: c.apnsKeyFile, keyId: c.apnsKeyId, teamId: c.apnsTeamId, topic: c.apnsTopic, host: c.apnsHost, caFile: c.apnsCaFile });
    case 'fcm':
      return new FcmProvider({ serviceAccountFile: c.fcmServiceAccountFile, endpoint: c.fcmEndpoint, tokenTimeoutMs: c.pushTimeoutMs, maxSockets });
  }
}

/** What `GET /v1/push/vapid` answers: the VAPID public key browsers subscribe with, or null when Web Push is off. */
export function vapidPublicKey(config: Config): string | null {
  return config.vapidPublicKey !== '' && config.vapidPrivateKey !== '' && config.vapidSubject !== '' ? config.vapidPublicKey : null;
}
