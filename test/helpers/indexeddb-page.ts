// The page of test/sdk-indexeddb.test.ts, bundled by esbuild for Chromium: the SDK with
// IndexedDbPersistence against the real server, driven from the test through `window.sdk`.
import { IndexedDbPersistence, ParleyClient, type AnyServerEvent } from '../../client/index.js';
import { persistenceContract } from './persistence-contract.js';

let client: ParleyClient | undefined;
const durable: AnyServerEvent[] = [];

const sdk = {
  /** The adapter contract on IndexedDB, each case in a database of its own. */
  async contract(): Promise<Array<{ ok: boolean; name: string; detail?: unknown }>> {
    const results: Array<{ ok: boolean; name: string; detail?: unknown }> = [];
    let n = 0;
    await persistenceContract(
      async (bounds) => {
        const name = `contract-${n++}`;
        await new IndexedDbPersistence({ name }).destroy(); // start empty even if a run before left it
        return new IndexedDbPersistence({ ...bounds, name });
      },
      (ok, name, detail) => results.push({ ok, name, detail: detail === undefined ? undefined : JSON.parse(JSON.stringify(detail)) }),
    );
    return results;
  },
  /** A client with the page's IndexedDB store; resolves once it is live (after the replay). */
  async start(url: string, token: string): Promise<{ lastU: number }> {
    client = new ParleyClient({ url, token, persistence: new IndexedDbPersistence({ name: 'parley-test' }), reconnect: false });
    client.on('event', (e) => {
      if (typeof e.u === 'number') durable.push(e);
    });
    await client.connect();
    return { lastU: client.lastU };
  },
  /** What the page would show at once, before or after connecting. */
  async cached(url: string, token: string, thread: string): Promise<string[]> {
    const c = client ?? new ParleyClient({ url, token, persistence: new IndexedDbPersistence({ name: 'parley-test' }), reconnect: false });
    return (await c.cachedHistory(thread)).map((m) => m.body ?? '');
  },
  durable(): Array<{ t: string; u: number; body?: string }> {
    return durable.map((e) => ({ t: e.t, u: e.u as number, body: (e as { body?: string }).body }));
  },
  /** Closes the client (its acks and the store's last batch written). */
  async stop(): Promise<number> {
    const c = client!;
    await c.close();
    return c.lastU;
  },
};

(globalThis as unknown as { sdk: typeof sdk }).sdk = sdk;
