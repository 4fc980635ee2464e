// Presence at scale (issue 3): USERS users, all connected (one VU = one user), each watching the
// next WATCH users (modulo USERS) with presence.sub. At a common time T0, FLAP_PERCENT % of the
// users (spread evenly) disconnect at once, stay offline OFFLINE_MS (longer than the server's
// 1 s presence coalescing, so both changes are announced) and reconnect at once, re-subscribing
// to their own watch lists. Watchers measure:
//   presence_offline_latency  T0 → receipt of the `online: false` event
//   presence_latency          T0 + OFFLINE_MS (the reconnect moment) → receipt of `online: true`
// Both include the server's 1 s coalescing delay. After a drain, each watcher compares what it got
// with what it should have got (one offline + one online event per flapping contact; a watcher
// that flapped itself was offline when the offline events went out, so it expects only the online
// ones) and counts missing, duplicate and unexpected events. Sanity checks on the way: after the
// ramp every contact must have been seen online (presence.sub answer or event:
// presence_ramp_lost), and teardown() asks the server for leftover sockets/watchers and for users
// still reported online once every VU has gone.
//
//   npm run loadtest -- loadtest/presence.ts --spawn -e USERS=10000
//
// Events/s: presence_events (offline + online events of the flap) over the bursts in which they
// arrived; the gauges presence_offline_burst_offset / presence_online_burst_offset hold the first
// (min) and last (max) receipt of each burst, in ms after T0.
//
// Environment (all optional):
//   USERS           users = VUs (default 10000)
//   WATCH           contacts each user watches (default 50, ≤ 1000)
//   FLAP_PERCENT    % of users that disconnect and reconnect at T0 (default 10)
//   OFFLINE_MS      how long they stay away (default 1500)
//   RAMP_SECONDS    the VUs' connects are spread evenly over this (default USERS / 500)
//   READY_SECONDS   end of setup → T0, for every VU to connect and subscribe (default RAMP_SECONDS + 20)
//   DRAIN_SECONDS   T0 → the final count (default 15)
//   CONTACTS        1: each user also contacts.add's its WATCH users (default 0: presence.sub only)
//   SETUP_CONCURRENCY, PREFIX, PASSWORD   as in group-fanout.ts
import { WebSocket } from 'ws';
import { ParleyClient } from '../client/index.js';
import type { PresenceEvent } from '../client/index.js';
import { Counter, Gauge, Rate, Trend, check, createUsers, sleep, type Options, type VuContext } from './k6/index.js';

// ---- configuration ----

