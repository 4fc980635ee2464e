// The built web app for tests: `npm test` builds it with `npm run build` (into dist/web); a
// build into another outDir (dist-test/) gets it built here, once, before any server starts.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The web app's files next to the compiled server: what src/gateway/web-app-routes.ts serves. */
export const WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url));
const BUILD_SCRIPT = fileURLToPath(new URL('../../../web/build.mjs', import.meta.url));
const WEB_SOURCES = fileURLToPath(new URL('../../../web/', import.meta.url));
const SDK_SOURCES = fileURLToPath(new URL('../../../client/', import.meta.url));

/** The newest modification time of a source tree (web/ and client/: what the bundle is made of). */
function newest(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n = Math.max(n, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return n;
}

/** Builds the app when it is missing or older than its sources (a stale build would test old code). */
export function ensureWebAppBuilt(): string {
  const index = `${WEB_DIR}index.html`;
  if (!existsSync(index) || statSync(index).mtimeMs < Math.max(newest(WEB_SOURCES), newest(SDK_SOURCES))) {
    const r = spawnSync(process.execPath, [BUILD_SCRIPT, WEB_DIR], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`building the web app failed: ${r.stderr || r.stdout}`);
  }
  return WEB_DIR;
}

export const CHROMIUM = '/usr/bin/chromium';
/** Screenshots of the browser tests: kept (gitignored) for a person to look at. */
export const ARTIFACTS = fileURLToPath(new URL('../../../test-artifacts/web-app/', import.meta.url));

export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
}
type Browser = Awaited<ReturnType<typeof launchChromium>>;
type Page = Awaited<ReturnType<Browser['newPage']>>;

export interface Person { page: Page; username: string; password: string; name: string; problems: string[] }

type Context = Awaited<ReturnType<Browser['newContext']>>;

/**
 * A person in a browser context of their own, signed up and signed in through the app's forms.
 * `prepare` runs on the context before its first page loads (permissions, init scripts).
 */
export async function signUp(browser: Browser, base: string, username: string, name: string, device = 'Test browser', prepare?: (context: Context) => Promise<void>): Promise<Person> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  await prepare?.(context);
  const page = await context.newPage();
  const problems = watchProblems(page);
  await page.goto(base);
  await page.getByRole('button', { name: 'Create an account', exact: true }).click();
  const password = 'correct horse battery';
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByLabel('Display name (optional)').fill(name);
  await page.getByLabel("This device's name").fill(device);
  await page.getByRole('button', { name: 'Create account', exact: true }).click();
  await page.getByRole('button', { name: 'Sign out', exact: true }).waitFor();
  return { page, username, password, name, problems };
}

/** The same person on another device: a new context, the sign-in form. */
export async function signIn(browser: Browser, base: string, who: { username: string; password: string; name: string }, device: string): Promise<Person> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  const problems = watchProblems(page);
  await page.goto(base);
  await page.getByLabel('Username').fill(who.username);
  await page.getByLabel('Password').fill(who.password);
  await page.getByLabel("This device's name").fill(device);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('button', { name: 'Sign out', exact: true }).waitFor();
  return { page, username: who.username, password: who.password, name: who.name, problems };
}

function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  return problems;
}

/** Opens (or starts) the 1:1 chat with a username from the "New chat" form. */
export async function chatWith(p: Person, username: string): Promise<void> {
  await p.page.getByRole('link', { name: 'New chat', exact: true }).click();
  await p.page.getByLabel('Username').fill(username);
  await p.page.getByRole('button', { name: 'Start chat', exact: true }).click();
}

/** Types and sends a message with Enter. */
export async function say(p: Person, text: string): Promise<void> {
  const box = p.page.getByLabel('Message', { exact: true });
  await box.fill(text);
  await box.press('Enter');
}

/** The message bubble holding `text` (mine or theirs). */
export function bubble(p: Person, text: string, whose: 'mine' | 'theirs' = 'theirs') {
  return p.page.locator(`.messages li.msg.${whose}`, { hasText: text });
}

/** Waits until my message `text` shows the tick `tick` (pending, sent, delivered, read, failed). */
export async function tickIs(p: Person, text: string, tick: string, timeout = 15_000): Promise<void> {
  await p.page.locator(`.messages li.msg.mine[data-tick="${tick}"]`, { hasText: text }).waitFor({ timeout });
}

/** The inbox row whose title is `title` exactly. */
export function inboxRow(p: Person, title: string) {
  return p.page.locator('.inbox li.row').filter({ has: p.page.locator('.title', { hasText: new RegExp(`^${title}( · muted)?$`) }) });
}
