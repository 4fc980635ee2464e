// The web app tells people why something did not work (issue 15): a rate limit with the wait
// (the server's 429 and Retry-After, here on repeated wrong passwords), and being offline.
// Its own server, with rate limits on. Needs Chromium at /usr/bin/chromium (skipped without it).
import { existsSync } from 'node:fs';
import t from 'tap';
import { parseWindows } from '../src/limits/rate-limiter.js';
import { startTestServer } from './helpers/server.js';
import { CHROMIUM, ensureWebAppBuilt, launchChromium, signUp } from './helpers/web-app.js';

if (!existsSync(CHROMIUM)) {
  t.plan(0, `skipped: Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium): the web app was not tried in a browser`);
} else {
  ensureWebAppBuilt();
  const s = await startTestServer(t, { rateLimits: 'on', rlLoginFailuresPerUsername: parseWindows('1/m'), rlRegisterPerIp: parseWindows('100/m'), rlLoginPerIp: parseWindows('100/m') });
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