function intEnv(name: string, dflt: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name}=${raw}: expected an integer in ${min}..${max}`);
  return n;
}

const USERS = intEnv('USERS', 10_000, 2, 200_000);
const WATCH = Math.min(intEnv('WATCH', 50, 1, 1000), USERS - 1);
const FLAP_PERCENT = intEnv('FLAP_PERCENT', 10, 1, 100);
const OFFLINE_MS = intEnv('OFFLINE_MS', 1500, 0, 60_000);
/** The VUs connect spread evenly over this many seconds (a steady ramp, not a connect storm). */
const RAMP_SECONDS = intEnv('RAMP_SECONDS', Math.ceil(USERS / 500), 0, 3600);
const READY_SECONDS = intEnv('READY_SECONDS', RAMP_SECONDS + 20, 1, 3600);
const DRAIN_SECONDS = intEnv('DRAIN_SECONDS', 15, 3, 600);
const CONTACTS = intEnv('CONTACTS', 0, 0, 1) === 1;
const SETUP_CONCURRENCY = intEnv('SETUP_CONCURRENCY', 32, 1, 1024);
const PASSWORD = process.env.PASSWORD || 'loadtest-password';
/** Subscriptions must be in place this long before T0, so that the ramp's own online events are out. */
const SETTLE_MS = 2500;
/** After the final count, before the VUs close and end. */
const CHECK_SLACK_SECONDS = 3;

export const options: Options = {
  scenarios: {
    presence: {
      // One iteration per VU: connect, subscribe, (flap,) count, close — on the timetable from setup().
      executor: 'per-vu-iterations',
      vus: USERS,
      iterations: 1,
      // An upper bound only: the VUs end on their own at the end of their timetable.
      maxDuration: `${READY_SECONDS + DRAIN_SECONDS + CHECK_SLACK_SECONDS + 60}s`,
    },
  },
  thresholds: { checks: ['rate>0.99'] },
  // Registering users costs two scrypt hashes each on the server.
  setupTimeout: '900s',
  // The VUs hold their sockets until the end on their own timetable: no grace needed.
  gracefulStop: '1s',
};

// ---- metrics ----

/** Presence events from the flap (received at or after T0). */
const presenceEvents = new Counter('presence_events');
const presenceOffline = new Counter('presence_events_offline');
const presenceOnline = new Counter('presence_events_online');
/** Events while everyone was connecting (users coming online), before T0: not part of the measure. */
const rampEvents = new Counter('presence_events_ramp');
/** After the ramp: contacts neither answered online by presence.sub nor announced online since. */
const rampLost = new Counter('presence_ramp_lost');
/** Reconnect moment (T0 + OFFLINE_MS) → `online: true` event. */
const presenceLatency = new Trend('presence_latency');
/** Disconnect moment (T0) → `online: false` event. */
const offlineLatency = new Trend('presence_offline_latency');
/** T0 → receipt, every flap event: its spread is the burst the server produced. */
const recvOffset = new Trend('presence_recv_offset');
/** T0 → receipt per burst; the gauges' min and max are the first and last event of each burst. */
const offlineBurst = new Gauge('presence_offline_burst_offset');
const onlineBurst = new Gauge('presence_online_burst_offset');
const expectedEvents = new Counter('presence_expected');
const missingEvents = new Counter('presence_missing');
const duplicateEvents = new Counter('presence_duplicate');
/** After T0, a change of a contact that did not flap (or of a user not watched). */
const unexpectedEvents = new Counter('presence_unexpected');
/** ... of which: about a user this socket never subscribed to. */
const unsubscribedEvents = new Counter('presence_unexpected_unsubscribed');
/** Offline and online of one contact arrived in the wrong order. */
const misordered = new Counter('presence_misordered');
const flaps = new Counter('flaps');
/** Actual start of the reconnect − scheduled reconnect moment (generator lag). */
const reconnectSkew = new Trend('reconnect_skew');
const disconnectSkew = new Trend('disconnect_skew');
const reconnectTime = new Trend('reconnect_time');
const connectTime = new Trend('connect_time');
/** Connected and subscribed SETTLE_MS before T0. */
const readyInTime = new Rate('ready_in_time');
/** Socket closes the SDK saw and reconnected from (not ours), by cause. */
const disconnects = new Counter('disconnects');
const disconnectsHandshake = new Counter('disconnects_handshake_timeout');
const disconnectsServer = new Counter('disconnects_by_server');
/** presence.sub again after an SDK reconnect (subscriptions are per socket). */
const resubscribes = new Counter('resubscribes');
const clientErrors = new Counter('client_errors');

// ---- setup ----

interface SetupEnv { url: string; base: string; vus: number }

interface PresenceData {
  users: string[];
  tokens: string[];
  /** epoch ms: the first VU connects; VU i at rampAt + i / USERS × RAMP_SECONDS */
  rampAt: number;
  /** epoch ms: the flappers disconnect */
  t0: number;
}

export async function setup(env: SetupEnv): Promise<PresenceData> {
  const prefix = process.env.PREFIX || 'pr';
  console.log(`presence: ${USERS} users watching ${WATCH} each, ${FLAP_PERCENT} % flap for ${OFFLINE_MS} ms, ` +
    `ready ${READY_SECONDS} s, users ${prefix}0..${USERS - 1}`);
  if (env.vus < USERS) console.warn(`presence: only ${env.vus} VUs for ${USERS} users: users beyond stay offline`);
  const accounts = await createUsers(env.base, { count: USERS, prefix, exact: Boolean(process.env.PREFIX), concurrency: SETUP_CONCURRENCY, password: PASSWORD, log: (m) => console.log(`setup: ${m}`) });
  const users = accounts.map((a) => a.user);
  const tokens = accounts.map((a) => a.token);
  const rampAt = Date.now() + 2000; // the generators start meanwhile
  return { users, tokens, rampAt, t0: rampAt + READY_SECONDS * 1000 };
}

/** After the VUs: no socket and no watcher may be left registered on the server. */
export async function teardown(data: PresenceData, env: { url: string; base: string }): Promise<void> {
  const t0 = Date.now();
  const deadline = t0 + 45_000;
  let last = '';
  for (;;) {
    try {
      const text = await (await fetch(`${env.base.replace(/\/+$/, '')}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
      const pick = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
      const conns = pick('parley_connections');
      const attached = pick('parley_attached_sockets');
      const watchers = pick('parley_presence_watchers');
      last = `connections ${conns}, attached sockets ${attached}, presence watchers ${watchers}`;
      if (conns === 0 && attached === 0 && watchers === 0) break;
    } catch (err) {
      last = `metrics: ${(err as Error).message}`;
    }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  console.log(`teardown: ${((Date.now() - t0) / 1000).toFixed(0)} s after the VUs ended the server reports ${last} ` +
    '(all three must be 0 unless another client is connected)');

  // Every VU has closed: nobody may still be reported online (user 0 is: it asks).
  const c = new ParleyClient({ url: env.url, token: data.tokens[0]!, WebSocket, reconnect: false, requestTimeoutMs: 30_000 });
  try {
    await c.connect();
    const ghosts: string[] = [];
    for (let i = 1; i < data.users.length; i += 1000) {
      const users = data.users.slice(i, i + 1000);
      const res = await c.request<{ presence: { user: string; online: boolean }[] }>('presence.sub', { users });
      for (const p of res.presence) if (p.online) ghosts.push(p.user);
      await c.request('presence.unsub', { users });
    }
    console.log(`teardown: ${ghosts.length} of ${data.users.length - 1} users are still reported online with no connection` +
      (ghosts.length ? ` (e.g. ${ghosts.slice(0, 3).join(', ')})` : ''));
  } catch (err) {
    console.log(`teardown: presence check failed: ${(err as Error).message}`);
  } finally {
    await c.close();
  }
}

