// The web app across a server restart (issue 15): two people mid-conversation in Chromium; the
// server (a child process) stops; both see the reconnecting banner; a message written meanwhile
// waits as pending in the SDK's outbox; the server comes back on the same port and data
// directory; the message goes out once, the ticks move on, and after a reload every message is
// there exactly once, in order. Needs Chromium at /usr/bin/chromium (skipped without it).
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freePort, startChildServer, type ChildServer } from './helpers/child-server.js';
import { ARTIFACTS, bubble, chatWith, CHROMIUM, ensureWebAppBuilt, inboxRow, launchChromium, say, signUp, tickIs } from './helpers/web-app.js';

if (!existsSync(CHROMIUM)) {
  t.plan(0, `skipped: Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium): the web app was not tried in a browser`);
} else {
  t.test('stopped and restarted mid-conversation: nothing lost, nothing twice', async (t) => {
    ensureWebAppBuilt();
    mkdirSync(ARTIFACTS, { recursive: true });
    const dataDir = mkdtempSync(join(tmpdir(), 'parley-web-restart-'));
    t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
    const port = await freePort();
    const env = { PORT: String(port) };
    let server: ChildServer = await startChildServer(dataDir, env);
    t.teardown(() => { server.proc.kill('SIGKILL'); });
    const browser = await launchChromium();
    t.teardown(() => browser.close());

    const ann = await signUp(browser, server.base, 'ann', 'Ann');
    const bob = await signUp(browser, server.base, 'bob', 'Bob');
    await chatWith(ann, 'bob');
    await say(ann, 'before the restart');
    await ann.page.waitForURL(/#\/t\//);
    await inboxRow(bob, 'Ann').getByRole('link').click();
    await bubble(bob, 'before the restart').waitFor();
    await tickIs(ann, 'before the restart', 'read');
    t.pass('talking before the restart');

    server.proc.kill('SIGTERM');
    const exit = await server.exited;
    t.equal(exit.code, 0, 'the server stopped cleanly');
    for (const p of [ann, bob]) await p.page.locator('.banner[data-conn="reconnecting"]', { hasText: 'reconnecting' }).waitFor();
    t.pass('both see the reconnecting banner');

    await say(ann, 'written while the server was down');
    await tickIs(ann, 'written while the server was down', 'pending');
    t.pass('waiting in the outbox: pending (○)');
    await ann.page.screenshot({ path: join(ARTIFACTS, '10-restart-pending.png') });

    server = await startChildServer(dataDir, env);
    t.equal(server.port, port, 'back on the same port');
    await bubble(bob, 'written while the server was down').waitFor({ timeout: 60_000 });
    t.pass('the waiting message arrived after the restart');
    await tickIs(ann, 'written while the server was down', 'read', 30_000);
    t.pass('and was read');
    for (const p of [ann, bob]) await p.page.locator('.banner[data-conn="live"]').waitFor({ state: 'attached' });
    t.pass('the banner is gone');

    await say(bob, 'after the restart');
    await bubble(ann, 'after the restart').waitFor();

    const expected = ['before the restart', 'written while the server was down', 'after the restart'];
    for (const p of [ann, bob]) {
      await p.page.reload();
      await p.page.locator('.messages li.msg', { hasText: 'after the restart' }).waitFor();
      const bodies = await p.page.locator('.messages li.msg .body').allTextContents();
      t.same(bodies, expected, `${p.username}: every message once, in order, after a reload`);
    }
    await ann.page.screenshot({ path: join(ARTIFACTS, '11-restart-after.png') });
    t.same([...ann.problems, ...bob.problems].filter((p) => !/WebSocket|ERR_CONNECTION_REFUSED/.test(p)), [], 'no page errors (beyond the refused connections of the outage)');
  });
}
