// GET /admin in headless Chromium (issue 12): the page loads without page or console errors, draws
// its plots and shows the figures of now; a screenshot is left in a temp file. Needs Chromium at
// /usr/bin/chromium (apt-get install -y chromium): skipped with a message without it.
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { freePort } from './helpers/child-server.js';
import { connect, newDevice, newUser, startTestServer, type TestServer } from './helpers/server.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'admin-token-for-tests-0123456789abcdef';

async function traffic(t: Test, s: TestServer) {
  const a = await connect(t, s, await newDevice(s, await newUser(s, 'ann')));
  const bob = await newUser(s, 'bob');
  for (let i = 0; i < 10; i++) await a.send({ to: bob.user, body: `m${i}` });
}

async function look(t: Test, url: string, token?: string) {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  if (token) await page.addInitScript((tok) => sessionStorage.setItem('parleyAdminToken', tok), token);
  await page.goto(url);
  // The plots are made one after the other as their series arrive: wait for all five.
  await page.waitForFunction(() => document.querySelectorAll('#plots canvas').length >= 6, undefined, { timeout: 15_000 });
  t.pass('a canvas per plot');
  // The figures of now: a connection is open, so the number shows once its first second closed.
  await page.waitForFunction(() => Number(document.getElementById('n-connections')?.textContent) >= 1, undefined, { timeout: 15_000 });
  await page.waitForFunction(() => document.getElementById('n-send_p99_ms')?.textContent !== '–', undefined, { timeout: 15_000 });
  t.equal(await page.locator('#status').textContent(), '', 'no error shown');
  const shot = join(mkdtempSync(join(tmpdir(), 'parley-dashboard-')), 'admin.png');
  await page.screenshot({ path: shot, fullPage: true });
  t.ok(statSync(shot).size > 10_000, `screenshot in ${shot}`);
  t.same(problems, [], 'no page or console errors');
}

if (!existsSync(CHROMIUM)) {
  t.plan(0, `skipped: Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium): the dashboard was not looked at`);
} else {
  t.test('the admin port: /admin renders its plots and numbers', async (t) => {
    const adminPort = await freePort();
    const s = await startTestServer(t, { adminPort });
    await traffic(t, s);
    await look(t, `http://127.0.0.1:${adminPort}/admin`);
  });

  t.test('the main port with ADMIN_TOKEN: the page asks the series with the token kept in sessionStorage', async (t) => {
    const s = await startTestServer(t, { adminToken: TOKEN });
    await traffic(t, s);
    await look(t, `${s.base}/admin`, TOKEN);
  });
}
