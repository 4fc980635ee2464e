// The rate limits of the edge (docs/protocol.md §10, issue 12): by IP before login, by user after,
// by username for logins. One instance per server, shared by the HTTP routes and the WebSocket
// gateway. With RATE_LIMITS=off every check allows (the load tests and benchmarks run that way).
import { Counter, type Registry } from 'prom-client';
import type { Config } from '../config.js';
import { ErrorCode } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import type { UWS } from '../gateway/uws.js';
import { msUntilToken, refilled } from './token-buckets.js';
import { BucketedRateLimiter, NoRateLimiter, type RateLimiter, type RateWindow } from './rate-limiter.js';

/** Keys one limiter tracks at most (then the least recently hit are forgotten): ~300 B each. */
export const MAX_KEYS_PER_LIMIT = 1_000_000;

/** The `limit` label of parley_rate_limited_total. */
export type LimitName =
  | 'http_ip' | 'register_ip' | 'login_ip' | 'login_username' | 'ws_connect_ip' | 'ws_concurrent_ip'
  | 'socket_commands' | 'socket_sends' | 'user_sends' | 'user_costly' | 'server_api' | 'invite_guess';

/** Makes the limiter of a limit kept across the cluster (EdgeLimits' `shared`). */
export type SharedLimiters = (name: LimitName, windows: RateWindow[]) => RateLimiter;

/** A per-socket token bucket, kept on the socket's own state (no map lookup on the hot path). */
export interface SocketBudget {
  cmdTokens: number; cmdAt: number; sendTokens: number; sendAt: number;
  /** limited until then; limited frames before it are strikes */
  limitedUntil: number; strikes: number;
}

export class EdgeLimits {
  readonly on: boolean;
  private readonly httpIp: RateLimiter;
  private readonly registerIp: RateLimiter;
  private readonly loginIp: RateLimiter;
  private readonly loginUsername: RateLimiter;
  private readonly wsConnectIp: RateLimiter;
  private readonly userSends: RateLimiter;
  private readonly userCostly: RateLimiter;
  private readonly serverApi: RateLimiter;
  /** failed invite lookups per IP, and per signed-in user */
  private readonly inviteGuessIp: RateLimiter;
  private readonly inviteGuessUser: RateLimiter;
  /** open WebSockets per IP (only IPs with one open) */
  private readonly wsOpen = new Map<string, number>();
  private readonly counts = new Map<LimitName, number>();

  /**
   * `shared` (a cluster: src/limits/nats-rate-limiter.ts's natsRateLimits) makes the limits on a
   * user, a username or an API key hold across nodes: a user's devices, a guesser's logins and a
   * key's calls can each reach any node. The limits on an IP stay per node: an IP's connections
   * land on one node's edge, and sharing them would put every anonymous request on NATS (for
   * millions of keys) to catch a spread that the per-user limits catch after login anyway.
   */
  constructor(private readonly config: Config, registry?: Registry, clock?: () => number, shared?: SharedLimiters) {
    this.on = config.rateLimits === 'on';
    const local = (windows: RateWindow[]): RateLimiter =>
      this.on ? new BucketedRateLimiter(windows, { clock, maxKeys: MAX_KEYS_PER_LIMIT }) : new NoRateLimiter();
    const cluster = (name: LimitName, windows: RateWindow[]): RateLimiter => (this.on && shared ? shared(name, windows) : local(windows));
    this.httpIp = local(config.rlHttpPerIp);
    this.registerIp = local(config.rlRegisterPerIp);
    this.loginIp = local(config.rlLoginPerIp);
    this.loginUsername = cluster('login_username', config.rlLoginFailuresPerUsername);
    this.wsConnectIp = local(config.rlWsConnectsPerIp);
    this.userSends = cluster('user_sends', config.rlSendsPerUser);
    this.userCostly = cluster('user_costly', config.rlCostlyPerUser);
    this.serverApi = cluster('server_api', config.rlServerApi);
    this.inviteGuessIp = local(config.rlInviteGuess);
    this.inviteGuessUser = cluster('invite_guess', config.rlInviteGuess);
    if (registry) {
      const counts = this.counts;
      new Counter({
        name: 'parley_rate_limited_total', help: 'requests, connections and commands refused by a rate limit, by limit', labelNames: ['limit'], registers: [registry],
        collect() {
          this.reset();
          for (const [limit, n] of counts) this.inc({ limit }, n);
        },
      });
    }
  }

