// Browser test of the demo app's account screens (issue 22 point 7; API.md v1.1 "Account
// lifecycle"): (a) the verify banner and the verification link, then a password reset by
// mail — "Forgot password?", the link read from the stack's SMTP sink ($TH_VAR_DIR/mail),
// the new password works and the old one no longer does; (b) TOTP from the security panel —
// the QR code drawn, the secret read from the page, the code computed here, the recovery
// codes shown once, and the next sign-in asks for a code before it completes. Its own users,
// so it runs beside the other browser tests.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  BASE_URL, T, SHOTS, CHROMIUM, RUN as run, mkUser as mk, newPage as openPage, signUp,
} from './lib/pages.mjs';
import { newestMail, extractLink, mailsFor } from '../integration/lib/mail.mjs';
import { totpCode } from '../integration/lib/totp.mjs';

let browser;
const logs = [];
const shot = (page, name) => page.screenshot({ path: path.join(SHOTS, `account-${name}.png`) });

// The link of the newest mail to address whose link path is linkPath (waits for it).
async function mailedLink(address, linkPath, after = 0) {
  const mail = await newestMail(address, { after, filter: (m) => !!extractLink(m, linkPath) });
  assert.ok(mail, `a mail with a ${linkPath} link reached ${address}`);
  const link = extractLink(mail, linkPath);
  assert.equal(link.origin, BASE_URL, 'the link points at this stack\'s page');
  return link;
}

// Fill and send the sign-in form; resolves once the app shows or an error/code field does.
async function signIn(page, login, password) {
  await page.fill('#signin-form [name=login]', login);
  await page.fill('#signin-form [name=password]', password);
  await page.click('#signin-form button[type=submit]');
}

async function signOut(page) {
  await page.click('#logout');
  await page.waitForSelector('#auth-view:not([hidden])', { timeout: T });
}

