// The SDK's session surface (docs/sdk.md "Calls", "Events"): the 'state' event a reconnecting
// banner follows, pendingSends() for messages not yet answered, and next()'s timeout.
import t from 'tap';
import WebSocket from 'ws';
import { MemoryPersistence, type ClientState, type PersistedCursor, type Persistence } from '../client/index.js';
import { disconnectUser, startSdkTestServer } from './helpers/sdk-server.js';
import { client, connect, newDevice, newUser } from './helpers/server.js';

const s = await startSdkTestServer(t);

t.test("'state' events: connecting, syncing, live; again after a drop; closed", async (t) => {
  const ann = await newUser(s, 'ann');
  const c = client(t, s, await newDevice(s, ann), { reconnect: { minMs: 10, maxMs: 50 } });
  const states: ClientState[] = [];
  c.on('state', (st) => states.push(st));
  await c.connect();
  t.same(states, ['connecting', 'syncing', 'live']);
  states.length = 0;
  const back = c.next('state', (st) => st === 'live', 10_000);
  await disconnectUser(s, ann.user);
  await back;
  t.same(states, ['connecting', 'syncing', 'live'], 'a drop: connecting (show the banner) until live again');
  await c.close();
  t.same(states.at(-1), 'closed');
});

t.test('pendingSends lists sends not yet answered; they go once connected', async (t) => {
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const c = client(t, s, await newDevice(s, ann));
  const sent = c.send({ to: bob.user, body: 'written offline', cid: 'offline-1' });
  t.same(c.pendingSends(), [{ cid: 'offline-1', t: 'send', params: { to: bob.user, body: 'written offline', cid: 'offline-1' } }]);
  await c.connect();
  t.match(await sent, { cid: 'offline-1', seq: 1 });
  t.same(c.pendingSends(), [], 'answered: no longer pending');
});

t.test('next() rejects with timeout when nothing comes', async (t) => {
  const c = await connect(t, s, await newDevice(s, await newUser(s, 'ann')));
  await t.rejects(c.next('msg', undefined, 50), { code: 'timeout' });
});

t.test('close() and connect() again while the stored cursor is being read: one socket, not two', async (t) => {
  const ann = await newUser(s, 'ann');
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const store = new MemoryPersistence();
  const slowStore: Persistence = {
    loadCursor: async (): Promise<PersistedCursor | undefined> => {
      await gate;
      return store.loadCursor();
    },
    loadHistory: (thread, limit) => store.loadHistory(thread, limit),
    write: (batch) => store.write(batch),
  };
  let sockets = 0;
  class CountingWebSocket extends WebSocket {
    constructor(url: string) {
      super(url);
      sockets++;
    }
  }
  const c = client(t, s, await newDevice(s, ann), { persistence: slowStore, WebSocket: CountingWebSocket });
  const first = c.connect();
  await c.close();
  await t.rejects(first, { code: 'unavailable' }, 'the first connect ends with the close');
  const second = c.connect();
  release();
  await second;
  t.equal(sockets, 1, 'one socket made');
  t.equal(await disconnectUser(s, ann.user), 1, 'one socket open');
});
