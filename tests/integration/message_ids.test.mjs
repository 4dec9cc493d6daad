// Message ids belong to their first (channel, sender), issue 17 point 1, and reply_to names a
// message of the same channel (point 8), black-box against ../shared/API.md ("v1.1
// additions": a message id belongs to the first sender and channel that stored it; REST 409
// conflict; over MQTT never stored, counted, and no `stored` receipt names it).
//
// - Both orders: the victim's id stored first over REST, then tried by another member over
//   REST and MQTT; stored first over MQTT, then tried the same ways.
// - The race: the bridge is stopped (SIGSTOP) while the victim's message waits for it in the
//   broker; another member who saw it live POSTs its id many times over REST. Whoever
//   stores the id first owns it; the victim never gets a receipt for an id stored as
//   somebody else's, but a {"type":"refused","reason":"id_taken"} notice (docs/events.md),
//   and the bridge counts th_messages_refused_id_taken_total. A variant races without
//   stopping the bridge and checks the same invariant, whoever wins.
// - Client addresses: registrations from 127.21.x.y (lib/fixtures.mjs).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { readPid, sleep, LOCAL_ONLY } from './lib/http.mjs';
import { show, assertError, assertStatus } from './lib/assert.mjs';
import { uuid, api, fixtures } from './lib/fixtures.mjs';
import { poolMetrics, metric, edgeUrl, psql } from './lib/stack.mjs';
import {
  DELIVER_MS, closeClients, connect, end, mustSubscribe, publish, waitFor, hasPayload,
} from './lib/mqtt.mjs';

const { newUser, community } = fixtures({ net: 21, slug: 'mid', name: 'Message ids', general: true });
after(closeClients);

const STORED_MS = 10000; // a message published reaches the history (and its receipt comes) within this

const bridgeMetrics = () => poolMetrics('bridge');

const postMsg = (ch, who, body) => api('POST', `/api/channels/${ch}/messages`, who, body);
const getMsg = (id, who) => api('GET', `/api/messages/${id}`, who);

// A connected user with their inbox subscribed; .inbox(type) lists the inbox notices of a type
async function client(user, url) {
  const conn = await connect(user, url ? { url } : {});
  await mustSubscribe(conn, `user/${user.id}/inbox`);
  conn.notices = (type) => conn.messages
    .filter((m) => m.topic === `user/${user.id}/inbox`)
    .map((m) => { try { return JSON.parse(m.payload); } catch { return null; } })
    .filter((m) => m?.type === type);
  conn.storedIds = () => conn.notices('stored').flatMap((m) => m.ids);
  conn.refusedIds = () => conn.notices('refused').flatMap((m) => m.ids);
  return conn;
}

// The stored message of id, waited for (seen by `who`)
async function storedMessage(id, who, ms = STORED_MS) {
  let r;
  await waitFor(async () => { r = await getMsg(id, who); return r.status === 200; }, ms, `message ${id} to be stored`);
  return r.json;
}

// All messages of a channel with this id (history, newest first, one page of 100 is enough here)
async function historyWith(ch, who, id) {
  const r = assertStatus(await api('GET', `/api/channels/${ch}/messages?limit=100`, who), 200);
  return r.json.items.filter((m) => m.id === id);
}

// A stage: a community whose #general has a victim and another member, both connected; and a
// second community (both members) for the cross-channel cases.
// url: both clients on that broker (default: /mqtt, where the front picks each one's edge)
async function stage(tag, url) {
  const victim = await newUser(`${tag}v`);
  const other = await newUser(`${tag}o`);
  const c = await community(victim, 'public', [other]);
  const c2 = await community(victim, 'public', [other]);
  const v = await client(victim, url);
  const o = await client(other, url);
  await mustSubscribe(o, `chat/${c.channel}/+`);
  return { victim, other, c, c2, v, o };
}