describe('account screens in the demo app', { timeout: 240000 }, () => {
  before(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
  });
  after(async () => {
    if (logs.some((l) => l.includes('pageerror'))) console.log(logs.join('\n'));
    await browser?.close();
  });

  it('verify banner and link, then a password reset by mail', async () => {
    const u = mk('rita');
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await openPage(ctx, 'rita', logs);
    await signUp(page, u);

    // not confirmed yet: the banner, and "send again" answers politely
    await page.waitForSelector('#verify-banner:not([hidden])', { timeout: T });
    await page.click('#verify-resend');
    await page.waitForFunction(() => /check your mail|please wait/.test(document.querySelector('#verify-state').textContent), null, { timeout: T });
    await shot(page, '1-verify-banner');

    // the newest link confirms the address (the registration's, and the one sent again)
    const sent = (await page.locator('#verify-state').textContent()).includes('check your mail') ? 2 : 1;
    const verify = await mailedLink(u.email, '/verify-email', sent - 1);
    await page.goto(verify.href);
    await page.waitForSelector('#app-view:not([hidden])', { timeout: T });
    await page.waitForFunction(() => document.querySelector('#toast').textContent.includes('confirmed'), null, { timeout: T });
    assert.equal(new URL(page.url()).search, '', 'the token left the address bar');
    assert.equal(await page.locator('#verify-banner').isHidden(), true);
    const me = await page.evaluate(() => window.townhall.th.me());
    assert.equal(me.email_verified, true);

    // forgot password, from the signed-out page
    await signOut(page);
    const before = mailsFor(u.email).filter((m) => !!extractLink(m, '/reset-password')).length;
    await page.click('#forgot-link');
    await page.waitForSelector('#forgot-form:not([hidden])', { timeout: T });
    await page.fill('#forgot-form [name=email]', u.email);
    await page.click('#forgot-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#auth-note').textContent.includes('check your mail'), null, { timeout: T });
    await shot(page, '2-forgot-sent');

    const reset = await mailedLink(u.email, '/reset-password', before);
    await page.goto(reset.href);
    await page.waitForSelector('#reset-form:not([hidden])', { timeout: T });
    assert.equal(new URL(page.url()).search, '', 'the token left the address bar');
    const newPassword = `new ${run} horse staple`;
    await page.fill('#reset-form [name=password]', newPassword);
    await page.click('#reset-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#auth-note').textContent.includes('new password'), null, { timeout: T });
    assert.equal(await page.locator('#signin-form').isVisible(), true);
    await shot(page, '3-reset-done');

    // the old password no longer signs in; the new one does
    await signIn(page, u.username, u.password);
    await page.waitForFunction(() => document.querySelector('#auth-error').textContent.length > 0, null, { timeout: T });
    assert.equal(await page.locator('#app-view').isHidden(), true);
    await signIn(page, u.username, newPassword);
    await page.waitForSelector('#app-view:not([hidden])', { timeout: T });

    // and the security panel changes it again (this session stays)
    const third = `third ${run} horse staple`;
    await page.click('#security-btn');
    await page.fill('#password-form [name=current_password]', newPassword);
    await page.fill('#password-form [name=new_password]', third);
    await page.click('#password-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#toast').textContent.includes('Password changed'), null, { timeout: T });
    await page.click('#security-close');
    await signOut(page);
    await signIn(page, u.email, third);
    await page.waitForSelector('#app-view:not([hidden])', { timeout: T });

    // the same link again is refused, clearly
    await signOut(page);
    await page.goto(reset.href);
    await page.waitForSelector('#reset-form:not([hidden])', { timeout: T });
    await page.fill('#reset-form [name=password]', 'yet another password');
    await page.click('#reset-form button[type=submit]');
    await page.waitForFunction(() => /Forgot password/.test(document.querySelector('#auth-error').textContent), null, { timeout: T });
    await ctx.close();
  });

  it('TOTP set up in the security panel, then sign-in asks for the code', async () => {
    const u = mk('theo');
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await openPage(ctx, 'theo', logs);
    await signUp(page, u);

    await page.click('#security-btn');
    await page.waitForSelector('#security-panel:not([hidden])', { timeout: T });
    // this browser's session, marked
    await page.waitForSelector('#session-list li[data-current="1"] .this-device', { timeout: T });
    await page.waitForFunction(() => document.querySelector('#totp-state').dataset.on === '0', null, { timeout: T });

    // a second session (REST from here): listed, and signed out from the panel
    const res = await fetch(`${BASE_URL}/api/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': `other-device-${run}` },
      body: JSON.stringify({ login: u.username, password: u.password }),
    });
    assert.equal(res.status, 200);
    const other = await res.json();
    await page.click('#sessions-refresh');
    const otherRow = page.locator('#session-list li', { hasText: `other-device-${run}` });
    await otherRow.waitFor({ timeout: T });
    await otherRow.locator('button[data-action=revoke]').click();
    await otherRow.waitFor({ state: 'detached', timeout: T });
    const gone = await fetch(`${BASE_URL}/api/auth/refresh`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh_token: other.refresh_token }),
    });
    assert.equal(gone.status, 401, 'the session signed out from the panel cannot refresh');

    await page.click('#totp-setup');
    const qr = page.locator('#totp-qr img');
    await qr.waitFor({ state: 'visible', timeout: T });
    await page.waitForFunction(() => {
      const img = document.querySelector('#totp-qr img');
      return img && img.complete && img.naturalWidth > 0;
    }, null, { timeout: T });
    const box = await qr.boundingBox();
    assert.ok(box && box.width > 50 && box.height > 50, `the QR code has a size (${JSON.stringify(box)})`);
    const secret = (await page.locator('#totp-secret').textContent()).trim();
    assert.match(secret, /^[A-Z2-7]{16,}=*$/, 'the secret shown is base32');
    await qr.scrollIntoViewIfNeeded();
    await shot(page, '4-totp-setup');

    const t = Date.now() / 1000;
    await page.fill('#totp-enable-form [name=code]', totpCode(secret, t));
    await page.click('#totp-enable-form button[type=submit]');
    await page.waitForSelector('#totp-recovery:not([hidden])', { timeout: T });
    assert.equal(await page.locator('#recovery-codes li').count(), 10);
    assert.equal(await page.locator('#totp-state').getAttribute('data-on'), '1');
    await shot(page, '5-totp-recovery');
    await page.click('#totp-recovery-done');
    assert.equal(await page.locator('#recovery-codes li').count(), 0, 'the codes are shown once');

    // sign out and in again: the page asks for the code
    await page.click('#security-close');
    await signOut(page);
    await signIn(page, u.username, u.password);
    await page.waitForSelector('#signin-totp:not([hidden])', { timeout: T });
    assert.equal(await page.locator('#app-view').isHidden(), true);
    await shot(page, '6-totp-asked');
    await page.fill('#signin-form [name=totp]', totpCode(secret, t + 30)); // the next step: one the enable did not use
    await page.click('#signin-form button[type=submit]');
    await page.waitForSelector('#app-view:not([hidden])', { timeout: T });
    await page.waitForFunction((n) => document.querySelector('#me-name').textContent === n, u.display, { timeout: T });
    await ctx.close();
  });
});
