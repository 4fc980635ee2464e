// The web app starts without the server (issue 15): its service worker cached the app shell on the
// first visit; after the server stops, a reload still shows the app, the inbox and the history
// from IndexedDB, with the reconnecting banner. Needs Chromium at /usr/bin/chromium (skipped without it).
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startChildServer } from './helpers/child-server.js';
import { ARTIFACTS, bubble, chatWith, CHROMIUM, ensureWebAppBuilt, inboxRow, launchChromium, say, signUp, tickIs } from './helpers/web-app.js';
import { register } from '../client/index.js';

if (!existsSync(CHROMIUM)) {
  t.plan(0, `skipped: Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium): the web app was not tried in a browser`);
} else {
  t.test('reloaded with the server stopped: the cached app, inbox and history, and the banner', async (t) => {
    ensureWebAppBuilt();
    mkdirSync(ARTIFACTS, { recursive: true });
    // A server process of its own: stopping it closes its port (the in-process test server's
    // stop() leaves the HTTP listener answering).
    const dataDir = mkdtempSync(join(tmpdir(), 'parley-web-offline-'));
    t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
    const s = await startChildServer(dataDir);
    t.teardown(() => { s.proc.kill('SIGKILL'); });
    const browser = await launchChromium();
    t.teardown(() => browser.close());
    await register(s.base, { username: 'bob', password: 'correct horse battery', name: 'Bob' });
    const ann = await signUp(browser, s.base, 'ann', 'Ann');
    const page = ann.page;
    await chatWith(ann, 'bob');
    await say(ann, 'written before the outage');
    await page.waitForURL(/#\/t\//);
    await tickIs(ann, 'written before the outage', 'sent');

    // The worker controls the page once it has cached the shell (install) and taken over (activate).
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null);
    t.match(await page.evaluate(() => caches.keys()), [/^parley-shell-/], 'the shell is cached');
    // What the screen showed is in IndexedDB (web/src/history-cache.ts writes it soon after a change).
    const cached = () => page.evaluate(() => new Promise<boolean>((resolve) => {
      const open = indexedDB.open('parley-web');
      open.onsuccess = () => {
        const all = open.result.transaction('screens', 'readonly').objectStore('screens').getAll();
        // In the thread's cached page (not only as the inbox row's last message).
        all.onsuccess = () => resolve((all.result as { messages: Record<string, { body?: string }[]> }[]).some((screen) =>
          Object.values(screen.messages).some((list) => list.some((m) => m.body === 'written before the outage'))));
        all.onerror = () => resolve(false);
      };
      open.onerror = () => resolve(false);
    }));
    for (const end = Date.now() + 15_000; !(await cached());) {
      if (Date.now() > end) throw new Error('the history was not written to IndexedDB within 15 s');
      await new Promise((r) => setTimeout(r, 50));
    }

    s.proc.kill('SIGTERM');
    t.equal((await s.exited).code, 0, 'the server stopped');
    await t.rejects(fetch(s.base, { headers: { connection: 'close' } }), 'nothing answers on its port');
    await page.locator('.banner[data-conn="reconnecting"]').waitFor();
    t.pass('the open page: reconnecting');

    await page.reload();
    await page.getByRole('button', { name: 'Sign out', exact: true }).waitFor();
    t.pass('the app started from the cache');
    await inboxRow(ann, 'Bob').waitFor();
    t.pass('the inbox from IndexedDB');
    await bubble(ann, 'written before the outage', 'mine').waitFor();
    t.pass('the history from IndexedDB');
    await page.locator('.banner[data-conn="reconnecting"]', { hasText: 'reconnecting' }).waitFor();
    t.pass('the banner says it is reconnecting');
    await page.screenshot({ path: join(ARTIFACTS, '30-offline-start.png') });
    t.same(ann.problems.filter((p) => !/WebSocket.*ERR_CONNECTION_REFUSED/.test(p)), [], 'no page errors (beyond the refused connections)');
  });
}
