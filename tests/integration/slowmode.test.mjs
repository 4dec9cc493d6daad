// Slow mode and content limits per community (issue 23 point 3; API.md v1.1 "Moderation",
// lib/modrule.h): PATCH /api/communities/:id {slow_mode_seconds, max_message_length,
// links_allowed} by admin+, validated; enforced the same over REST (429 rate_limited with
// Retry-After; 400 validation_failed naming the limit) and MQTT (the publish dropped: MQTT 5
// gets a PUBACK failure code, 3.1.1 nothing; never stored or delivered); one clock for both
// paths (th:slow:<channel>:<user> in Redis); moderators and site admins exempt; a change
// reaches the broker within the mirror's bound (about a second).
//
// Windows are 2 s and waits generous (the machine is shared); every "nothing arrives" is
// proven by a later message from the same publisher that does arrive (QoS 1, in order).
// Registrations come from 127.78.x.y.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { sleep, run, LOCAL_ONLY, VAR_DIR } from './lib/http.mjs';
import { assertStatus, assertError, assertOneOf } from './lib/assert.mjs';
import { uuid, api, fixtures, rnd, fullHistory } from './lib/fixtures.mjs';
import {
  closeClients, connect, end, mustSubscribe, publish, waitFor, hasPayload, DELIVER_MS,
} from './lib/mqtt.mjs';

const WINDOW_S = 2;
const { newUser, community } = fixtures({ net: 78, slug: 'sm', name: 'Slow', general: true });

// scripts/admin grant|revoke: users.is_admin with its site-wide modlog entry, then the mirror
async function setAdmin(how, id) {
  const r = await run('scripts/admin', [how, String(id)], { timeoutMs: 30000 });
  assert.equal(r.code, 0, `scripts/admin ${how} ${id}:\n${r.stdout}\n${r.stderr}`);
}
const grantAdmin = (id) => setAdmin('grant', id);
const chat = (body, id = uuid()) => JSON.stringify({ id, body });
// the text of every broker's log of the stack (tests/integration/run's var dir)
const brokerLogs = () => {
  const dir = path.join(VAR_DIR, 'log');
  return readdirSync(dir).filter((f) => /^mosquitto-.*\.log$/.test(f))
    .map((f) => readFileSync(path.join(dir, f), 'utf8'));
};

const U = {};

before(async () => {
  for (const k of ['owner', 'admin', 'mod']) U[k] = await newUser(`sm${k}`);
});
after(closeClients);

// A public community of U.owner with U.admin (admin), U.mod (moderator) and two fresh members
// .member and .member2 (fresh: each test's sends stay far from the per-user message rate),
// its rules set by PATCH.
async function slowCommunity(rules = {}) {
  const member = await newUser('smm');
  const member2 = await newUser('smn');
  const c = await community(U.owner, 'public', [[U.admin, 'admin'], [U.mod, 'moderator'], [member, 'member'], [member2, 'member']]);
  c.member = member;
  c.member2 = member2;
  if (Object.keys(rules).length) {
    const r = assertStatus(await api('PATCH', `/api/communities/${c.id}`, U.admin, rules), 200, 'PATCH rules:');
    for (const [k, v] of Object.entries(rules)) assert.equal(r.json[k], v, `${k} in the PATCH reply`);
  }
  return c;
}

const post = (c, who, body, id) => api('POST', `/api/channels/${c.channel}/messages`, who, id ? { id, body } : { body });
const topicOf = (c, u) => `chat/${c.channel}/${u.id}`;

async function watcher(c) {
  const w = await connect(U.owner);
  await mustSubscribe(w, `chat/${c.channel}/+`);
  return w;
}

async function history(c) {
  return (await fullHistory(c.channel, U.owner)).map((m) => m.body);
}

