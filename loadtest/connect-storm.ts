// connect-storm: N users connect at once (WebSocket open → hello → welcome → replay → synced), as
// fast as the server lets them. Trend time_to_synced, Counter connections (its rate over the timed
// part is the connection rate). Every VU keeps its connection until all VUs (in every generator)
// have connected, so the server holds all N at the end of the timed part: the runner's SERVER
// section shows its own count then (connectionsAtEndOfTimedPart).
//
//   npm run loadtest -- loadtest/connect-storm.ts --spawn --vus 2000
import { WebSocket } from 'ws';
import { ParleyClient } from '../client/index.js';
import { Counter, Trend, check, createUsers, now, withTimeout, type LoadUser, type Options, type SetupEnv, type VuContext } from './k6/index.js';

export const options: Options = {
  scenarios: {
    storm: { executor: 'per-vu-iterations', vus: 1000, iterations: 1, maxDuration: '60s', gracefulStop: '5s' },
  },
  thresholds: {
    time_to_synced: ['p(99)<10000'],
    checks: ['rate>0.999'],
    connections: ['count>0'],
  },
  setupTimeout: '600s',
};

const timeToSynced = new Trend('time_to_synced');
const connections = new Counter('connections');

interface Data {
  users: LoadUser[];
}

export async function setup(env: SetupEnv): Promise<Data> {
  const users = await createUsers(env.base, { count: env.vus, prefix: 's', concurrency: 16, log: (m) => console.error(`setup: ${m}`) });
  return { users };
}

const clients = new Map<number, ParleyClient>();
export default async function (ctx: VuContext): Promise<void> {
  const me = (ctx.data as Data).users[ctx.vu - 1]!;
  const t0 = now();
  const client = new ParleyClient({ url: ctx.url, token: me.token, WebSocket, reconnect: false, requestTimeoutMs: 30_000 });
  client.on('error', () => undefined);
  clients.set(ctx.vu, client);
  ctx.signal.addEventListener(
    'abort',
    () => {
      clients.delete(ctx.vu);
      void client.close();
    },
    { once: true },
  );
  let ok = false;
  try {
    const r = await withTimeout(client.connect(), 30_000, 'connect');
    ok = typeof r.u === 'number' && r.user === me.user;
    timeToSynced.add(now() - t0);
    connections.add(1);
  } finally {
    check(ok, { 'synced as the right user': (x) => x });
  }
}