// ---- the VUs ----

const now = (): number => performance.timeOrigin + performance.now();

/** The first few unexpected closes of this process, with their causes, on the console. */
let closesLogged = 0;
function noteClose(code: number, reason: string): void {
  if (++closesLogged <= 5) console.log(`presence: a socket closed under the SDK: ${code} ${reason}`);
}

/** The first few anomalies of this process on the console. */
let diagLogged = 0;
function diag(msg: string): void {
  if (++diagLogged <= 12) console.log(`presence: ${msg}`);
}

/** Evenly spread FLAP_PERCENT % of 0..USERS-1. */
function flaps_(i: number): boolean {
  return Math.floor(((i + 1) * FLAP_PERCENT) / 100) > Math.floor((i * FLAP_PERCENT) / 100);
}

async function until(at: number, signal: AbortSignal): Promise<boolean> {
  const ms = at - Date.now();
  if (ms > 0) await sleep(ms / 1000);
  return !signal.aborted;
}

export default async function (ctx: VuContext): Promise<void> {
  const data = ctx.data as PresenceData;
  const n = data.users.length;
  const index = ctx.vu - 1;
  if (ctx.iteration > 0 || index >= n) return;
  const t0 = data.t0;
  const reconnectAt = t0 + OFFLINE_MS;
  const countAt = t0 + DRAIN_SECONDS * 1000;
  const iFlap = flaps_(index);

  const watchIdx = Array.from({ length: WATCH }, (_, k) => (index + 1 + k) % n);
  const watchList = watchIdx.map((j) => data.users[j]!);
  /** user id → does it flap */
  const watched = new Map<string, boolean>(watchIdx.map((j) => [data.users[j]!, flaps_(j)]));
  /** per flapping contact: offline / online events seen since T0 */
  const got = new Map<string, { off: number; on: number; misordered: boolean }>();

  const onPresence = (ev: PresenceEvent) => {
    const t = now();
    if (t < t0) {
      rampEvents.add(1);
      if (ev.online) seenOnline.add(ev.user);
      return;
    }
    // After the count the VUs start to leave: those offline events are not part of the measure.
    if (t >= countAt) return;
    const flapping = watched.get(ev.user);
    if (flapping !== true) {
      unexpectedEvents.add(1);
      if (flapping === undefined) unsubscribedEvents.add(1);
      const j = data.users.indexOf(ev.user);
      diag(`unexpected event at T0+${(t - t0).toFixed(0)} ms to user #${index}${iFlap ? ' (flapped)' : ''}: ` +
        `user #${j} ${ev.online ? 'online' : 'offline'} last=T0${ev.last >= t0 - 1e6 ? `+${ev.last - t0}` : ` (${ev.last})`} ` +
        `(${flapping === undefined ? 'not watched' : 'did not flap'})`);
      return;
    }
    presenceEvents.add(1);
    recvOffset.add(t - t0);
    let g = got.get(ev.user);
    if (!g) got.set(ev.user, (g = { off: 0, on: 0, misordered: false }));
    if (ev.online) {
      g.on++;
      presenceOnline.add(1);
      presenceLatency.add(t - reconnectAt);
      onlineBurst.add(t - t0);
    } else {
      if (g.on > 0) g.misordered = true;
      g.off++;
      presenceOffline.add(1);
      offlineLatency.add(t - t0);
      offlineBurst.add(t - t0);
    }
  };

  /** Contacts the re-subscription (after the flap) already reported online: no event expected. */
  const onlineAtResub = new Set<string>();
  /** Contacts seen online before T0: in the presence.sub answer, or by an event during the ramp. */
  const seenOnline = new Set<string>();
  const open = async (resub: boolean): Promise<ParleyClient> => {
    // 30 s: under a loaded server a hello may take longer than the SDK's default 15 s.
    const c = new ParleyClient({ url: ctx.url, token: data.tokens[index]!, WebSocket, requestTimeoutMs: 30_000 });
    c.on('presence', onPresence);
    c.on('close', (info) => {
      if (!info.willReconnect) return; // our own close()
      disconnects.add(1);
      if (info.reason === 'handshake timeout') disconnectsHandshake.add(1);
      else if (info.code !== 1006) disconnectsServer.add(1);
      noteClose(info.code, info.reason);
    });
    c.on('error', () => clientErrors.add(1));
    let syncs = 0;
    c.on('synced', () => {
      // After an SDK reconnect: subscriptions died with the old socket.
      if (++syncs > 1) {
        resubscribes.add(1);
        c.request('presence.sub', { users: watchList }).catch(() => clientErrors.add(1));
      }
    });
    await c.connect();
    // Presence is for contacts by default (docs/protocol.md §8.2); these users show it to everyone
    // (a watcher that subscribed first is told when it may see).
    await c.request('privacy.set', { lastSeen: 'everyone' });
    const res = await c.request<{ presence: { user: string; online: boolean }[] }>('presence.sub', { users: watchList });
    check(res, { 'presence.sub ok': (r) => Array.isArray(r.presence) && r.presence.length === watchList.length });
    if (resub) for (const p of res.presence ?? []) if (p.online && watched.get(p.user)) onlineAtResub.add(p.user);
    if (!resub) for (const p of res.presence ?? []) if (p.online) seenOnline.add(p.user);
    return c;
  };

  if (!(await until(data.rampAt + (index / n) * RAMP_SECONDS * 1000, ctx.signal))) return;
  const tc = Date.now();
  let client: ParleyClient;
  try {
    client = await open(false);
  } catch (err) {
    check(err, { 'connected and subscribed': () => false });
    throw err;
  }
  connectTime.add(Date.now() - tc);
  if (CONTACTS) {
    for (const u of watchList) await client.request('contacts.add', { user: u });
  }
  const ready = Date.now() < t0 - SETTLE_MS;
  readyInTime.add(ready);
  check(ready, { 'subscribed before the flap': (v) => v });

  try {
    // Everyone connected during the ramp: each contact must by now have been reported online,
    // either in the answer to presence.sub (it came online first) or by an event (it came later).
    if (!(await until(t0 - 500, ctx.signal))) return;
    let lost = 0;
    for (const u of watchList) {
      if (seenOnline.has(u)) continue;
      lost++;
      diag(`ramp: user #${index} never learnt that contact #${data.users.indexOf(u)} came online`);
    }
    rampLost.add(lost);
    check(lost, { 'every contact seen online after the ramp': (v) => v === 0 });
    if (!(await until(t0, ctx.signal))) return;
    if (iFlap) {
      disconnectSkew.add(Date.now() - t0);
      await client.close();
      if (!(await until(reconnectAt, ctx.signal))) return;
      const tr = Date.now();
      reconnectSkew.add(tr - reconnectAt);
      try {
        client = await open(true);
        reconnectTime.add(Date.now() - tr);
        flaps.add(1);
        check(true, { 'reconnected': (v) => v });
      } catch (err) {
        check(err, { 'reconnected': () => false });
        return;
      }
    }

    if (!(await until(countAt, ctx.signal))) return;
    let expected = 0;
    let missing = 0;
    let dup = 0;
    for (const [user, flapping] of watched) {
      if (!flapping) continue;
      const g = got.get(user) ?? { off: 0, on: 0, misordered: false };
      // A flapping watcher was away when the offline events went out.
      const wantOff = iFlap ? 0 : 1;
      // ... and its re-subscription may already have reported the contact back online.
      const wantOn = iFlap && onlineAtResub.has(user) && g.on === 0 ? 0 : 1;
      expected += wantOff + wantOn;
      const miss = Math.max(0, wantOff - g.off) + Math.max(0, wantOn - g.on);
      missing += miss;
      if (miss > 0) {
        diag(`missing: user #${index}${iFlap ? ' (flapped)' : ''} watching #${data.users.indexOf(user)}: ` +
          `want offline ${wantOff} online ${wantOn}, got offline ${g.off} online ${g.on}`);
      }
      dup += Math.max(0, g.off - 1) + Math.max(0, g.on - 1);
      if (g.misordered) misordered.add(1);
    }
    expectedEvents.add(expected);
    missingEvents.add(missing);
    duplicateEvents.add(dup);
    check(missing, { 'every presence change announced': (v) => v === 0 });
    check(dup, { 'no presence change announced twice': (v) => v === 0 });
    await until(t0 + (DRAIN_SECONDS + CHECK_SLACK_SECONDS) * 1000, ctx.signal);
  } finally {
    await client.close();
  }
}
