// Browser tests of the demo app (web/) and web/townhall.js: two users in two browser contexts
// of Debian's Chromium (headless, fake camera and microphone) against the stack of
// TH_PORT_BASE (tests/e2e/run brings one up). Screenshots of each step go to TH_E2E_SHOTS.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';
import { newPage as openPage, signUp } from './lib/pages.mjs';

const PORT_BASE = Number(process.env.TH_PORT_BASE || 8080);
const BASE_URL = `http://127.0.0.1:${PORT_BASE}`;
const SHOTS = process.env.TH_E2E_SHOTS || path.join(process.cwd(), 'e2e-shots');
const CHROMIUM = process.env.TH_CHROMIUM || '/usr/bin/chromium';
const T = 20000; // default wait for anything the other browser should see

mkdirSync(SHOTS, { recursive: true });
console.log(`# screenshots: ${SHOTS}`);

// A small PNG (a colour gradient), so the media service makes real thumbnails of it.
function makePng(w = 96, h = 64) {
  const crcTable = new Int32Array(256).map((_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c;
  });
  const crc = (buf) => {
    let c = -1;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ -1) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4); c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0;
    for (let x = 0; x < w; x++) {
      const o = y * (w * 3 + 1) + 1 + x * 3;
      raw[o] = Math.round((x / w) * 255); raw[o + 1] = Math.round((y / h) * 255); raw[o + 2] = 180;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

const run = Math.random().toString(36).slice(2, 8);
const users = {
  a: { username: `alice_${run}`, email: `alice_${run}@example.test`, display: `Alice ${run}`, password: 'correct horse battery' },
  b: { username: `bob_${run}`, email: `bob_${run}@example.test`, display: `Bob ${run}`, password: 'correct horse battery' },
};
const community = { name: `E2E ${run}`, slug: `e2e-${run}` };

let browser;
let ctxA; let ctxB;
let A; let B; // pages
let B2; // bob's second device (another page of his browser context: the same session)
let shot = 0;
const logs = [];

async function snap(name) {
  shot += 1;
  const n = String(shot).padStart(2, '0');
  await A.screenshot({ path: path.join(SHOTS, `${n}-${name}-alice.png`) });
  await B.screenshot({ path: path.join(SHOTS, `${n}-${name}-bob.png`) });
}

const newPage = (ctx, who) => openPage(ctx, who, logs);

async function openCommunity(page) {
  await page.click(`#community-list li[data-slug="${community.slug}"]`);
  await page.waitForFunction((name) => document.querySelector('#community-name')?.textContent === name, community.name, { timeout: T });
}

async function call(relay) {
  for (const p of [A, B]) await p.setChecked('#force-relay', relay);
  await A.click('#call-btn');
  await A.waitForSelector('#call-panel:not([hidden])', { timeout: T });
  await B.waitForSelector('#incoming-call:not([hidden])', { timeout: T });
  await B.click('#accept-call');
  for (const p of [A, B]) {
    await p.waitForFunction(() => document.querySelector('#call-state')?.textContent === 'connected', null, { timeout: 30000 });
  }
  // the path (local candidate types) is filled in right after `connected`
  for (const p of [A, B]) await p.waitForFunction(() => document.querySelector('#call-path')?.textContent !== '', null, { timeout: 10000 });
  // remote video is flowing
  for (const p of [A, B]) {
    await p.waitForFunction(() => {
      const v = document.querySelector('#remote-video');
      return v && v.srcObject && v.videoWidth > 0;
    }, null, { timeout: T });
  }
  const paths = [await A.textContent('#call-path'), await B.textContent('#call-path')];
  return paths;
}

async function hangUp() {
  await A.click('#hangup-btn');
  await B.waitForFunction(() => ['disconnected', 'closed', 'failed'].includes(document.querySelector('#call-state')?.textContent)
    || document.querySelector('#call-panel').hidden, null, { timeout: T });
  if (await B.isVisible('#hangup-btn')) await B.click('#hangup-btn');
  for (const p of [A, B]) await p.waitForSelector('#call-panel', { state: 'hidden', timeout: T });
}

describe('demo app in two browsers', { timeout: 240000 }, () => {
  before(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      ],
    });
    const opts = { viewport: { width: 1280, height: 860 }, permissions: ['camera', 'microphone'] };
    ctxA = await browser.newContext(opts);
    ctxB = await browser.newContext(opts);
    A = await newPage(ctxA, 'alice');
    B = await newPage(ctxB, 'bob');
  });

  after(async (t) => {
    if (process.exitCode || logs.some((l) => l.includes('pageerror'))) {
      for (const l of logs.slice(-80)) console.log('# ' + l);
    }
    if (browser) await browser.close();
  });

  it('serves the MQTT.js bundle from node_modules as JavaScript', async () => {
    const res = await A.request.get(BASE_URL + '/vendor/mqtt.esm.js');
    assert.equal(res.status(), 200);
    assert.match(res.headers()['content-type'], /^text\/javascript/);
  });

  it('both users sign up', async () => {
    await snap('start');
    await signUp(A, users.a);
    await signUp(B, users.b);
    assert.equal(await A.textContent('#me-name'), users.a.display);
    assert.equal(await B.textContent('#me-name'), users.b.display);
    await snap('signed-up');
  });

  it('alice creates a community and bob joins it', async () => {
    await A.click('#create-community summary');
    await A.fill('#community-form [name=name]', community.name);
    await A.fill('#community-form [name=slug]', community.slug);
    await A.fill('#community-form [name=description]', 'A community made by the browser tests.');
    await A.click('#community-form button[type=submit]');
    await A.waitForFunction((name) => document.querySelector('#community-name')?.textContent === name, community.name, { timeout: T });
    await A.waitForSelector('#post-form:not([hidden])');

    await B.click('#refresh-communities');
    await B.waitForSelector(`#community-list li[data-slug="${community.slug}"]`, { timeout: T });
    await openCommunity(B);
    await B.waitForSelector('#join-btn:not([hidden])');
    await B.click('#join-btn');
    await B.waitForSelector('#post-form:not([hidden])', { timeout: T });
    // alice's member list learns about bob from the member_joined event
    await A.waitForSelector(`#member-list li[data-user="${users.b.username}"]`, { timeout: T });
    await snap('joined');
  });

  it('a post with an image appears for the other user, with its thumbnail', async () => {
    await A.setInputFiles('#post-image', { name: 'gradient.png', mimeType: 'image/png', buffer: makePng() });
    await A.fill('#post-form [name=title]', 'Hello from Alice');
    await A.fill('#post-form [name=body]', 'A picture for everyone.');
    await A.click('#post-submit');
    await A.waitForSelector('#posts article img.thumb', { timeout: T });
    // bob's feed reloads on post_created (no reload of the page)
    await B.waitForFunction(() => {
      const img = document.querySelector('#posts article img.thumb');
      return img && img.complete && img.naturalWidth > 0;
    }, null, { timeout: T });
    assert.match(await B.textContent('#posts article h3'), /Hello from Alice/);
    const src = await B.getAttribute('#posts article img.thumb', 'src');
    assert.match(src, /thumb/);
    // bob reacts and comments; alice sees both
    await B.click('#posts article .reactions button[data-emoji="👍"]');
    await B.waitForSelector('#posts article .reactions button.mine[data-emoji="👍"]', { timeout: T });
    await B.click('#posts article .reactions button[data-action="comments"]');
    await B.fill('#posts article .comment-form input', 'Nice picture!');
    await B.click('#posts article .comment-form button');
    await A.waitForFunction(() => /💬 1/.test(document.querySelector('#posts article .reactions button[data-action="comments"]')?.textContent || ''), null, { timeout: T });
    await A.click('#posts article .reactions button[data-action="comments"]');
    await A.waitForFunction(() => /Nice picture!/.test(document.querySelector('#posts article .comments')?.textContent || ''), null, { timeout: T });
    await A.waitForFunction(() => /👍 1/.test(document.querySelector('#posts article .reactions button[data-emoji="👍"]')?.textContent || ''), null, { timeout: T });
    await snap('post-with-image');
  });

  it('they chat both ways with typing indicator and presence', async () => {
    await A.click('#tab-chat');
    await B.click('#tab-chat');
    await A.waitForSelector('#message-form:not([hidden])');
    await B.waitForSelector('#message-form:not([hidden])');
    // presence: each sees the other online
    await A.waitForSelector(`#member-list li[data-user="${users.b.username}"][data-status="online"]`, { timeout: T });
    await B.waitForSelector(`#member-list li[data-user="${users.a.username}"][data-status="online"]`, { timeout: T });

    await A.type('#message-input', 'Hi Bob, how are', { delay: 40 });
    await B.waitForFunction((n) => document.querySelector('#typing')?.textContent.includes(n), users.a.display, { timeout: T });
    await snap('alice-typing');
    await A.type('#message-input', ' you?');
    await A.press('#message-input', 'Enter');
    await B.waitForFunction(() => [...document.querySelectorAll('#messages li .text')].some((e) => e.textContent === 'Hi Bob, how are you?'), null, { timeout: T });

    await B.type('#message-input', 'Great, thanks', { delay: 40 });
    await A.waitForFunction((n) => document.querySelector('#typing')?.textContent.includes(n), users.b.display, { timeout: T });
    await B.type('#message-input', ' Alice!');
    await B.press('#message-input', 'Enter');
    await A.waitForFunction(() => [...document.querySelectorAll('#messages li .text')].some((e) => e.textContent === 'Great, thanks Alice!'), null, { timeout: T });
    // both messages got their `stored` receipt
    for (const p of [A, B]) await p.waitForSelector('#messages li.mine:not(.pending)', { timeout: T });
    await A.waitForFunction(() => document.querySelector('#typing')?.textContent === '', null, { timeout: T });
    await snap('chat');
  });

  it('a message sent while the connection is down arrives after the reconnect', async () => {
    // drop alice's WebSocket under MQTT.js: it reconnects by itself; the message sent in
    // between stays pending (no receipt) and is published again after the CONNACK
    await A.evaluate(() => {
      const rt = window.townhall.state.rt;
      rt.client.stream.destroy();
    });
    await A.waitForFunction(() => !window.townhall.state.rt.connected, null, { timeout: T });
    await A.fill('#message-input', 'Sent while offline');
    await A.press('#message-input', 'Enter');
    await A.waitForSelector('#conn-status.online', { timeout: T });
    await B.waitForFunction(() => [...document.querySelectorAll('#messages li .text')].some((e) => e.textContent === 'Sent while offline'), null, { timeout: T });
    await A.waitForFunction(() => window.townhall.state.rt.pending.size === 0, null, { timeout: T });
    await A.waitForSelector('#messages li.mine.pending', { state: 'detached', timeout: T });
  });

  it('the messages are still there after a reload (history)', async () => {
    await B.reload();
    await B.waitForSelector('#conn-status.online', { timeout: T });
    await B.waitForSelector('#chat-view:not([hidden])', { timeout: T });
    await B.waitForFunction(() => {
      const texts = [...document.querySelectorAll('#messages li .text')].map((e) => e.textContent);
      return texts.includes('Hi Bob, how are you?') && texts.includes('Great, thanks Alice!') && texts.includes('Sent while offline');
    }, null, { timeout: T });
    const order = await B.$$eval('#messages li .text', (els) => els.map((e) => e.textContent));
    assert.ok(order.indexOf('Hi Bob, how are you?') < order.indexOf('Great, thanks Alice!'), 'history in order');
    // after the reload bob is online again for alice
    await A.waitForSelector(`#member-list li[data-user="${users.b.username}"][data-status="online"]`, { timeout: T });
    await snap('after-reload');
  });

  it('a direct video call reaches connected on both sides', async () => {
    const paths = await call(false);
    await snap('call-direct');
    for (const p of paths) assert.doesNotMatch(p, /relay/, `direct call went through TURN: ${paths}`);
    await hangUp();
  });

  it('a video call forced through TURN (relay) reaches connected on both sides', async () => {
    const paths = await call(true);
    await snap('call-relay');
    for (const p of paths) assert.match(p, /relay/, `relay call not relayed: ${paths}`);
    await hangUp();
    await snap('end');
  });

  it('a DM between the two, with an unread badge that clears on the other device', async () => {
    B2 = await newPage(ctxB, 'bob-2');
    await B2.waitForSelector('#conn-status.online', { timeout: T });
    // alice opens a DM from the member list and writes
    await A.click(`#member-list li[data-user="${users.b.username}"] button[data-action="dm"]`);
    await A.waitForFunction((n) => document.querySelector('#community-name')?.textContent === n, users.b.display, { timeout: T });
    await A.fill('#message-input', 'Just between us');
    await A.press('#message-input', 'Enter');
    await A.waitForSelector('#messages li.mine:not(.pending)', { timeout: T });
    // both of bob's devices list the DM with one unread message
    const badge = (u) => document.querySelector(`#dm-list li[data-with="${u}"] .unread-badge`)?.textContent;
    for (const p of [B, B2]) {
      await p.waitForFunction(badge, users.a.username, { timeout: T });
      assert.equal(await p.evaluate(badge, users.a.username), '1');
    }
    await snap('dm-unread');
    // bob reads it on one device; the other device's badge clears (the unread inbox event)
    await B.click(`#dm-list li[data-with="${users.a.username}"]`);
    await B.waitForFunction(() => [...document.querySelectorAll('#messages li .text')].some((e) => e.textContent === 'Just between us'), null, { timeout: T });
    await B2.waitForFunction((u) => {
      const li = document.querySelector(`#dm-list li[data-with="${u}"]`);
      return li && !li.querySelector('.unread-badge');
    }, users.a.username, { timeout: T });
    // and bob answers in the DM
    await B.fill('#message-input', 'Agreed');
    await B.press('#message-input', 'Enter');
    await A.waitForFunction(() => [...document.querySelectorAll('#messages li .text')].some((e) => e.textContent === 'Agreed'), null, { timeout: T });
    await snap('dm');
    await B2.close();
  });

  it('a mention reaches the bell live, opens the post highlighted, and "mark all read" clears the count', async () => {
    await openCommunity(A);
    await A.click('#tab-feed');
    await A.fill('#post-form [name=body]', `Look at this, @${users.b.username}!`);
    await A.click('#post-submit');
    // the notification arrives on bob's inbox while he is elsewhere (the DM)
    await B.waitForFunction(() => window.townhall.state.notifs.some((n) => n.type === 'mention'), null, { timeout: T });
    assert.ok(Number(await B.getAttribute('#notif-count', 'data-n')) >= 1);
    await B.click('#bell');
    await B.waitForSelector('#notif-list li.unread[data-type="mention"]', { timeout: T });
    await snap('mention-bell');
    await B.click('#notif-read-all');
    await B.waitForFunction(() => document.querySelector('#notif-count')?.dataset.n === '0', null, { timeout: T });
    await B.waitForSelector('#notif-list li.unread', { state: 'detached', timeout: T });
    // the notification opens the post, where the mention of bob is highlighted
    await B.click('#notif-list li[data-type="mention"]');
    await B.waitForSelector('#posts article mark.mention.me', { timeout: T });
    assert.equal(await B.textContent('#posts article mark.mention.me'), `@${users.b.username}`);
    await snap('mention-post');
  });

  it('the service worker that shows Web Push messages is registered and active', async () => {
    // subscribing needs the browser's push service (not reachable from here): the push
    // itself is tested against a local endpoint in tests/integration/push.test.mjs
    await B.waitForFunction(async () => {
      const reg = await navigator.serviceWorker.getRegistration('/');
      return !!(reg && reg.active && reg.active.scriptURL.endsWith('/sw.js'));
    }, null, { timeout: T });
    await B.click('#bell');
    await B.waitForFunction(() => ['off', 'on', 'not supported here', 'blocked by the browser'].includes(document.querySelector('#push-state')?.textContent), null, { timeout: T });
  });
});