describe('a message id belongs to its first channel and sender', { timeout: 120000 }, () => {
  // LOCAL_ONLY: reads the bridge's /metrics, served to loopback only
  test('REST first: another member (REST or MQTT), another channel -> refused; the sender re-sending stays idempotent', { skip: LOCAL_ONLY }, async () => {
    const { victim, other, c, c2, v, o } = await stage('mr');
    try {
      const id = uuid();
      const first = assertStatus(await postMsg(c.channel, victim, { id, body: 'mine' }), 201, 'victim POST:');
      assert.equal(first.json.sender.id, victim.id);
      // another member, same channel / another channel; the victim, another channel
      assertError(await postMsg(c.channel, other, { id, body: 'stolen' }), 409, 'conflict');
      assertError(await postMsg(c2.channel, other, { id, body: 'stolen elsewhere' }), 409, 'conflict');
      assertError(await postMsg(c2.channel, victim, { id, body: 'mine, elsewhere' }), 409, 'conflict');
      // the sender re-sending: the stored message, unchanged
      const again = assertStatus(await postMsg(c.channel, victim, { id, body: 'mine (edited replay)' }), 200, 'victim replay:');
      assert.deepEqual(again.json, first.json);

      // over MQTT: the other member's copy is dropped and counted; no receipt names it
      const m0 = await bridgeMetrics();
      assert.ok(await publish(o, `chat/${c.channel}/${other.id}`, JSON.stringify({ id, body: 'stolen over mqtt' })) < 0x80);
      // the victim re-sending over MQTT: a receipt (it is the victim's)
      assert.ok(await publish(v, `chat/${c.channel}/${victim.id}`, JSON.stringify({ id, body: 'mine' })) < 0x80);
      await waitFor(() => v.storedIds().includes(id), STORED_MS, 'the victim\'s receipt of the re-send');
      await waitFor(() => o.refusedIds().includes(id), STORED_MS, 'the refused notice to the other member');
      const m1 = await bridgeMetrics();
      assert.equal(metric(m1, 'th_messages_refused_id_taken_total') - metric(m0, 'th_messages_refused_id_taken_total'), 1,
        `refused counted once: ${JSON.stringify(m1)}`);
      assert.ok(!o.storedIds().includes(id), 'a stored receipt named an id stored as somebody else\'s');
      const h = await historyWith(c.channel, victim, id);
      assert.equal(h.length, 1);
      assert.equal(h[0].sender.id, victim.id);
      assert.equal(h[0].body, 'mine');
      assert.equal((await historyWith(c2.channel, victim, id)).length, 0);
    } finally {
      await end(v, o);
    }
  });

  // LOCAL_ONLY: reads the bridge's /metrics, served to loopback only
  test('MQTT first: another member (REST or MQTT) -> refused; the sender re-sending (MQTT or REST) stays idempotent', { skip: LOCAL_ONLY }, async () => {
    const { victim, other, c, c2, v, o } = await stage('mm');
    try {
      const id = uuid();
      assert.ok(await publish(v, `chat/${c.channel}/${victim.id}`, JSON.stringify({ id, body: 'mine first' })) < 0x80);
      await waitFor(() => hasPayload(o, (m) => m.topic === `chat/${c.channel}/${victim.id}` && m.payload.includes(id)),
        DELIVER_MS, 'the other member to see the message live');
      await waitFor(() => v.storedIds().includes(id), STORED_MS, 'the victim\'s receipt');
      assertError(await postMsg(c.channel, other, { id, body: 'stolen' }), 409, 'conflict');
      assertError(await postMsg(c2.channel, other, { id, body: 'stolen elsewhere' }), 409, 'conflict');
      const m0 = await bridgeMetrics();
      assert.ok(await publish(o, `chat/${c.channel}/${other.id}`, JSON.stringify({ id, body: 'stolen over mqtt' })) < 0x80);
      assert.ok(await publish(o, `chat/${c2.channel}/${other.id}`, JSON.stringify({ id, body: 'stolen, other channel' })) < 0x80);
      // the victim in another channel: also not theirs there
      assert.ok(await publish(v, `chat/${c2.channel}/${victim.id}`, JSON.stringify({ id, body: 'mine, other channel' })) < 0x80);
      await waitFor(() => o.refusedIds().includes(id) && v.refusedIds().includes(id), STORED_MS, 'the refused notices');
      const m1 = await bridgeMetrics();
      assert.equal(metric(m1, 'th_messages_refused_id_taken_total') - metric(m0, 'th_messages_refused_id_taken_total'), 3);
      assert.ok(!o.storedIds().includes(id), 'a receipt named an id stored as somebody else\'s');
      // the victim re-sending is idempotent, over REST too (200, the stored message)
      const r = assertStatus(await postMsg(c.channel, victim, { id, body: 'mine first' }), 200, 'victim REST replay:');
      assert.equal(r.json.sender.id, victim.id);
      const h = await historyWith(c.channel, victim, id);
      assert.equal(h.length, 1);
      assert.equal(h[0].body, 'mine first');
      assert.equal((await historyWith(c2.channel, victim, id)).length, 0);
    } finally {
      await end(v, o);
    }
  });

  // LOCAL_ONLY: stops the stack's th-bridge by its pid file
  test('the race: many REST tries of the victim\'s id while the bridge is stopped -> no receipt for an id stored as another\'s', { timeout: 60000, skip: LOCAL_ONLY }, async () => {
    const { victim, other, c, v, o } = await stage('mx');
    const pid = readPid('run/bridge.pid');
    let stopped = false;
    try {
      const id = uuid();
      const later = uuid();
      process.kill(pid, 'SIGSTOP');
      stopped = true;
      const m0 = await bridgeMetrics();
      assert.ok(await publish(v, `chat/${c.channel}/${victim.id}`, JSON.stringify({ id, body: 'victim over mqtt' })) < 0x80);
      await waitFor(() => hasPayload(o, (m) => m.payload.includes(id)), DELIVER_MS, 'the other member to see it live');
      // 20 tries at once: the first stores it as the other member's, the rest are its replays
      const rs = await Promise.all(Array.from({ length: 20 }, () => postMsg(c.channel, other, { id, body: 'stolen over rest' })));
      const codes = rs.map((r) => r.status).sort();
      assert.equal(codes.filter((s) => s === 201).length, 1, `one 201: ${codes}`);
      assert.equal(codes.filter((s) => s === 200).length, 19, `19 replays: ${codes}`);
      // a message of the victim after it, also waiting for the bridge
      assert.ok(await publish(v, `chat/${c.channel}/${victim.id}`, JSON.stringify({ id: later, body: 'victim, next' })) < 0x80);
      await sleep(200);
      process.kill(pid, 'SIGCONT');
      stopped = false;
      await waitFor(() => v.storedIds().includes(later), STORED_MS, 'the receipt of the victim\'s next message');
      await waitFor(() => v.refusedIds().includes(id), STORED_MS, 'the refused notice to the victim');
      assert.ok(!v.storedIds().includes(id), `the victim got a receipt for an id stored as another's: ${JSON.stringify(v.notices('stored'))}`);
      const m1 = await bridgeMetrics();
      assert.equal(metric(m1, 'th_messages_refused_id_taken_total') - metric(m0, 'th_messages_refused_id_taken_total'), 1);
      const h = await historyWith(c.channel, victim, id);
      assert.equal(h.length, 1);
      assert.equal(h[0].sender.id, other.id);
      // re-sending it (as a client without a receipt does) keeps it refused, never a receipt
      assert.ok(await publish(v, `chat/${c.channel}/${victim.id}`, JSON.stringify({ id, body: 'victim over mqtt' })) < 0x80);
      await waitFor(() => v.notices('refused').filter((n) => n.ids.includes(id)).length >= 2, STORED_MS, 'a second refused notice');
      assert.ok(!v.storedIds().includes(id));
    } finally {
      if (stopped) process.kill(pid, 'SIGCONT');
      await end(v, o);
    }
  });

  test('the race without stopping the bridge: whoever stores the id owns it, and only the owner gets a receipt', { timeout: 60000 }, async () => {
    const { victim, other, c, v, o } = await stage('my');
    try {
      // 4 rounds of 6 tries: within the other member's message burst (30, fcgi-apps/lib/userlimits.h)
      for (let round = 0; round < 4; round++) {
        const id = uuid();
        const payload = JSON.stringify({ id, body: `victim ${round}` });
        const seen = waitFor(() => hasPayload(o, (m) => m.payload === payload), DELIVER_MS, 'the message live');
        assert.ok(await publish(v, `chat/${c.channel}/${victim.id}`, payload) < 0x80);
        await seen;
        const rs = await Promise.all(Array.from({ length: 6 }, () => postMsg(c.channel, other, { id, body: `stolen ${round}` })));
        const msg = await storedMessage(id, victim);
        await waitFor(() => v.storedIds().includes(id) || v.refusedIds().includes(id), STORED_MS, 'the victim\'s receipt or refusal');
        if (msg.sender.id === victim.id) {
          assert.ok(v.storedIds().includes(id) && !v.refusedIds().includes(id));
          assert.ok(rs.every((r) => r.status === 409), `REST tries: ${rs.map((r) => r.status)}`);
        } else {
          assert.equal(msg.sender.id, other.id);
          assert.ok(!v.storedIds().includes(id), 'receipt for an id stored as another\'s');
          assert.ok(rs.some((r) => r.status === 201), `REST tries: ${rs.map((r) => r.status)}`);
        }
      }
    } finally {
      await end(v, o);
    }
  });

  // LOCAL_ONLY: MQTT over TCP to the stack's own edge port
  test('MQTT against MQTT in one batch: the first in the broker\'s order owns the id', { timeout: 60000, skip: LOCAL_ONLY }, async () => {
    // Both on one edge: "the broker's order" is one broker's. Through the front the two
    // could sit on two edges, whose bridges reach the hub in either order.
    const { victim, other, c, v, o } = await stage('mz', edgeUrl(0));
    const pid = readPid('run/bridge.pid');
    let stopped = false;
    try {
      const id = uuid();
      process.kill(pid, 'SIGSTOP'); // both wait in the broker and reach the bridge together
      stopped = true;
      assert.ok(await publish(v, `chat/${c.channel}/${victim.id}`, JSON.stringify({ id, body: 'first' })) < 0x80);
      assert.ok(await publish(o, `chat/${c.channel}/${other.id}`, JSON.stringify({ id, body: 'second' })) < 0x80);
      process.kill(pid, 'SIGCONT');
      stopped = false;
      await waitFor(() => v.storedIds().includes(id), STORED_MS, 'the first sender\'s receipt');
      await waitFor(() => o.refusedIds().includes(id), STORED_MS, 'the second sender\'s refusal');
      assert.ok(!o.storedIds().includes(id));
      const h = await historyWith(c.channel, victim, id);
      assert.equal(h.length, 1);
      assert.equal(h[0].sender.id, victim.id);
      assert.equal(h[0].body, 'first');
    } finally {
      if (stopped) process.kill(pid, 'SIGCONT');
      await end(v, o);
    }
  });
});

