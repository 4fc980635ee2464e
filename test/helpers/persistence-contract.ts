// The persistence adapter contract (client/persistence.ts) as one suite run against every adapter:
// MemoryPersistence in Node (test/sdk-persistence.test.ts) and IndexedDbPersistence in Chromium
// (test/sdk-indexeddb.test.ts bundles this file into its page). No test framework here: results
// go to `check`, so the same code runs in a browser.
import type { CacheBounds, Msg, Persistence, PersistenceBatch } from '../../client/index.js';

export type Check = (ok: boolean, name: string, detail?: unknown) => void;
export type MakeAdapter = (bounds: CacheBounds) => Promise<Persistence>;

const msg = (thread: string, seq: number, extra: Partial<Msg> = {}): Msg => ({
  thread, seq, id: `m${thread}${seq}`, from: 'u1', device: 'd1', body: `${thread}#${seq}`, ts: 1_000 + seq, ...extra,
});
const batch = (b: Partial<PersistenceBatch>): PersistenceBatch => ({ messages: [], patches: [], removed: [], ...b });
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const seqs = (ms: Msg[]) => ms.map((m) => m.seq);

export async function persistenceContract(make: MakeAdapter, check: Check): Promise<void> {
  {
    const p = await make({});
    check((await p.loadCursor()) === undefined, 'empty: no cursor');
    check(same(await p.loadHistory('t', 10), []), 'empty: no history');
    await p.close?.();
  }
  {
    const p = await make({});
    const cursor = { user: 'u1', device: 'd1', epoch: 'e1', lastU: 7 };
    await p.write(batch({ cursor, messages: [msg('t', 1), msg('t', 2), msg('t', 3), msg('x', 1)] }));
    check(same(await p.loadCursor(), cursor), 'the cursor is stored', await p.loadCursor());
    check(same(seqs(await p.loadHistory('t', 10)), [3, 2, 1]), 'history newest first');
    check(same(seqs(await p.loadHistory('t', 2)), [3, 2]), 'history at most limit');
    check(same(await p.loadHistory('t', 1), [msg('t', 3)]), 'messages come back as stored');
    check(same(seqs(await p.loadHistory('x', 10)), [1]), 'threads are apart');
    await p.write(batch({ cursor: { ...cursor, lastU: 9 } }));
    check((await p.loadCursor())?.lastU === 9, 'a later cursor replaces it');
    await p.write(batch({ cursor: { ...cursor, lastU: 8 } }));
    check((await p.loadCursor())?.lastU === 9, 'a lower cursor of the same device and epoch does not pull it back');
    await p.write(batch({ cursor: { ...cursor, epoch: 'e2', lastU: 2 } }));
    check(same(await p.loadCursor(), { ...cursor, epoch: 'e2', lastU: 2 }), 'a cursor of another epoch replaces it');
    await p.write(batch({ messages: [msg('t', 2, { body: 'again' })] }));
    check((await p.loadHistory('t', 10))[1]?.body === 'again', 'a message stored again replaces the copy');
    await p.close?.();
  }
  {
    const p = await make({});
    await p.write(batch({ messages: [msg('t', 1, { media: { id: 'md', mime: 'image/png', size: 1, sha256: 'a'.repeat(64) } }), msg('t', 2)] }));
    await p.write(batch({
      patches: [
        { thread: 't', seq: 2, set: { body: 'edited', edited: 5 } },
        { thread: 't', seq: 1, set: { deleted: 6 }, unset: ['body', 'media'] },
        { thread: 't', seq: 99, set: { body: 'ghost' } },
      ],
    }));
    const [two, one] = await p.loadHistory('t', 10);
    check(two?.body === 'edited' && two?.edited === 5, 'a patch sets fields', two);
    check(one?.deleted === 6 && one?.body === undefined && one?.media === undefined, 'a patch unsets fields', one);
    check(same(seqs(await p.loadHistory('t', 10)), [2, 1]), 'a patch of a message not stored is ignored');
    await p.write(batch({ removed: [{ thread: 't', seq: 2 }] }));
    check(same(seqs(await p.loadHistory('t', 10)), [1]), 'removed messages are gone');
    await p.close?.();
  }
  {
    const p = await make({ maxPerThread: 3 });
    await p.write(batch({ messages: [1, 2, 3, 4, 5].map((n) => msg('t', n)) }));
    check(same(seqs(await p.loadHistory('t', 10)), [5, 4, 3]), 'maxPerThread: the newest kept', seqs(await p.loadHistory('t', 10)));
    await p.write(batch({ messages: [msg('t', 7), msg('t', 6)] }));
    check(same(seqs(await p.loadHistory('t', 10)), [7, 6, 5]), 'maxPerThread: older ones go as newer arrive');
    await p.close?.();
  }
  {
    const p = await make({ maxThreads: 2 });
    await p.write(batch({ messages: [msg('a', 1, { ts: 10 }), msg('b', 1, { ts: 20 })] }));
    await p.write(batch({ messages: [msg('c', 1, { ts: 30 })] }));
    check(same(await p.loadHistory('a', 10), []), 'maxThreads: the thread with the oldest newest message goes');
    check((await p.loadHistory('b', 10)).length === 1 && (await p.loadHistory('c', 10)).length === 1, 'maxThreads: the others stay');
    await p.close?.();
  }
  {
    const p = await make({});
    await p.write(batch({ cursor: { user: 'u1', device: 'd1', epoch: 'e1', lastU: 3 }, messages: [msg('t', 1)] }));
    await p.write(batch({ clear: true, messages: [msg('y', 1)] }));
    check((await p.loadCursor()) === undefined, 'clear: the cursor is gone');
    check(same(await p.loadHistory('t', 10), []), 'clear: old messages are gone');
    check(same(seqs(await p.loadHistory('y', 10)), [1]), 'clear: then the rest of the batch applies');
    await p.close?.();
  }
}
