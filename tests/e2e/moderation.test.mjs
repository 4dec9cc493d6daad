// Browser test of the demo app's moderation (issue 23 point 6; API.md v1.1 "Moderation"):
// report → remove → the reporter notified. Alice owns a community (moderator+), Bob reports
// a post of Carol (made over REST), Alice removes it from the mod queue, the post leaves both
// feeds, the modlog shows the action, and Bob's bell gets report_resolved; then Alice sets
// slow mode in the chat rules. Its own users and community, so it runs beside demo.test.mjs.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  BASE_URL, T, SHOTS, CHROMIUM, RUN as run, mkUser as mk, newPage as openPage, signUp,
} from './lib/pages.mjs';

const users = { a: mk('mia'), b: mk('ben'), c: mk('cyd') };
const community = { name: `Mod ${run}`, slug: `mod-${run}` };
const SPAM = `Cheap watches at spam-${run}`;

let browser; let ctxA; let ctxB; let A; let B;
let shot = 0;
const logs = [];

async function snap(name) {
  shot += 1;
  const n = String(shot).padStart(2, '0');
  await A.screenshot({ path: path.join(SHOTS, `mod-${n}-${name}-owner.png`) });
  await B.screenshot({ path: path.join(SHOTS, `mod-${n}-${name}-reporter.png`) });
}

const newPage = (ctx, who) => openPage(ctx, who, logs);

// REST from the test itself (Carol has no browser).
async function rest(method, p, token, body) {
  const res = await fetch(BASE_URL + p, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null, text };
}