describe('one sequence per channel for both writers', { timeout: 60000 }, () => {
  test('REST posts and MQTT publishes into one channel at once: every message once, seq 1..n without a gap', async () => {
    const { victim, other, c, v, o } = await stage('sq');
    try {
      const ids = [];
      const sends = [];
      // 12 each way, interleaved (within both users' message bursts, fcgi-apps/lib/userlimits.h)
      for (let i = 0; i < 12; i++) {
        const a = uuid();
        const b = uuid();
        ids.push(a, b);
        sends.push(publish(v, `chat/${c.channel}/${victim.id}`, JSON.stringify({ id: a, body: `mqtt ${i}` })));
        sends.push(postMsg(c.channel, other, { id: b, body: `rest ${i}` }));
      }
      const done = await Promise.all(sends);
      for (let i = 0; i < done.length; i += 2) {
        assert.ok(done[i] < 0x80, `PUBACK ${done[i]}`);
        assertStatus(done[i + 1], 201);
      }
      let items = [];
      await waitFor(async () => {
        const r = assertStatus(await api('GET', `/api/channels/${c.channel}/messages?limit=100`, victim), 200);
        items = r.json.items;
        return items.length >= ids.length;
      }, STORED_MS, 'all 24 messages stored');
      assert.equal(items.length, ids.length, 'a message stored twice');
      assert.deepEqual(new Set(items.map((m) => m.id)), new Set(ids));
      assert.deepEqual(items.map((m) => m.seq).sort((x, y) => x - y), Array.from({ length: ids.length }, (_, i) => i + 1));
    } finally {
      await end(v, o);
    }
  });
});