describe('PATCH of the rules', () => {
  test('admin+ sets them; they are in the community JSON; bad values are 400 and change nothing', async () => {
    const c = await slowCommunity();
    const g = assertStatus(await api('GET', `/api/communities/${c.id}`, c.member), 200, 'GET:').json;
    assert.equal(g.slow_mode_seconds, 0);
    assert.equal(g.max_message_length, 4000);
    assert.equal(g.links_allowed, true);
    for (const [body, field] of [
      [{ slow_mode_seconds: -1 }, 'slow_mode_seconds'],
      [{ slow_mode_seconds: 86401 }, 'slow_mode_seconds'],
      [{ slow_mode_seconds: '5' }, 'slow_mode_seconds'],
      [{ slow_mode_seconds: 1.5 }, 'slow_mode_seconds'],
      [{ slow_mode_seconds: null, name: 'x' }, null], // null: left as it is
      [{ max_message_length: 0 }, 'max_message_length'],
      [{ max_message_length: 4001 }, 'max_message_length'],
      [{ links_allowed: 'no' }, 'links_allowed'],
      [{ name: 'ok', slow_mode_seconds: 86401 }, 'slow_mode_seconds'],
    ]) {
      const r = await api('PATCH', `/api/communities/${c.id}`, U.admin, body);
      if (field === null) { assertStatus(r, 200, `PATCH ${JSON.stringify(body)}:`); continue; }
      assertError(r, 400, 'validation_failed', field);
    }
    const after1 = assertStatus(await api('GET', `/api/communities/${c.id}`, c.member), 200, 'GET:').json;
    assert.equal(after1.slow_mode_seconds, 0, 'a refused PATCH changed slow mode');
    assert.notEqual(after1.name, 'ok', 'a refused PATCH changed the name');
    // moderators and members may not; the owner and admins may (a day is the maximum)
    assertError(await api('PATCH', `/api/communities/${c.id}`, U.mod, { slow_mode_seconds: 5 }), 403, 'forbidden');
    assertError(await api('PATCH', `/api/communities/${c.id}`, c.member, { slow_mode_seconds: 5 }), 403, 'forbidden');
    const r = assertStatus(await api('PATCH', `/api/communities/${c.id}`, U.owner,
      { slow_mode_seconds: 86400, max_message_length: 1, links_allowed: false }), 200, 'owner PATCH:').json;
    assert.equal(r.slow_mode_seconds, 86400);
    assert.equal(r.max_message_length, 1);
    assert.equal(r.links_allowed, false);
  });
});

describe('slow mode over REST', () => {
  test('a second message inside the window is 429 with Retry-After; a retry of the first is not; after the window it passes', async () => {
    const c = await slowCommunity({ slow_mode_seconds: WINDOW_S });
    const id = uuid();
    assertStatus(await post(c, c.member, 'first', id), 201, 'first:');
    const t0 = Date.now();
    const r = await post(c, c.member, 'second');
    assertError(r, 429, 'rate_limited');
    const ra = Number(r.headers['retry-after']);
    assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= WINDOW_S, `Retry-After ${r.headers['retry-after']}`);
    // the same message again (a client's retry) is the stored one, not a new send
    assertStatus(await post(c, c.member, 'first', id), 200, 'retry of the first:');
    // another member and another channel have their own clocks
    assertStatus(await post(c, c.member2, 'other member'), 201, 'another member:');
    const ch2 = assertStatus(await api('POST', `/api/communities/${c.id}/channels`, U.admin, { name: `two-${rnd(3)}` }), 201, 'channel:').json;
    assertStatus(await api('POST', `/api/channels/${ch2.id}/messages`, c.member, { body: 'other channel' }), 201, 'another channel:');
    await sleep(Math.max(0, WINDOW_S * 1000 - (Date.now() - t0)) + 300);
    assertStatus(await post(c, c.member, 'after the window'), 201, 'after the window:');
    const h = await history(c);
    assert.ok(!h.includes('second'), 'the refused message was stored');
    assert.equal(h.filter((b) => b === 'first').length, 1, 'the retry stored a second copy');
  });

  test('moderators, admins, the owner and site admins are exempt', async () => {
    const c = await slowCommunity({ slow_mode_seconds: 60 });
    for (const who of ['mod', 'admin', 'owner']) {
      for (let i = 0; i < 3; i++) assertStatus(await post(c, U[who], `${who}-${i}`), 201, `${who} #${i}:`);
    }
    if (LOCAL_ONLY) return; // sets users.is_admin in the stack's database
    const site = await newUser('smsite');
    assertStatus(await api('POST', `/api/communities/${c.id}/join`, site), 200, 'join:');
    assertStatus(await post(c, site, 'site-0'), 201, 'site admin #0 (not yet one):');
    assertError(await post(c, site, 'site-1'), 429, 'rate_limited');
    await grantAdmin(site.id);
    assertStatus(await post(c, site, 'site-2'), 201, 'site admin:');
  });
});