describe('moderation in the demo app', { timeout: 240000 }, () => {
  let cid;

  before(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
    const opts = { viewport: { width: 1280, height: 860 } };
    ctxA = await browser.newContext(opts);
    ctxB = await browser.newContext(opts);
    A = await newPage(ctxA, 'owner');
    B = await newPage(ctxB, 'reporter');
  });

  after(async () => {
    if (process.exitCode || logs.some((l) => l.includes('pageerror'))) {
      for (const l of logs.slice(-80)) console.log('# ' + l);
    }
    if (browser) await browser.close();
  });

  it('the owner makes a community, the reporter joins, a third user posts spam', async () => {
    await signUp(A, users.a);
    await signUp(B, users.b);
    await A.click('#create-community summary');
    await A.fill('#community-form [name=name]', community.name);
    await A.fill('#community-form [name=slug]', community.slug);
    await A.click('#community-form button[type=submit]');
    await A.waitForFunction((name) => document.querySelector('#community-name')?.textContent === name, community.name, { timeout: T });
    // the owner sees the Moderation tab, with the chat rules
    await A.waitForSelector('#tab-mod:not([hidden])', { timeout: T });
    cid = await A.evaluate(() => window.townhall.state.community.id);

    await B.click('#refresh-communities');
    await B.waitForSelector(`#community-list li[data-slug="${community.slug}"]`, { timeout: T });
    await B.click(`#community-list li[data-slug="${community.slug}"]`);
    await B.waitForSelector('#join-btn:not([hidden])', { timeout: T });
    await B.click('#join-btn');
    await B.waitForSelector('#post-form:not([hidden])', { timeout: T });
    // a member sees no Moderation tab
    assert.equal(await B.isHidden('#tab-mod'), true, 'a member sees the Moderation tab');

    const reg = await rest('POST', '/api/auth/register', null, { email: users.c.email, username: users.c.username, password: users.c.password });
    assert.equal(reg.status, 201, reg.text);
    const tok = reg.json.access_token;
    assert.equal((await rest('POST', `/api/communities/${cid}/join`, tok)).status, 200);
    const p = await rest('POST', `/api/communities/${cid}/posts`, tok, { title: 'Deal', body: SPAM });
    assert.equal(p.status, 201, p.text);
    users.c.postId = p.json.id;
    for (const page of [A, B]) {
      await page.waitForSelector(`#posts article[data-id="${users.c.postId}"]`, { timeout: T });
    }
    await snap('spam-posted');
  });

  it('the reporter reports the post', async () => {
    const art = `#posts article[data-id="${users.c.postId}"]`;
    await B.click(`${art} button[data-action="report"]`);
    await B.waitForSelector('#report-dialog[open]', { timeout: T });
    await B.selectOption('#report-form [name=reason]', 'spam');
    await B.fill('#report-form [name=note]', 'selling watches');
    await B.click('#report-submit');
    await B.waitForSelector('#report-dialog', { state: 'hidden', timeout: T });
    await B.waitForFunction(() => /Reported/.test(document.querySelector('#toast')?.textContent || ''), null, { timeout: T });
    await snap('reported');
  });

  it('the owner removes it from the mod queue; it leaves both feeds and is in the modlog', async () => {
    await A.click('#tab-mod');
    await A.waitForSelector('#mod-view:not([hidden])', { timeout: T });
    const item = `#report-queue li.report-item[data-type="post"][data-target="${users.c.postId}"]`;
    await A.waitForSelector(item, { timeout: T });
    assert.match(await A.textContent(item), /spam/);
    await snap('mod-queue');
    await A.click(`${item} button[data-action="remove"]`);
    await A.waitForSelector(item, { state: 'detached', timeout: T });
    // the removal is logged: an entry naming the post, or a removal (the resolution's own
    // entry may name the report)
    await A.waitForFunction((postId) => [...document.querySelectorAll('#modlog li.modlog-entry')]
      .some((e) => e.dataset.target === String(postId) || /remove/.test(e.dataset.action || '')), users.c.postId, { timeout: T });
    // the reporter's feed drops it live (post_deleted)
    await B.waitForSelector(`#posts article[data-id="${users.c.postId}"]`, { state: 'detached', timeout: T });
    await snap('removed');
  });

  it('the reporter is notified (report_resolved)', async () => {
    await B.waitForFunction(() => Number(document.querySelector('#notif-count')?.dataset.n) >= 1, null, { timeout: T });
    await B.click('#bell');
    await B.waitForSelector('#notif-list li[data-type="report_resolved"]', { timeout: T });
    await snap('notified');
  });

  // A post whose author erased the account comes back with author null: the feed rendered
  // nothing at all then (renderPost threw), for every reader, until 30 newer posts pushed it
  // out. Authors are named with their unique @username beside the display name anyone may copy.
  it('a post of an erased account: every post is still shown, by "deleted account"', async () => {
    const d = mk('dee');
    const reg = await rest('POST', '/api/auth/register', null, { email: d.email, username: d.username, password: d.password });
    assert.equal(reg.status, 201, reg.text);
    const tok = reg.json.access_token;
    assert.equal((await rest('POST', `/api/communities/${cid}/join`, tok)).status, 200);
    const gone = await rest('POST', `/api/communities/${cid}/posts`, tok, { title: 'Soon gone', body: `gone-${run}` });
    assert.equal(gone.status, 201, gone.text);
    await B.waitForSelector(`#posts article[data-id="${gone.json.id}"]`, { timeout: T });
    assert.equal((await rest('DELETE', '/api/auth/me', tok, { password: d.password })).status, 202);
    // a newer post reloads the reader's feed (post_created), with the erased one in it
    const login = await rest('POST', '/api/auth/login', null, { login: users.c.username, password: users.c.password });
    assert.equal(login.status, 200, login.text);
    const fresh = await rest('POST', `/api/communities/${cid}/posts`, login.json.access_token, { title: 'Still here', body: `here-${run}` });
    assert.equal(fresh.status, 201, fresh.text);
    await B.waitForSelector(`#posts article[data-id="${fresh.json.id}"]`, { timeout: T });
    const meta = (id) => B.textContent(`#posts article[data-id="${id}"] .meta`);
    await B.waitForFunction((id) => /deleted account/.test(document.querySelector(`#posts article[data-id="${id}"] .meta`)?.textContent || ''),
      gone.json.id, { timeout: T });
    assert.match(await meta(fresh.json.id), new RegExp(`@${users.c.username}\\b`));
    await snap('erased-author');
  });

  it('the owner sets slow mode in the chat rules', async () => {
    await A.fill('#rules-form [name=slow_mode_seconds]', '5');
    await A.click('#rules-save');
    await A.waitForFunction(() => /saved/.test(document.querySelector('#toast')?.textContent || ''), null, { timeout: T });
    const c = await rest('GET', `/api/communities/${cid}`, null);
    // a public community: anyone may read it
    assert.equal(c.json.slow_mode_seconds, 5, c.text);
  });
});
