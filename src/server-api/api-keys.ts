// Server API keys (docs/operator-guide.md "Server API and API keys"): the operator's backend
// authenticates with `Authorization: Bearer <API key>` on /v1/server/… only. Keys come from
// API_KEYS (fixed for the process's life) or are made and revoked at runtime over HTTP; only the
// sha256 of a key is stored (as for session tokens). This thread is the only writer of the table,
// so the in-memory index is authoritative: a revoked key is refused from the next request on.
import { randomBytes } from 'node:crypto';
import type { ApiKeyRecord, StorageEnv } from '../../storage/env.js';
import { ErrorCode } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import type { ApiScope } from '../../protocol/validate.js';
import { hashToken } from '../auth/accounts.js';
import type { ApiKeyEntry } from '../config.js';
import { sameSecret } from '../auth/same-secret.js';

/** Who is calling the server API: a key's id (rate limits, idempotency) and its scopes. */
export interface ApiPrincipal { id: string; scopes: ReadonlySet<ApiScope> }

/** What GET /v1/server/keys shows of a key (never the key itself). */
export interface ApiKeyInfo { id: string; name: string; scopes: ApiScope[]; created: number; source: 'api' | 'config' }

/** The id ADMIN_TOKEN calls under (an admin principal). */
export const ADMIN_TOKEN_ID = 'admin-token';
const ADMIN_SCOPES: ReadonlySet<ApiScope> = new Set<ApiScope>(['admin']);

interface Known extends ApiPrincipal { info: ApiKeyInfo }

export class ApiKeys {
  private readonly byHash = new Map<string, Known>();
  private readonly byId = new Map<string, string>();

  constructor(private readonly storage: StorageEnv, configured: ApiKeyEntry[], private readonly adminToken: string) {
    for (const { key, scopes } of configured) {
      const hash = hashToken(key);
      this.index(hash, { id: `cfg_${hash.slice(0, 12)}`, name: 'API_KEYS', scopes, created: 0, source: 'config' });
    }
    for (const { value } of storage.db.apiKeys.getRange()) this.index(value.hash, { id: value.id, name: value.name, scopes: value.scopes as ApiScope[], created: value.created, source: 'api' });
  }

  /** The principal a bearer secret stands for, or undefined (unknown or revoked). */
  authenticate(secret: string): ApiPrincipal | undefined {
    if (this.adminToken !== '' && sameSecret(secret, this.adminToken)) return { id: ADMIN_TOKEN_ID, scopes: ADMIN_SCOPES };
    return this.byHash.get(hashToken(secret));
  }

  /** Makes a key; the secret is in this answer only. Answered once the record is on disk. */
  async create(name: string, scopes: ApiScope[]): Promise<ApiKeyInfo & { key: string }> {
    const key = `pk_${randomBytes(32).toString('base64url')}`;
    const hash = hashToken(key);
    const record: ApiKeyRecord = { id: `key_${randomBytes(8).toString('hex')}`, hash, name, scopes: [...new Set(scopes)], created: Date.now() };
    await this.storage.db.apiKeys.put(record.id, record);
    await this.storage.barrier();
    const info = this.index(hash, { id: record.id, name, scopes: record.scopes as ApiScope[], created: record.created, source: 'api' });
    return { ...info, key };
  }

  /** Revokes a key made over HTTP: refused from now on (not_found: no such key; conflict: an API_KEYS key). */
  async revoke(id: string): Promise<void> {
    const hash = this.byId.get(id);
    const known = hash === undefined ? undefined : this.byHash.get(hash);
    if (!known) throw new ProtocolError(ErrorCode.not_found, 'no such API key');
    if (known.info.source === 'config') throw new ProtocolError(ErrorCode.conflict, 'this key is set by API_KEYS: remove it there and restart');
    // Refused at once, before the removal is on disk; answered once it is.
    this.byHash.delete(hash!);
    this.byId.delete(id);
    await this.storage.db.apiKeys.remove(id);
    await this.storage.barrier();
  }

  list(): ApiKeyInfo[] {
    return [...this.byHash.values()].map((k) => k.info).sort((a, b) => a.created - b.created || a.id.localeCompare(b.id));
  }

  private index(hash: string, info: ApiKeyInfo): ApiKeyInfo {
    this.byHash.set(hash, { id: info.id, scopes: new Set(info.scopes), info });
    this.byId.set(info.id, hash);
    return info;
  }
}

/** May this principal act under `scope`? admin may do everything. */
export const allows = (p: ApiPrincipal, scope: ApiScope): boolean => p.scopes.has('admin') || p.scopes.has(scope);
