// Presence timing (docs/protocol.md §4): a user is online as soon as a socket is open — answers and
// events alike — and only going offline is debounced, so a quick reconnect is no event at all.
import t from 'tap';
import { PRESENCE_COALESCE_MS } from '../actors/user-actor.js';
import { rawSocket } from './helpers/raw-socket.js';
import { collect, connect, newDevice, newUser, startTestServer } from './helpers/server.js';

/** Node timers round to the millisecond and Date.now() too: the most a timer can seem early. */
const TIMER_SLOP_MS = 3;

t.test('online is immediate: right after connect, presence.sub and contacts.list say online, and the event comes', async (t) => {
  const s = await startTestServer(t, { defaultLastSeen: 'everyone' }); // visibility: privacy-blocks.test.ts
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const annLaptop = await connect(t, s, await newDevice(s, ann, 'laptop'));
  const bobDevice = await newDevice(s, bob);
  await annPhone.request('contacts.add', { user: bob.user });
  t.same((await annPhone.request('presence.sub', { users: [bob.user] })).presence, [{ user: bob.user, online: false, last: 0 }]);

  const event = annPhone.next('presence', (p) => p.user === bob.user && p.online, 10_000);
  const bobPhone = await connect(t, s, bobDevice);
  // No waiting: the very next answers already know.
  const [sub, contacts] = await Promise.all([
    annLaptop.request('presence.sub', { users: [bob.user] }),
    annLaptop.request('contacts.list', {}),
  ]);
  t.match(sub.presence, [{ user: bob.user, online: true }], 'presence.sub right after connect');
  t.match(contacts.contacts, [{ user: bob.user, online: true }], 'contacts.list right after connect');
  t.match(await event, { user: bob.user, online: true }, 'the watcher is told');

  // Coming back after a real offline is just as immediate.
  const offline = annPhone.next('presence', (p) => p.user === bob.user && !p.online, 10_000);
  await bobPhone.close();
  await offline;
  const back = annPhone.next('presence', (p) => p.user === bob.user && p.online, 10_000);
  await connect(t, s, bobDevice);
  t.match((await annLaptop.request('contacts.list', {})).contacts, [{ user: bob.user, online: true }], 'online again at once');
  await back;
});

t.test('offline is debounced: one event after the last socket closes; a reconnect within the debounce is no event', async (t) => {
  const s = await startTestServer(t, { defaultLastSeen: 'everyone' }); // visibility: privacy-blocks.test.ts
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const bobDevice = await newDevice(s, bob);
  const bobPhone = await connect(t, s, bobDevice);
  t.match((await annPhone.request('presence.sub', { users: [bob.user] })).presence, [{ online: true }]);
  const events = collect(annPhone, 'presence');

  // The flap: the new socket is open before the old one closes and says hello right after it,
  // so bob is back well within the debounce.
  const next = await rawSocket(t, s.wsUrl);
  const welcomed = next.next((f) => f.t === 'synced', 10_000);
  const flapAt = Date.now();
  await bobPhone.close(); // resolves after the server's close handler ran (it echoes the close frame)
  next.send({ t: 'hello', token: bobDevice.token });
  await welcomed;
  const flapMs = Date.now() - flapAt;
  // Not synchronisation: this places the final close inside the flap's debounce window, where a
  // debounce counted from the first close would end too early.
  await new Promise((resolve) => setTimeout(resolve, PRESENCE_COALESCE_MS / 2));

  // Barrier: bob's real offline; any event the flap made is pushed to ann before it.
  const closedAt = Date.now();
  const finalOffline = annPhone.next('presence', (p) => p.user === bob.user && !p.online && p.last >= closedAt, 10_000);
  next.ws.close();
  const off = await finalOffline;
  const receivedAt = Date.now();
  if (flapMs < PRESENCE_COALESCE_MS) {
    t.same(events.map((p) => [p.user, p.online]), [[bob.user, false]], `one offline event, none for the flap (back after ${flapMs} ms)`);
  } else {
    t.comment(`the reconnect took ${flapMs} ms, longer than the debounce: the flap part proves nothing this run`);
  }
  t.ok(off.last >= closedAt && off.last - closedAt < 5_000, 'last is when the last socket closed');
  // `last` is the server's time of the last close: the event may not be sent before a full debounce after it.
  const after = receivedAt - off.last;
  t.ok(after >= PRESENCE_COALESCE_MS - TIMER_SLOP_MS, `offline announced a full debounce after the last close (${after} ms)`);
});

t.test('online while any socket is open: closing one of two devices is no event', async (t) => {
  const s = await startTestServer(t, { defaultLastSeen: 'everyone' }); // visibility: privacy-blocks.test.ts
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const bobPhone = await connect(t, s, await newDevice(s, bob));
  const bobLaptop = await connect(t, s, await newDevice(s, bob, 'laptop'));
  await annPhone.request('presence.sub', { users: [bob.user] });
  const events = collect(annPhone, 'presence');
  await bobPhone.close();
  // Barrier: the offline that follows the laptop's close comes after anything the phone's close made.
  const closedAt = Date.now();
  const off = annPhone.next('presence', (p) => p.user === bob.user && !p.online && p.last >= closedAt, 10_000);
  await bobLaptop.close();
  await off;
  t.same(events.map((p) => p.online), [false], 'one event: when the last socket closed');
});
