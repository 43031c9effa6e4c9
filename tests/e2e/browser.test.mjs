// A real headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) goes through
// what the demo tells a person to do: log in, end the IdP session from a second tab, reload the
// app tab, and land on the IdP's login form. On failure a screenshot of each tab is written to
// a temporary directory (its path is in the error).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { chromium } from 'playwright-core';

import { startStack, waitFor, withDiagnostics } from './lib/stack.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // nothing but loopback exists here: fail other host names at once (the IdP's dev pages
  // @import a web font) instead of waiting for DNS
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost',
];

let stack;
let context;
let profileDir;
before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (scripts/e2e.sh does)`);
  stack = await startStack({ wasm: true, keySource: process.env.E2E_KEY_SOURCE ?? 'jwks_uri', name: 'browser' });
  profileDir = mkdtempSync(join(tmpdir(), 'bcl-e2e-chromium-'));
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30000,
  });
  context.setDefaultTimeout(15000);
});
after(async () => {
  await context?.close().catch(() => {});
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  await stack?.stop({ keep: stack?.failed });
});

async function screenshotsOnFailure(fn) {
  try {
    return await fn();
  } catch (err) {
    const dir = mkdtempSync(join(tmpdir(), 'bcl-e2e-screenshots-'));
    const shots = [];
    for (const [i, page] of context.pages().entries()) {
      const file = join(dir, `tab-${i + 1}.png`);
      try {
        await page.screenshot({ path: file, fullPage: true });
        shots.push(`${file} (${page.url()})`);
      } catch { /* page gone */ }
    }
    err.message = `${err.message}\nscreenshots: ${shots.join(', ') || 'none'}`;
    throw err;
  }
}

test('Chromium: log in, end the IdP session from a second tab, reload: the IdP login page', () => withDiagnostics(stack, () => screenshotsOnFailure(async () => {
  const page = context.pages()[0] ?? await context.newPage();

  // 1. Open the app: Envoy sends the browser to the IdP's login form.
  await page.goto(`${stack.base}/`);
  await page.waitForURL(/\/interaction\//);
  assert.ok(page.url().startsWith(stack.issuer), page.url());
  await page.fill('input[name="login"]', 'grace');
  await page.fill('input[name="password"]', 'secret');
  await Promise.all([
    page.waitForURL(`${stack.base}/`),
    page.click('button[type="submit"]'),
  ]);
  assert.equal(await page.textContent('#who'), 'grace');
  const sid = await page.textContent('#sid');
  assert.ok(sid, 'the app shows the session id');
  const envoyCookies = (await context.cookies(stack.base)).map((c) => c.name);
  assert.ok(envoyCookies.includes('IdToken'), `Envoy's cookies kept by Chromium over http://127.0.0.1: ${envoyCookies}`);

  // 2. "End this IdP session from another tab", then "Yes, sign me out".
  const eventsBefore = stack.idp.events.length;
  const [tab2] = await Promise.all([
    context.waitForEvent('page'),
    page.click('#logout-elsewhere'),
  ]);
  await tab2.waitForLoadState('domcontentloaded');
  await tab2.waitForSelector('#logout-yes');
  assert.equal(await tab2.textContent('#idp-account'), 'grace');
  await Promise.all([
    tab2.waitForSelector('#signed-out'),
    tab2.click('#logout-yes'),
  ]);
  const bc = stack.idp.events.slice(eventsBefore).filter((e) => e.event.startsWith('backchannel.'));
  assert.deepEqual(bc.map((e) => [e.event, e.sid]), [['backchannel.success', sid]], JSON.stringify(bc));
  // The app tab still holds Envoy's cookies: only the back-channel call told Envoy.
  assert.ok((await context.cookies(stack.base)).some((c) => c.name === 'IdToken'));

  // 3. Reload the app tab: the filter refuses the revoked session, clears the cookies, and the
  //    browser ends on the IdP's login form.
  const graceRequests = stack.appRequests((r) => r.sub === 'grace').length;
  await page.bringToFront();
  await Promise.all([
    page.waitForURL(/\/interaction\//),
    page.reload(),
  ]);
  await page.waitForSelector('input[name="login"]');
  assert.ok(page.url().startsWith(`${stack.issuer}/interaction/`), page.url());
  assert.equal((await page.textContent('h1'))?.trim(), 'Sign-in');
  assert.ok(await page.isVisible('input[name="password"]'));
  assert.equal(stack.appRequests((r) => r.sub === 'grace').length, graceRequests, 'the app did not see the reload');
  const left = (await context.cookies(stack.base)).map((c) => c.name);
  for (const name of ['IdToken', 'BearerToken', 'OauthHMAC']) {
    assert.ok(!left.includes(name), `${name} cleared, cookies now: ${left}`);
  }
  await waitFor('session.revoked counter', async () => (await stack.stat('wasmcustom.bcl.session.revoked')) >= 1);

  // 4. Logging in again works.
  await page.fill('input[name="login"]', 'grace');
  await page.fill('input[name="password"]', 'secret');
  await Promise.all([page.waitForURL(`${stack.base}/`), page.click('button[type="submit"]')]);
  assert.equal(await page.textContent('#who'), 'grace');
  assert.notEqual(await page.textContent('#sid'), sid, 'a new IdP session');
})));