  /** Counts a refusal for parley_rate_limited_total. */
  refused(limit: LimitName): void {
    this.counts.set(limit, (this.counts.get(limit) ?? 0) + 1);
  }

  /** Refusals so far, every limit (the metrics history). */
  totalRefusals(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  /** Counted refusals so far (tests). */
  refusals(limit: LimitName): number {
    return this.counts.get(limit) ?? 0;
  }

  /**
   * The client's address: the peer's, or with TRUST_PROXY the last X-Forwarded-For entry (the one
   * our proxy appended; earlier entries are whatever the client sent). Read in the uWS callback.
   */
  clientIp(res: UWS.HttpResponse, req: UWS.HttpRequest): string {
    if (this.config.trustProxy) {
      const xff = req.getHeader('x-forwarded-for');
      if (xff !== '') {
        const last = xff.slice(xff.lastIndexOf(',') + 1).trim();
        if (last !== '') return last;
      }
    }
    return Buffer.from(res.getRemoteAddressAsText()).toString();
  }

  private take(limiter: RateLimiter, key: string, name: LimitName, what: string): void {
    const wait = limiter.consume(key);
    if (wait > 0) {
      this.refused(name);
      throw new ProtocolError(ErrorCode.rate_limited, what, { retry: wait });
    }
  }

  // ---- HTTP (each throws ProtocolError rate_limited with retry) ----

  /** An HTTP request not carrying a valid session. */
  http(ip: string): void {
    this.take(this.httpIp, ip, 'http_ip', 'too many requests from this address; retry later');
  }

  register(ip: string): void {
    this.take(this.registerIp, ip, 'register_ip', 'too many registrations from this address; retry later');
  }

  loginFromIp(ip: string): void {
    this.take(this.loginIp, ip, 'login_ip', 'too many logins from this address; retry later');
  }

  /**
   * A login attempt for `username`, counted as a failure until it is known not to be one, so
   * concurrent guesses cannot slip past the lockout (loginDidNotFail takes it back). While the username is locked out every login
   * is refused, the right password too: otherwise the lockout would not stop online guessing.
   */
  loginAttempt(username: string): void {
    this.take(this.loginUsername, username, 'login_username', 'too many failed logins for this username; retry later');
  }

  /** The attempt was not a wrong password (it was right, or refused for another reason). */
  loginDidNotFail(username: string): void {
    this.loginUsername.refund(username);
  }

  /** GET /v1/users/:username: a costly lookup, limited like user.find. */
  lookup(user: string): void {
    this.take(this.userCostly, user, 'user_costly', 'too many lookups; retry later');
  }

  /** A server API call (/v1/server/…) by the API key `keyId` (RL_SERVER_API). */
  serverApiCall(keyId: string): void {
    this.take(this.serverApi, keyId, 'server_api', 'too many server API calls with this key; retry later');
  }

  // ---- invite links (src/invites/invite-desk.ts) ----

  /**
   * An invite lookup by this IP (and user, when signed in), counted as a failed guess until it
   * turns out to name a live invite (inviteFound takes it back), so concurrent guesses cannot slip
   * past the limit. While either key is over RL_INVITE_GUESS, every lookup is refused, valid codes
   * too: otherwise the limit would not stop guessing. Throws rate_limited with retry.
   */
  inviteLookup(ip: string, user: string | undefined): void {
    this.take(this.inviteGuessIp, ip, 'invite_guess', 'too many invite lookups that found nothing; retry later');
    if (user === undefined) return;
    try {
      this.take(this.inviteGuessUser, user, 'invite_guess', 'too many invite lookups that found nothing; retry later');
    } catch (err) {
      this.inviteGuessIp.refund(ip);
      throw err;
    }
  }

  /** The lookup found a live invite: it was not a guess. */
  inviteFound(ip: string, user: string | undefined): void {
    this.inviteGuessIp.refund(ip);
    if (user !== undefined) this.inviteGuessUser.refund(user);
  }

  // ---- WebSocket ----

  /** At upgrade: 0, or the retry (ms) for a 429 (connection rate or concurrent sockets per IP). */
  wsConnect(ip: string): { wait: number; why: string } | null {
    if (!this.on) return null;
    if ((this.wsOpen.get(ip) ?? 0) >= this.config.rlWsPerIp) {
      this.refused('ws_concurrent_ip');
      return { wait: WS_CONCURRENT_RETRY_MS, why: `at most ${this.config.rlWsPerIp} open WebSockets per address` };
    }
    const wait = this.wsConnectIp.consume(ip);
    if (wait > 0) {
      this.refused('ws_connect_ip');
      return { wait, why: 'too many WebSocket connections from this address; retry later' };
    }
    return null;
  }

  wsOpened(ip: string): void {
    if (this.on) this.wsOpen.set(ip, (this.wsOpen.get(ip) ?? 0) + 1);
  }

  wsClosed(ip: string): void {
    if (!this.on) return;
    const n = (this.wsOpen.get(ip) ?? 1) - 1;
    if (n > 0) this.wsOpen.set(ip, n);
    else this.wsOpen.delete(ip);
  }

  newBudget(): SocketBudget {
    return { cmdTokens: this.config.rlSocketCommands * 2, cmdAt: 0, sendTokens: this.config.rlSocketSends * 2, sendAt: 0, limitedUntil: 0, strikes: 0 };
  }

  /**
   * A command on a socket: its budget (a token bucket: RL_SOCKET_COMMANDS a second, a burst of
   * twice that; send and channel.post also RL_SOCKET_SENDS). 0 or the retry in ms.
   */
  socketCommand(b: SocketBudget, isSend: boolean, now = Date.now()): { wait: number; limit: LimitName } | null {
    const rate = this.config.rlSocketCommands;
    b.cmdTokens = refilled(b.cmdTokens, now - b.cmdAt, rate, rate * 2);
    b.cmdAt = now;
    if (b.cmdTokens < 1) return { wait: msUntilToken(b.cmdTokens, rate), limit: 'socket_commands' };
    if (isSend) {
      const sr = this.config.rlSocketSends;
      b.sendTokens = refilled(b.sendTokens, now - b.sendAt, sr, sr * 2);
      b.sendAt = now;
      if (b.sendTokens < 1) return { wait: msUntilToken(b.sendTokens, sr), limit: 'socket_sends' };
      b.sendTokens -= 1;
    }
    b.cmdTokens -= 1;
    return null;
  }

  /** send and channel.post per user, across their devices: 0 or the retry in ms. */
  userSend(user: string): number {
    return this.userSends.consume(user);
  }

  /** presence.sub, history, inbox, user.find (and GET /v1/users/:username) per user. */
  userCostlyCommand(user: string): number {
    return this.userCostly.consume(user);
  }

  /**
   * A socket was answered rate_limited: true when it has now gone on past the limit RL_STRIKES
   * times within the retry windows it was given, and is to be closed with 4008.
   */
  strike(b: SocketBudget, wait: number, now = Date.now()): boolean {
    if (now < b.limitedUntil) b.strikes++;
    else b.strikes = 0;
    b.limitedUntil = Math.max(b.limitedUntil, now + wait);
    return b.strikes >= this.config.rlStrikes;
  }

  stop(): void {
    for (const l of [this.httpIp, this.registerIp, this.loginIp, this.loginUsername, this.wsConnectIp, this.userSends, this.userCostly, this.serverApi, this.inviteGuessIp, this.inviteGuessUser]) l.stop();
  }
}

const WS_CONCURRENT_RETRY_MS = 5000;
