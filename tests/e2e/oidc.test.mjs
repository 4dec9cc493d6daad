// Browser test of "Sign in with <provider>" on the demo page (web/app.js): Debian's Chromium
// clicks the button, signs in at a real OpenID provider (npm oidc-provider, run here on
// BASE+42: tests/e2e/run gives the auth app its settings), consents, and lands back on the
// page signed in as a new account named after the provider's claims; the second time, with
// TOTP turned on for the account, the page asks for the one-time code before signing in.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startProvider } from '../integration/lib/oidcprovider.mjs';
import { totpCode } from '../integration/lib/totp.mjs';

const PORT_BASE = Number(process.env.TH_PORT_BASE || 8080);
const BASE_URL = `http://127.0.0.1:${PORT_BASE}`;
const SHOTS = process.env.TH_E2E_SHOTS || path.join(process.cwd(), 'e2e-shots');
const CHROMIUM = process.env.TH_CHROMIUM || '/usr/bin/chromium';
const T = 20000;

const run = crypto.randomBytes(3).toString('hex');
const sub = `carol-${run}`;
const claims = {
  email: `carol_${run}@example.test`, email_verified: true, preferred_username: `carol_${run}`, name: `Carol ${run}`,
};


let browser;
let idp;
const logs = [];

// From the page's "Sign in with Test IdP" to the provider's pages and back.
async function signInThroughProvider(page) {
  await page.goto(BASE_URL + '/');
  const button = page.locator('#oidc-signin button', { hasText: 'Sign in with Test IdP' });
  await button.waitFor({ timeout: T });
  await button.click();
  await page.waitForURL((u) => u.origin === idp.issuer, { timeout: T });
  // the provider's development login page, then its consent page (skipped once granted)
  const login = page.locator('input[name="login"]');
  await login.waitFor({ timeout: T });
  await login.fill(sub);
  await page.locator('input[name="password"]').fill('any password');
  await page.locator('button[type="submit"]').click();
  await page.waitForURL((u) => u.origin === BASE_URL || /interaction/.test(u.pathname), { timeout: T });
  if (new URL(page.url()).origin !== BASE_URL) {
    await page.locator('button[type="submit"]', { hasText: 'Continue' }).click();
  }
  await page.waitForURL((u) => u.origin === BASE_URL, { timeout: T });
}

describe('sign in with a provider', () => {
  before(async () => {
    idp = await startProvider({ port: PORT_BASE + 42, redirect: `${BASE_URL}/` });
    idp.accounts.set(sub, claims);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  });
  after(async () => {
    if (logs.length) console.log(logs.join('\n'));
    await browser?.close();
    idp?.close();
  });

  it('a new account, then TOTP asked for before the second sign-in completes', async () => {
    const ctx = await browser.newContext();
    let page = await ctx.newPage();
    page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
    await signInThroughProvider(page);
    await page.locator('#app-view').waitFor({ state: 'visible', timeout: T });
    await page.waitForFunction((n) => document.querySelector('#me-name')?.textContent === n, claims.name, { timeout: T });
    // the code and state are gone from the address bar
    assert.equal(new URL(page.url()).search, '');
    await page.screenshot({ path: path.join(SHOTS, 'oidc-1-signed-in.png') });

    // TOTP on, through the page's client
    const secret = await page.evaluate(async () => {
      const { th } = window.townhall;
      return (await th.request('POST', '/api/auth/totp/setup')).secret;
    });
    const t = Date.now() / 1000;
    await page.evaluate(async (code) => {
      await window.townhall.th.request('POST', '/api/auth/totp/enable', { body: { code } });
    }, totpCode(secret, t));
    await page.locator('#logout').click();
    await page.locator('#auth-view').waitFor({ state: 'visible', timeout: T });
    await ctx.close();

    // another browser (the provider asks for the login again; its consent is remembered)
    const ctx2 = await browser.newContext();
    page = await ctx2.newPage();
    page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
    await signInThroughProvider(page);
    const form = page.locator('#oidc-totp-form');
    await form.waitFor({ state: 'visible', timeout: T });
    await page.screenshot({ path: path.join(SHOTS, 'oidc-2-totp.png') });
    await form.locator('input[name="totp"]').fill(totpCode(secret, t + 30)); // the next step: one the enable did not use
    await form.locator('button[type="submit"]').click();
    await page.locator('#app-view').waitFor({ state: 'visible', timeout: T });
    await page.waitForFunction((n) => document.querySelector('#me-name')?.textContent === n, claims.name, { timeout: T });
    await page.screenshot({ path: path.join(SHOTS, 'oidc-3-signed-in-with-code.png') });
    await ctx2.close();
  });
});
