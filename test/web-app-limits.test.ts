// The web app tells people why something did not work (issue 15): a rate limit with the wait
// (the server's 429 and Retry-After, here on repeated wrong passwords; a send answered
// rate_limited, on the message itself while the SDK waits to send it again), and being offline.
// Its own server, with rate limits on. Needs Chromium at /usr/bin/chromium (skipped without it).
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseWindows } from '../src/limits/rate-limiter.js';
import { startTestServer } from './helpers/server.js';
import { ARTIFACTS, chatWith, CHROMIUM, ensureWebAppBuilt, launchChromium, say, signUp, tickIs } from './helpers/web-app.js';
import { register } from '../client/index.js';

if (!existsSync(CHROMIUM)) {
  t.plan(0, `skipped: Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium): the web app was not tried in a browser`);
} else {
  ensureWebAppBuilt();
  const s = await startTestServer(t, { rateLimits: 'on', rlLoginFailuresPerUsername: parseWindows('1/m'), rlRegisterPerIp: parseWindows('100/m'), rlLoginPerIp: parseWindows('100/m'), rlSendsPerUser: parseWindows('3/5s') });
  const browser = await launchChromium();
  t.teardown(() => browser.close());

  t.test('too many wrong passwords: the sign-in form says to wait, and for how long', async (t) => {
    const eve = await signUp(browser, s.base, 'eve', 'Eve');
    await eve.page.getByRole('button', { name: 'Sign out', exact: true }).click();
    const page = eve.page;
    await page.getByLabel('Username').fill('eve');
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: 'wrong username or password' }).waitFor();
    t.pass('a wrong password: said so');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    const limited = page.getByRole('alert').filter({ hasText: /too many requests — please wait \d+ seconds?/ });
    await limited.waitFor();
    t.match(await limited.textContent(), /wait (\d{2}|[1-9]) second/, `the wait in words: ${await limited.textContent()}`);
  });

  t.test('sending too fast: the waiting message says for how long, then goes out by itself', async (t) => {
    await register(s.base, { username: 'gus', password: 'correct horse battery', name: 'Gus' });
    const hal = await signUp(browser, s.base, 'hal', 'Hal');
    await chatWith(hal, 'gus');
    await say(hal, 'one');
    await hal.page.waitForURL(/#\/t\//);
    // Three sends per 5 s per user: the fourth and later wait for the server's `retry`.
    for (const body of ['two', 'three', 'four', 'five']) await say(hal, body);
    const waiting = hal.page.locator('.messages li.msg.mine.unsent .waiting');
    await waiting.first().waitFor();
    t.match(await waiting.first().textContent(), /^Too many messages at once — sending again in \d+ s\.$/, `said on the message: ${await waiting.first().textContent()}`);
    mkdirSync(ARTIFACTS, { recursive: true });
    await hal.page.screenshot({ path: join(ARTIFACTS, '40-send-rate-limited.png') });
    for (const body of ['one', 'two', 'three', 'four', 'five']) await tickIs(hal, body, 'sent', 60_000);
    t.equal(await waiting.count(), 0, 'every message went out; nothing waits');
    t.same(await hal.page.locator('.messages li.msg .body').allTextContents(), ['one', 'two', 'three', 'four', 'five'], 'once each, in order');
  });

  t.test('offline: a banner says so, and goes when the network is back', async (t) => {
    const fay = await signUp(browser, s.base, 'fay', 'Fay');
    await fay.page.context().setOffline(true);
    await fay.page.locator('.banner[data-conn="offline"]', { hasText: 'You are offline' }).waitFor();
    t.pass('offline banner');
    await fay.page.context().setOffline(false);
    await fay.page.locator('.banner[data-conn="live"]').waitFor({ state: 'attached' });
    t.pass('gone when back online');
  });
}
