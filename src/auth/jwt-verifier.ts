// Sign-in with the operator's application's tokens (docs/operator-guide.md "Sign-in with your
// application's tokens"): a JWT signed by the operator's backend is checked here with jose —
// HS256 with AUTH_JWT_SECRET, RS256/ES256 with keys from AUTH_JWKS_URL (fetched, cached, refetched
// for an unknown kid after a cooldown) or AUTH_JWT_PUBLIC_KEY — and turned into the claims Parley
// uses: the app's user id, the expiry, the display name and the device.
import { createHash, createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRemoteJWKSet, errors, jwtVerify, type JWTHeaderParameters, type JWTPayload } from 'jose';
import { ErrorCode } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import { isId } from '../../protocol/ids.js';
import { MAX_JWT_CHARS } from '../../protocol/validate.js';
import type { Config } from '../config.js';
import { validAppId } from './app-users.js';

/** What a valid token says, in Parley's terms. */
export interface AppClaims {
  /** the application's user id (`sub`) */
  sub: string;
  /** expiry, ms since the epoch */
  exp: number;
  /** display name for an account created on first sight */
  name?: string;
  /** the Parley device id: the `device` claim, else derived from the token (deviceOf) */
  device: string;
  /** the token named its device with a `device` claim */
  namedDevice: boolean;
}

export interface JwtKeyOptions {
  /** HS256 shared secret ('' = none) */
  secret: string;
  /** JWKS URL for RS256/ES256 ('' = none) */
  jwksUrl: string;
  /** PEM text of an RS256/ES256 public key, or a path to a file holding one ('' = none) */
  publicKey: string;
  /** checked when set */
  audience: string;
  issuer: string;
  /** an unknown kid refetches the JWKS at most this often (jose's cooldown) */
  jwksCooldownMs: number;
}

export const jwtKeyOptions = (c: Config): JwtKeyOptions => ({
  secret: c.authJwtSecret, jwksUrl: c.authJwksUrl, publicKey: c.authJwtPublicKey,
  audience: c.authJwtAudience, issuer: c.authJwtIssuer, jwksCooldownMs: c.authJwksCooldownMs,
});

/** A JWT by its shape: three base64url parts with dots. Session tokens (43 base64url chars) have none. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
export const looksLikeJwt = (s: string): boolean => s.length <= MAX_JWT_CHARS && JWT_SHAPE.test(s);

/** A JWT in an Authorization header, or null. */
export function bearerJwt(authorization: string): string | null {
  if (!authorization.startsWith('Bearer ')) return null;
  const token = authorization.slice(7);
  return looksLikeJwt(token) ? token : null;
}

/** Display names, as elsewhere (protocol/validate.ts DisplayName). */
const MAX_NAME_CHARS = 64;
/** Keys fetched from the JWKS are refetched at least this often (rotation without an unknown kid). */
const JWKS_MAX_AGE_MS = 10 * 60_000;
const JWKS_TIMEOUT_MS = 5_000;

/**
 * The device of a token without a `device` claim: one per token id — `j` + 22 base64url
 * characters of sha256(jti), or of the whole token when it has no jti.
 */
export function deviceOf(token: string, jti: string | undefined): string {
  return `j${createHash('sha256').update(jti ?? token).digest('base64url').slice(0, 22)}`;
}

/** The public key AUTH_JWT_PUBLIC_KEY names (PEM text, or a path to a PEM file) and its algorithm. */
function loadPublicKey(value: string): { key: KeyObject; alg: 'RS256' | 'ES256' } {
  const pem = value.includes('-----BEGIN') ? value : readFileSync(value, 'utf8');
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType === 'rsa') return { key, alg: 'RS256' };
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return { key, alg: 'ES256' };
  throw new Error(`AUTH_JWT_PUBLIC_KEY: an RSA or P-256 public key is needed, not ${key.asymmetricKeyType}`);
}

type KeyGetter = (header: JWTHeaderParameters) => Promise<KeyObject | Uint8Array | CryptoKey> | KeyObject | Uint8Array;

export class JwtVerifier {
  /** Algorithms the configured keys allow: never `none`, never HS256 without a secret. */
  readonly algorithms: string[];
  private readonly getKey: KeyGetter | null;