describe('slow mode over MQTT', () => {
  test('MQTT 5: a second publish inside the window gets a failure code and is neither delivered nor stored', async () => {
    const c = await slowCommunity({ slow_mode_seconds: WINDOW_S });
    const w = await watcher(c);
    const p = await connect(c.member);
    const first = chat(`m5-first-${rnd()}`);
    assert.equal(await publish(p, topicOf(c, c.member), first), 0, 'first publish refused');
    const t0 = Date.now();
    const second = chat(`m5-second-${rnd()}`);
    const rc = await publish(p, topicOf(c, c.member), second);
    assert.ok(rc >= 0x80, `second publish: PUBACK 0x${rc.toString(16)}, want a failure code`);
    // the same message again (a resend after a reconnect) is not refused: the store keeps one
    assert.equal(await publish(p, topicOf(c, c.member), first), 0, 'a resend of the first refused');
    await sleep(Math.max(0, WINDOW_S * 1000 - (Date.now() - t0)) + 300);
    const third = chat(`m5-third-${rnd()}`);
    assert.equal(await publish(p, topicOf(c, c.member), third), 0, 'after the window: refused');
    await waitFor(() => hasPayload(w, third), DELIVER_MS, 'the publish after the window');
    assert.ok(hasPayload(w, first), 'the first publish was not delivered');
    assert.ok(!hasPayload(w, second), 'the refused publish was delivered');
    await waitFor(async () => (await history(c)).includes(JSON.parse(third).body), DELIVER_MS, 'the third stored');
    const h = await history(c);
    assert.ok(!h.includes(JSON.parse(second).body), 'the refused publish was stored');
    assert.equal(h.filter((b) => b === JSON.parse(first).body).length, 1, 'the first stored once');
    await end(w, p);
    // counted: the broker's log reports its slow-mode drops (every 5 s at most, when they moved)
    if (!LOCAL_ONLY) {
      await waitFor(async () => brokerLogs().some((t) => /refused so far: .*slow_drops=[1-9]/.test(t))
        || (await sleep(300), false), 15000,
        'slow_drops counted in a broker\'s log');
    }
  });

  test('MQTT 3.1.1: a publish inside the window is dropped (not delivered, not stored)', async () => {
    const c = await slowCommunity({ slow_mode_seconds: WINDOW_S });
    const w = await watcher(c);
    const p = await connect(c.member, { protocolVersion: 4 });
    const first = chat(`m4-first-${rnd()}`);
    const second = chat(`m4-second-${rnd()}`);
    assert.equal(await publish(p, topicOf(c, c.member), first), 0);
    const t0 = Date.now();
    assert.equal(await publish(p, topicOf(c, c.member), second), 0, '3.1.1 has no reason code');
    await sleep(Math.max(0, WINDOW_S * 1000 - (Date.now() - t0)) + 300);
    const third = chat(`m4-third-${rnd()}`);
    assert.equal(await publish(p, topicOf(c, c.member), third), 0);
    await waitFor(() => hasPayload(w, third), DELIVER_MS, 'the sentinel after the window');
    assert.ok(hasPayload(w, first), 'the first was not delivered');
    assert.ok(!hasPayload(w, second), 'the dropped publish was delivered');
    await waitFor(async () => (await history(c)).includes(JSON.parse(third).body), DELIVER_MS, 'the third stored');
    assert.ok(!(await history(c)).includes(JSON.parse(second).body), 'the dropped publish was stored');
    await end(w, p);
  });

  test('one clock: REST then MQTT inside the window is refused, and MQTT then REST', async () => {
    const c = await slowCommunity({ slow_mode_seconds: WINDOW_S });
    const p = await connect(c.member);
    assertStatus(await post(c, c.member, 'rest first'), 201, 'REST:');
    const rc = await publish(p, topicOf(c, c.member), chat('mqtt inside'));
    assert.ok(rc >= 0x80, `MQTT after REST: PUBACK 0x${rc.toString(16)}`);
    await sleep(WINDOW_S * 1000 + 300);
    assert.equal(await publish(p, topicOf(c, c.member), chat('mqtt first')), 0, 'MQTT after the window');
    const r = await post(c, c.member, 'rest inside');
    assertError(r, 429, 'rate_limited');
    assert.ok(Number(r.headers['retry-after']) >= 1, 'Retry-After');
    await end(p);
  });

  test('a moderator is exempt over MQTT', async () => {
    const c = await slowCommunity({ slow_mode_seconds: 60 });
    const w = await watcher(c);
    const p = await connect(U.mod);
    const sent = [];
    for (let i = 0; i < 3; i++) {
      const m = chat(`mod-${i}-${rnd()}`);
      sent.push(m);
      assert.equal(await publish(p, topicOf(c, U.mod), m), 0, `moderator publish #${i}`);
    }
    await waitFor(() => sent.every((m) => hasPayload(w, m)), DELIVER_MS, 'the moderator\'s messages');
    await end(w, p);
  });

  // LOCAL_ONLY: sets users.is_admin and the mirror's th:admins in the stack's servers
  test('a site admin is exempt over MQTT', { skip: LOCAL_ONLY }, async () => {
    const c = await slowCommunity({ slow_mode_seconds: 60 });
    const p = await connect(c.member);
    assert.equal(await publish(p, topicOf(c, c.member), chat('site-0')), 0, 'first');
    assert.ok((await publish(p, topicOf(c, c.member), chat('site-1'))) >= 0x80, 'not an admin yet: refused');
    // the grant rebuilds the mirror (th:admins), which the broker follows by its generation
    await grantAdmin(c.member.id);
    await waitFor(async () => (await publish(p, topicOf(c, c.member), chat(`site-${rnd()}`))) === 0
      || (await sleep(300), false), 10000, 'a site admin\'s publish allowed');
    assert.equal(await publish(p, topicOf(c, c.member), chat('site-again')), 0, 'and the next one');
    // revoked: the window holds for them again
    await setAdmin('revoke', c.member.id);
    await waitFor(async () => (await publish(p, topicOf(c, c.member), chat(`site-${rnd()}`))) >= 0x80
      || (await sleep(300), false), 10000, 'a former site admin\'s publish refused again');
    await end(p);
  });

  test('a change of slow_mode_seconds reaches the broker, on and off again', async () => {
    const c = await slowCommunity();
    const p = await connect(c.member);
    // off: two at once pass
    assert.equal(await publish(p, topicOf(c, c.member), chat('off-1')), 0);
    assert.equal(await publish(p, topicOf(c, c.member), chat('off-2')), 0);
    assertStatus(await api('PATCH', `/api/communities/${c.id}`, U.admin, { slow_mode_seconds: 30 }), 200, 'on:');
    let t0 = Date.now();
    // the broker learns it within the mirror's bound (about a second; 10 s allowed)
    // (one try every 300 ms: the tries count against the per-user rate, 10/s burst 30)
    await waitFor(async () => (await publish(p, topicOf(c, c.member), chat(`on-${rnd()}`))) >= 0x80
      || (await sleep(300), false), 10000, 'a publish refused after slow mode was switched on');
    console.log(`# slow mode on: the broker refused within ${Date.now() - t0} ms of the PATCH`);
    assertStatus(await api('PATCH', `/api/communities/${c.id}`, U.admin, { slow_mode_seconds: 0 }), 200, 'off:');
    t0 = Date.now();
    // refused tries take nothing from the window (it was taken by the first); the switch off
    // lets the next one through at once
    await waitFor(async () => (await publish(p, topicOf(c, c.member), chat(`again-${rnd()}`))) === 0
      || (await sleep(300), false), 10000, 'a publish allowed after slow mode was switched off');
    console.log(`# slow mode off: the broker allowed within ${Date.now() - t0} ms of the PATCH`);
    assert.equal(await publish(p, topicOf(c, c.member), chat('again-2')), 0, 'a second one at once');
    await end(p);
  });
});