describe('reply_to names a message of the same channel', { timeout: 60000 }, () => {
  test('REST: reply_to of another channel or unknown -> 400 validation_failed (reply_to); same channel kept', async () => {
    const u = await newUser('mra');
    const c = await community(u, 'public');
    const c2 = await community(u, 'public');
    const there = assertStatus(await postMsg(c2.channel, u, { body: 'elsewhere' }), 201).json;
    const here = assertStatus(await postMsg(c.channel, u, { body: 'here' }), 201).json;
    assertError(await postMsg(c.channel, u, { body: 'reply', reply_to: there.id }), 400, 'validation_failed', 'reply_to');
    assertError(await postMsg(c.channel, u, { body: 'reply', reply_to: uuid() }), 400, 'validation_failed', 'reply_to');
    const ok = assertStatus(await postMsg(c.channel, u, { body: 'reply', reply_to: here.id }), 201).json;
    assert.equal(ok.reply_to, here.id);
  });

  // LOCAL_ONLY: calls message_store() (the bridge's and REST's one path) in psql
  test('one batch: a reply to an earlier message of the batch is kept; to a later one, or one in another channel of the batch, cleared', { skip: LOCAL_ONLY }, async () => {
    const u = await newUser('mrc');
    const c = await community(u, 'public');
    const c2 = await community(u, 'public');
    const [a, b, d, e, f] = [uuid(), uuid(), uuid(), uuid(), uuid()];
    // a; b replies to a (earlier, same channel); d replies to e (later); f in c2 replies to a
    const rows = [[a, c.channel, null], [b, c.channel, a], [d, c.channel, e], [e, c.channel, null], [f, c2.channel, a]];
    const arr = (xs, type) => `ARRAY[${xs.map((x) => (x === null ? 'NULL' : `'${x}'`)).join(',')}]::${type}[]`;
    const r = await psql(`SELECT id || ' ' || status || ' ' || reply_cleared FROM message_store(${arr(rows.map((x) => x[0]), 'uuid')}, ${arr(rows.map((x) => x[1]), 'bigint')}, ${arr(rows.map(() => u.id), 'bigint')}, ${arr(rows.map((x, i) => `m${i}`), 'text')}, ${arr(rows.map((x) => x[2]), 'uuid')})`);
    assert.equal(r.code, 0, r.stderr);
    const got = Object.fromEntries(r.stdout.trim().split('\n').map((l) => { const [id, st, cl] = l.split(' '); return [id, { st, cl }]; }));
    for (const id of [a, b, d, e, f]) assert.equal(got[id]?.st, '1', `${id} stored: ${r.stdout}`);
    assert.deepEqual([b, d, f].map((id) => got[id].cl), ['false', 'true', 'true']);
    assert.equal((await getMsg(b, u)).json.reply_to, a);
    assert.equal((await getMsg(d, u)).json.reply_to, null);
    assert.equal((await getMsg(f, u)).json.reply_to, null);
  });

  // LOCAL_ONLY: reads the bridge's /metrics, served to loopback only
  test('MQTT: reply_to of another channel is stored as null (the message itself is stored), counted; same channel kept', { skip: LOCAL_ONLY }, async () => {
    const u = await newUser('mrb');
    const c = await community(u, 'public');
    const c2 = await community(u, 'public');
    const there = assertStatus(await postMsg(c2.channel, u, { body: 'elsewhere' }), 201).json;
    const here = assertStatus(await postMsg(c.channel, u, { body: 'here' }), 201).json;
    const conn = await client(u);
    try {
      const m0 = await bridgeMetrics();
      const a = uuid();
      const b = uuid();
      const d = uuid();
      const e = uuid();
      const topic = `chat/${c.channel}/${u.id}`;
      assert.ok(await publish(conn, topic, JSON.stringify({ id: a, body: 'reply elsewhere', reply_to: there.id })) < 0x80);
      assert.ok(await publish(conn, topic, JSON.stringify({ id: b, body: 'reply here', reply_to: here.id })) < 0x80);
      assert.ok(await publish(conn, topic, JSON.stringify({ id: d, body: 'reply to nothing', reply_to: uuid() })) < 0x80);
      // a reply to a message published just before it (perhaps in the same batch)
      assert.ok(await publish(conn, topic, JSON.stringify({ id: e, body: 'reply to b', reply_to: b })) < 0x80);
      await waitFor(() => [a, b, d, e].every((id) => conn.storedIds().includes(id)), STORED_MS, 'the receipts');
      assert.equal((await getMsg(a, u)).json.reply_to, null);
      assert.equal((await getMsg(b, u)).json.reply_to, here.id);
      assert.equal((await getMsg(d, u)).json.reply_to, null);
      assert.equal((await getMsg(e, u)).json.reply_to, b);
      const m1 = await bridgeMetrics();
      assert.equal(metric(m1, 'th_messages_reply_to_cleared_total') - metric(m0, 'th_messages_reply_to_cleared_total'), 2);
    } finally {
      await end(conn);
    }
  });
});