  constructor(private readonly options: JwtKeyOptions) {
    // A KeyObject made once: jose would import raw bytes again for every token.
    const secret = options.secret === '' ? null : createSecretKey(Buffer.from(options.secret, 'utf8'));
    const pem = options.publicKey === '' ? null : loadPublicKey(options.publicKey);
    const jwks = options.jwksUrl === '' ? null : createRemoteJWKSet(new URL(options.jwksUrl), {
      cooldownDuration: options.jwksCooldownMs, cacheMaxAge: JWKS_MAX_AGE_MS, timeoutDuration: JWKS_TIMEOUT_MS,
    });
    if (pem && jwks) throw new Error('AUTH_JWKS_URL and AUTH_JWT_PUBLIC_KEY: set one of them');
    this.algorithms = [...(secret ? ['HS256'] : []), ...(jwks ? ['RS256', 'ES256'] : []), ...(pem ? [pem.alg] : [])];
    if (this.algorithms.length === 0) {
      this.getKey = null;
      return;
    }
    // The key follows the header's alg (already restricted to this.algorithms by jose): an HS256
    // header only ever meets the secret, an RS/ES one only the public keys — no key confusion.
    this.getKey = (header) => {
      if (header.alg === 'HS256') return secret!;
      if (pem) return pem.key;
      return jwks!(header);
    };
  }

  /** Some key is configured: hello {jwt} and Bearer JWTs are accepted. */
  get enabled(): boolean {
    return this.getKey !== null;
  }

  /**
   * The claims of a valid token; unauthorized with the reason otherwise (unavailable when the
   * JWKS cannot be fetched: the token may be fine).
   */
  async verify(token: string): Promise<AppClaims> {
    if (!this.getKey) throw new ProtocolError(ErrorCode.unauthorized, 'sign-in with application tokens is not configured on this server');
    if (!looksLikeJwt(token)) throw new ProtocolError(ErrorCode.unauthorized, 'not a JWT');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.getKey, {
        algorithms: this.algorithms,
        requiredClaims: ['sub', 'exp'],
        ...(this.options.audience !== '' ? { audience: this.options.audience } : {}),
        ...(this.options.issuer !== '' ? { issuer: this.options.issuer } : {}),
      }));
    } catch (err) {
      throw tokenError(err);
    }
    const { sub, exp, jti } = payload;
    if (!validAppId(sub)) throw new ProtocolError(ErrorCode.unauthorized, 'sub must be 1 to 128 printable ASCII characters without spaces');
    const name = payload.name;
    if (name !== undefined && (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_CHARS)) {
      throw new ProtocolError(ErrorCode.unauthorized, `name must be a string of 1 to ${MAX_NAME_CHARS} characters`);
    }
    const device = payload.device;
    if (device !== undefined && !isId(device)) throw new ProtocolError(ErrorCode.unauthorized, 'device must be 1 to 40 of A-Z a-z 0-9 _ : -');
    if (jti !== undefined && typeof jti !== 'string') throw new ProtocolError(ErrorCode.unauthorized, 'jti must be a string');
    return {
      sub, exp: exp! * 1000, ...(name !== undefined ? { name } : {}),
      device: device ?? deviceOf(token, jti), namedDevice: device !== undefined,
    };
  }
}

function tokenError(err: unknown): ProtocolError {
  if (err instanceof errors.JWKSTimeout || !(err instanceof errors.JOSEError)) {
    // The key set could not be fetched (or answered garbage): our side, not the token's.
    return new ProtocolError(ErrorCode.unavailable, 'the key set (AUTH_JWKS_URL) cannot be fetched now');
  }
  if (err instanceof errors.JWTExpired) return new ProtocolError(ErrorCode.unauthorized, 'token expired');
  if (err instanceof errors.JWTClaimValidationFailed) return new ProtocolError(ErrorCode.unauthorized, `token claim ${err.claim}: ${err.message}`);
  if (err instanceof errors.JOSEAlgNotAllowed) return new ProtocolError(ErrorCode.unauthorized, 'token algorithm not allowed here');
  if (err instanceof errors.JWKSNoMatchingKey) return new ProtocolError(ErrorCode.unauthorized, 'no key matches the token');
  if (err instanceof errors.JWSSignatureVerificationFailed) return new ProtocolError(ErrorCode.unauthorized, 'bad token signature');
  if (err instanceof errors.JWKSInvalid) return new ProtocolError(ErrorCode.unavailable, 'the key set (AUTH_JWKS_URL) is not a valid JWKS');
  return new ProtocolError(ErrorCode.unauthorized, `invalid token: ${err.message}`);
}