describe('content limits', () => {
  test('max_message_length: REST 400 naming it, MQTT dropped with a code; a moderator is exempt', async () => {
    const c = await slowCommunity({ max_message_length: 10 });
    const r = await post(c, c.member, 'x'.repeat(11));
    assertError(r, 400, 'validation_failed', 'body');
    assert.match(r.json.error.message, /max_message_length/);
    assertStatus(await post(c, c.member, 'é'.repeat(10)), 201, 'ten characters (twenty bytes):');
    assertStatus(await post(c, U.mod, 'y'.repeat(11)), 201, 'moderator over the length:');
    const w = await watcher(c);
    const p = await connect(c.member);
    const long = chat(`long-${rnd()}`);
    const rc = await publish(p, topicOf(c, c.member), long);
    assert.ok(rc >= 0x80, `MQTT over the length: PUBACK 0x${rc.toString(16)}`);
    const short = chat(`s-${rnd(2)}`);
    assert.equal(await publish(p, topicOf(c, c.member), short), 0, 'a short one');
    await waitFor(() => hasPayload(w, short), DELIVER_MS, 'the short message');
    assert.ok(!hasPayload(w, long), 'the long message was delivered');
    await end(w, p);
  });

  test('links_allowed false: REST 400 naming it, MQTT dropped; a moderator may', async () => {
    const c = await slowCommunity({ links_allowed: false });
    for (const body of ['see https://example.org', 'HTTP://x.y', 'go to www.example.org']) {
      const r = await post(c, c.member, body);
      assertError(r, 400, 'validation_failed', 'body');
      assert.match(r.json.error.message, /links_allowed/);
    }
    const plainPost = assertStatus(await post(c, c.member, 'no link here: http is a protocol'), 201, 'no link:').json;
    // an edit meets the same limits: a link cannot come in by editing
    const ed = await api('PATCH', `/api/messages/${plainPost.id}`, c.member, { body: 'now https://spam.example' });
    assertError(ed, 400, 'validation_failed', 'body');
    assertStatus(await api('PATCH', `/api/messages/${plainPost.id}`, c.member, { body: 'still no link' }), 200, 'a fine edit:');
    assertStatus(await post(c, U.mod, 'mods may: https://example.org'), 201, 'moderator link:');
    const w = await watcher(c);
    const p = await connect(c.member);
    const link = chat(`https://spam.example/${rnd()}`);
    const rc = await publish(p, topicOf(c, c.member), link);
    assert.ok(rc >= 0x80, `MQTT link: PUBACK 0x${rc.toString(16)}`);
    const plain = chat(`plain-${rnd()}`);
    assert.equal(await publish(p, topicOf(c, c.member), plain), 0);
    await waitFor(() => hasPayload(w, plain), DELIVER_MS, 'the plain message');
    assert.ok(!hasPayload(w, link), 'the link was delivered');
    const m = await connect(U.mod);
    const modLink = chat(`https://ok.example/${rnd()}`);
    assert.equal(await publish(m, topicOf(c, U.mod), modLink), 0, 'a moderator\'s link over MQTT');
    await waitFor(() => hasPayload(w, modLink), DELIVER_MS, 'the moderator\'s link');
    await end(w, p, m);
  });

  test('a DM channel has no slow mode', async () => {
    const a = await newUser('smda');
    const b = await newUser('smdb');
    const dm = assertOneOf(await api('POST', '/api/dms', a, { user_ids: [b.id] }), [200, 201], 'DM:').json;
    for (let i = 0; i < 3; i++) {
      assertStatus(await api('POST', `/api/channels/${dm.id}/messages`, a, { body: `dm-${i}` }), 201, `DM #${i}:`);
    }
  });
});
