// The broker's limits and rules of issue 17 (API.md "Limits every route and topic obeys" and
// the paragraph after it), black-box with mqtt.js over WebSocket through nginx (and raw TCP
// on BASE+3 where the broker's own packet limit is meant):
//   - retained publishes on chat/typing/signal are never stored or delivered;
//   - a will that would not pass as a publish is refused at CONNECT by the WebSocket front
//     (realtime-bridge/front/mconn.c; 2.0.11 gives plugins no view of the will there) and
//     never delivered;
//   - user properties count against the 64 KiB size limit; a bigger packet closes over TCP;
//   - 200 subscriptions a client, 20 connections a user, the per-user chat rate;
//   - a client that keeps sending refused filters is closed in the middle of its SUBSCRIBE;
//   - the membership mirror rebuilds itself after a Redis FLUSHALL and a Redis restart.
//
// Every "nothing arrives" is proven with a sentinel (a valid message sent after, on the same
// publisher, arrives; QoS 1 from one publisher is delivered in order) or a positive control.
// Registrations come from 127.21.x.y (fixtures.mjs: each test file its own block).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { VAR_DIR, sleep, LOCAL_ONLY } from './lib/http.mjs';
import { assertStatus } from './lib/assert.mjs';
import { uuid, api, fixtures, rnd } from './lib/fixtures.mjs';
import { redis, redisMonitor, stackUp, edgePort } from './lib/stack.mjs';
import mqtt from 'mqtt';
import {
  WS_URL, CONNECT_MS, clients, DELIVER_MS, closeClients, cid, connect, end, subscribe, mustSubscribe, publish, waitFor, hasPayload,
} from './lib/mqtt.mjs';

const QUIET_MS = 1500;
const { newUser, community } = fixtures({ net: 21, slug: 'ml', name: 'Limits', general: true });
const chat = (body = 'hi') => JSON.stringify({ id: uuid(), body });

const U = {};
let pub; // a public community of A with B as a member: .channel is #general

before(async () => {
  for (const k of ['A', 'B', 'C']) U[k] = await newUser(`ml${k.toLowerCase()}`);
  pub = await community(U.A, 'public', [U.B]);
});
after(closeClients);

// Publishes a sentinel from `from` on its own chat topic and waits for `to` to get it.
async function sentinel(from, to, user) {
  const s = chat(`sentinel-${rnd()}`);
  assert.equal(await publish(from, `chat/${pub.channel}/${user.id}`, s), 0, 'sentinel refused');
  await waitFor(() => hasPayload(to, s), DELIVER_MS, 'the sentinel');
}

describe('retained publishes on user topics', () => {
  test('retained chat and typing are refused and a later subscriber gets nothing', async () => {
    const a = await connect(U.A);
    const live = await connect(U.B);
    await mustSubscribe(live, `chat/${pub.channel}/+`);
    await mustSubscribe(live, `typing/${pub.channel}/+`);
    const rc = await publish(a, `chat/${pub.channel}/${U.A.id}`, chat('retained'), { retain: true });
    assert.ok(rc >= 0x80, `retained chat: PUBACK 0x${rc.toString(16)}, want a failure code`);
    const rt = await publish(a, `typing/${pub.channel}/${U.A.id}`, '{}', { retain: true });
    assert.ok(rt >= 0x80, `retained typing: PUBACK 0x${rt.toString(16)}`);
    await sentinel(a, live, U.A);
    assert.ok(!live.messages.some((m) => m.payload.includes('retained') || m.topic.startsWith('typing/')),
      'a retained publish was delivered live');
    const later = await connect(U.B);
    await mustSubscribe(later, `chat/${pub.channel}/+`);
    await mustSubscribe(later, `typing/${pub.channel}/+`);
    await sleep(QUIET_MS);
    assert.deepEqual(later.messages, [], 'a later subscriber got a retained message');
    await end(a, live, later);
  });

  test('a retained signal is refused; the same signal not retained is delivered', async () => {
    const call = assertStatus(await api('POST', '/api/calls', U.A, { channel_id: pub.channel }), 201, 'start call:').json;
    assertStatus(await api('POST', `/api/calls/${call.id}/join`, U.B), 200, 'join call:');
    const a = await connect(U.A);
    const b = await connect(U.B);
    await mustSubscribe(b, `signal/${call.id}/${U.B.id}/+`);
    const topic = `signal/${call.id}/${U.B.id}/${U.A.id}`;
    const rc = await publish(a, topic, '{"type":"offer-retained"}', { retain: true });
    assert.ok(rc >= 0x80, `retained signal: PUBACK 0x${rc.toString(16)}`);
    assert.equal(await publish(a, topic, '{"type":"offer"}'), 0, 'plain signal refused');
    await waitFor(() => hasPayload(b, '{"type":"offer"}'), DELIVER_MS, 'the plain signal');
    assert.ok(!hasPayload(b, '{"type":"offer-retained"}'), 'the retained signal was delivered');
    await api('POST', `/api/calls/${call.id}/leave`, U.A);
    await api('POST', `/api/calls/${call.id}/leave`, U.B);
    await end(a, b);
  });
});

describe('wills', () => {
  // connect with a will (lib/mqtt.mjs's connect() sets none), then drop the socket without
  // DISCONNECT: the broker sends the will. -> 'sent', or the CONNACK code that refused it
  // (the WebSocket front checks a will at CONNECT, API.md "Limits every route and topic obeys")
  async function dieWith(user, will) {
    const client = mqtt.connect(WS_URL, {
      protocolVersion: 5, clientId: cid(user), username: 'x', password: user.token, reconnectPeriod: 0,
      connectTimeout: CONNECT_MS, clean: true, keepalive: 30, will,
    });
    clients.add(client);
    let refusedCode = null;
    client.on('error', (e) => { if (typeof e.code === 'number') refusedCode = e.code; });
    const r = await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no CONNACK')), CONNECT_MS);
      client.on('connect', () => { clearTimeout(t); resolve('connected'); });
      client.on('close', () => { if (refusedCode !== null) { clearTimeout(t); resolve(refusedCode); } });
    });
    if (r !== 'connected') { client.end(true); return r; }
    client.stream.destroy();
    await new Promise((res) => { if (client.connected) client.once('close', res); else res(); });
    return 'sent';
  }

  test('a will that would not pass as a publish is refused at CONNECT and never delivered; a valid one is', async () => {
    const watcher = await connect(U.B);
    await mustSubscribe(watcher, `chat/${pub.channel}/+`);
    await mustSubscribe(watcher, `presence/${pub.id}/+`);
    const mine = `chat/${pub.channel}/${U.A.id}`;
    // refused: invalid payload, a topic nobody may write, somebody else's topic, retained
    assert.equal(await dieWith(U.A, { topic: mine, payload: 'not json', qos: 1 }), 0x99, 'invalid payload');
    assert.equal(await dieWith(U.A, { topic: `presence/${pub.id}/${U.A.id}`, payload: 'fake-presence', qos: 1 }), 0x90,
      'presence topic');
    assert.equal(await dieWith(U.A, { topic: `chat/${pub.channel}/${U.B.id}`, payload: chat('forged-author'), qos: 1 }), 0x90,
      'forged author');
    assert.equal(await dieWith(U.A, { topic: mine, payload: chat('retained-will'), qos: 1, retain: true }), 0x9a,
      'retained will');
    // positive control: a will that passes every publish check is delivered
    const good = chat('good-will');
    assert.equal(await dieWith(U.A, { topic: mine, payload: good, qos: 1 }), 'sent');
    await waitFor(() => hasPayload(watcher, good), DELIVER_MS, 'the valid will');
    await sleep(300);
    const bad = watcher.messages.filter((m) => m.payload === 'not json' || m.payload === 'fake-presence' || m.payload.includes('forged-author')
      || m.payload.includes('retained-will'));
    assert.deepEqual(bad, [], 'an invalid will was delivered');
    const later = await connect(U.B);
    await mustSubscribe(later, `chat/${pub.channel}/+`);
    await sleep(QUIET_MS);
    assert.deepEqual(later.messages, [], 'a retained will was stored');
    await end(watcher, later);
  });

  // 2.0.11 checks a will only with the ACL check it runs before sending it, never with the
  // MESSAGE event where a publish's rate and chat rules were applied: a member could get past
  // slow mode, a community's content limits and the message rate by connecting with a will and
  // dropping, again and again (realtime-bridge/plugin/plugin.c, acl_publish).
  test('a will pays the rate and the community\'s chat rules like a publish', async () => {
    const c = await community(U.A, 'public', [U.C]);
    assertStatus(await api('PATCH', `/api/communities/${c.id}`, U.A, { slow_mode_seconds: 3600, links_allowed: false }), 200,
      'slow mode:');
    await sleep(1000); // the brokers' rule cache follows the mirror
    const watcher = await connect(U.A);
    await mustSubscribe(watcher, `chat/${c.channel}/+`);
    const mine = `chat/${c.channel}/${U.C.id}`;
    const m = await connect(U.C);
    const first = chat('first-of-slow-mode');
    assert.equal(await publish(m, mine, first), 0, 'the first message in slow mode was refused');
    await waitFor(() => hasPayload(watcher, first), DELIVER_MS, 'the first message');
    assert.ok(await publish(m, mine, chat('second-publish')) >= 0x80, 'a second publish passed slow mode');
    await end(m);
    // valid wills as far as CONNECT can tell (the front does not know a community's rules):
    // each connection is accepted, and no will reaches anyone
    for (let i = 0; i < 5; i++) {
      assert.equal(await dieWith(U.C, { topic: mine, payload: chat(`slow-will-${i}`), qos: 1 }), 'sent');
    }
    assert.equal(await dieWith(U.C, { topic: mine, payload: chat('a link https://example.com/x'), qos: 1 }), 'sent');
    // the owner is above slow mode: their message after the wills arrives, and nothing of C's
    const own = chat('owner-after-wills');
    assert.equal(await publish(watcher, `chat/${c.channel}/${U.A.id}`, own), 0, 'the owner\'s message refused');
    await waitFor(() => hasPayload(watcher, own), DELIVER_MS, 'the owner\'s message');
    await sleep(QUIET_MS);
    const got = watcher.messages.filter((x) => x.payload.includes('slow-will-') || x.payload.includes('example.com')
      || x.payload.includes('second-publish'));
    assert.deepEqual(got.map((x) => x.payload), [], 'a will got past slow mode or the no-links rule');
    const hist = assertStatus(await api('GET', `/api/channels/${c.channel}/messages?limit=100`, U.A), 200, 'history:').json.items;
    assert.deepEqual(hist.map((x) => x.body).filter((b) => b !== 'first-of-slow-mode' && b !== 'owner-after-wills'), [],
      'a will was stored');
    await end(watcher);
  });
});

describe('sizes', () => {
  test('user properties count against the size limits: 20 KiB (payload + properties over 16 KiB) and 70 KiB are refused; small ones pass', async () => {
    const a = await connect(U.A);
    const b = await connect(U.B);
    await mustSubscribe(b, `chat/${pub.channel}/+`);
    const send = (payload, userProperties) => new Promise((resolve) => {
      a.client.publish(`chat/${pub.channel}/${U.A.id}`, payload, { qos: 1, properties: { userProperties } },
        (err, packet) => resolve(packet?.reasonCode ?? err?.code ?? (err ? 'error' : 0)));
    });
    const mid = chat('mid-props');
    assert.equal(await send(mid, { pad: 'x'.repeat(20 * 1024) }), 0x87, '20 KiB of user properties');
    const big = chat('big-props');
    const rc = await Promise.race([send(big, { pad1: 'x'.repeat(35 * 1024), pad2: 'x'.repeat(35 * 1024) }), sleep(DELIVER_MS).then(() => 'timeout')]);
    assert.ok(rc === 0x87 || a.closed, `70 KiB of user properties: got ${rc}, want 0x87 or a close`);
    if (!a.closed) {
      const small = chat('small-props');
      assert.equal(await send(small, { k: 'v' }), 0);
      await waitFor(() => hasPayload(b, small), DELIVER_MS, 'the small-properties message');
    }
    assert.ok(!hasPayload(b, big) && !hasPayload(b, mid), 'a message with too many user properties was delivered');
    await end(a, b);
  });

  // LOCAL_ONLY: MQTT over TCP to the stack's own edge port
  test('a packet over 64 KiB closes the connection over TCP', { skip: LOCAL_ONLY }, async () => {
    // CONNECT (3.1.1, clean, no credentials needed: the broker checks the size first)
    // followed by a PUBLISH whose remaining length says 100 KiB
    const sock = net.connect(edgePort(0), '127.0.0.1');
    const closed = new Promise((resolve) => sock.on('close', () => resolve(Date.now())));
    sock.on('error', () => {});
    await new Promise((r) => sock.on('connect', r));
    const id = Buffer.from(cid(U.A));
    const pw = Buffer.from(U.A.token);
    const user = Buffer.from('x');
    const vh = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0xc2, 0, 30]);
    const str = (b) => Buffer.concat([Buffer.from([b.length >> 8, b.length & 255]), b]);
    const body = Buffer.concat([vh, str(id), str(user), str(pw)]);
    const len = (n) => { const o = []; do { let d = n % 128; n = Math.floor(n / 128); if (n) d |= 128; o.push(d); } while (n); return Buffer.from(o); };
    const connack = new Promise((resolve) => sock.once('data', (d) => resolve(d)));
    sock.write(Buffer.concat([Buffer.from([0x10]), len(body.length), body]));
    const ack = await Promise.race([connack, sleep(DELIVER_MS).then(() => null)]);
    // positive control: the connection itself was accepted (CONNACK, return code 0)
    assert.ok(ack && ack[0] === 0x20 && ack[3] === 0, `CONNACK: ${ack && ack.toString('hex')}`);
    const t0 = Date.now();
    sock.write(Buffer.concat([Buffer.from([0x30]), len(100 * 1024), Buffer.alloc(1024)]));
    const at = await Promise.race([closed, sleep(DELIVER_MS).then(() => null)]);
    sock.destroy();
    assert.ok(at !== null, 'the broker kept a connection that announced a 100 KiB packet');
    assert.ok(at - t0 < DELIVER_MS);
  });
});

describe('subscriptions and connections', () => {
  test('200 subscriptions a client: the 201st is refused, a repeat or a freed slot is not', async () => {
    const b = await connect(U.B);
    const filters = Array.from({ length: 200 }, (_, i) => `chat/${pub.channel}/${i + 1}`);
    const granted = await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no SUBACK for 200 filters')), DELIVER_MS * 2);
      b.client.subscribe(filters, { qos: 0 }, (err, g) => { clearTimeout(t); if (err) reject(err); else resolve(g); });
    });
    const refusedOf200 = granted.filter((g) => g.qos >= 0x80).length;
    assert.equal(refusedOf200, 0, `${refusedOf200} of the first 200 filters refused`);
    const over = await subscribe(b, `chat/${pub.channel}/+`);
    assert.ok(over >= 0x80, `the 201st subscription was granted (0x${over.toString(16)})`);
    assert.ok((await subscribe(b, filters[0])) < 0x80, 're-subscribing a held filter was refused');
    await new Promise((r) => b.client.unsubscribe(filters[0], r));
    assert.ok((await subscribe(b, `chat/${pub.channel}/+`)) < 0x80, 'a freed slot was not given back');
    assert.ok(!b.closed, 'the client was closed');
    await end(b);
  });

  test('a client sending thousands of refused filters is closed mid-packet', async () => {
    const b = await connect(U.C);
    const other = await connect(U.B);
    await mustSubscribe(other, `chat/${pub.channel}/+`);
    // 3,000 filters: a SUBSCRIBE of 57 KiB, under the 64 KiB packet limit that the WebSocket
    // front enforces before the broker (wsfront.test.mjs), so the broker's own defence acts
    const filters = Array.from({ length: 3000 }, (_, i) => `chat/${900000000 + i}/+`);
    let reason = null;
    b.client.on('disconnect', (p) => { reason = p.reasonCode; });
    b.client.subscribe(filters, { qos: 0 }, () => {});
    await waitFor(() => b.closed, DELIVER_MS, 'the flooding client to be closed');
    assert.equal(reason, 0x98, 'an MQTT 5 client is told why (DISCONNECT 0x98, administrative action)');
    // and its user cannot come straight back (a reconnect must not reset the budgets)
    await assert.rejects(connect(U.C), (e) => e.refused, 'reconnected at once after the close');
    // the broker still serves everyone else
    const a = await connect(U.A);
    await sentinel(a, other, U.A);
    await end(a, other, b);
  });

  test('20 connections a user: the 21st is refused, a takeover of one of them is not', async () => {
    const u = await newUser('mlconn');
    const conns = [];
    for (let i = 0; i < 20; i++) conns.push(await connect(u));
    let refused = null;
    try {
      const c = await connect(u);
      conns.push(c);
    } catch (e) {
      refused = e;
    }
    assert.ok(refused?.refused, `the 21st connection was accepted (${refused?.message})`);
    assert.equal(refused.code, 0x87, `CONNACK reason of the 21st: ${refused.code}`);
    const again = await connect(u, { clientId: conns[0].clientId });
    await waitFor(() => conns[0].closed, DELIVER_MS, 'the taken-over connection to close');
    await end(again, ...conns);
    // the slots come back when connections close
    await sleep(200);
    const after1 = await connect(u);
    await end(after1);
  });

  // each connection and close is a presence change in every community of the user and a
  // session for the broker: a client cycling connections gets them at the user's connection
  // rate (tests/integration/run: one every 100 ms, 100 in a row; API.md's default 1/s, 30)
  test('connections opened per user: past the burst and rate CONNECT is refused (0x87); the budget refills; others unaffected', { timeout: 60000 }, async () => {
    const u = await newUser('mlrate');
    let opened = 0;
    let refused = null;
    const t0 = Date.now();
    while (opened < 400 && Date.now() - t0 < 30000) {
      try {
        const c = await connect(u);
        opened += 1;
        await end(c);
      } catch (e) {
        refused = e;
        break;
      }
    }
    const secs = (Date.now() - t0) / 1000;
    assert.ok(refused?.refused, `${opened} connections in ${secs} s, none refused`);
    assert.equal(refused.code, 0x87, `CONNACK reason: ${refused.code}`);
    // the burst, plus what the rate gave back meanwhile, give or take one
    assert.ok(opened >= 100 && opened <= 101 + Math.ceil(secs * 10), `${opened} opened in ${secs} s`);
    const other = await connect(U.A);
    await end(other);
    await sleep(1000);
    const back = await connect(u);
    await end(back);
  });
});

describe('offline sessions', () => {
  // mqtt.js with options lib/mqtt.mjs's connect() does not offer; -> {client, messages, connack}
  async function rawConnect(user, o) {
    const client = mqtt.connect(WS_URL, {
      username: 'x', password: user.token, reconnectPeriod: 0, connectTimeout: CONNECT_MS, keepalive: 30, ...o,
    });
    clients.add(client);
    client.on('error', () => {});
    const messages = [];
    client.on('message', (topic, payload) => messages.push({ topic, payload: payload.toString('utf8') }));
    const connack = await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no CONNACK')), CONNECT_MS);
      client.once('connect', (p) => { clearTimeout(t); resolve(p); });
    });
    return { client, messages, connack };
  }

  // a connection with clean session/start false leaves a session the broker keeps for a day:
  // a client opening each connection under a new client id would leave thousands
  // (realtime-bridge/plugin/msess.h: 10 a user by default)
  test('a user keeps at most 10 sessions: a new one past them is refused; resuming one and clean connections are not', async () => {
    const u = await newUser('mlsess');
    // -> 'connected', 'resumed' (sessionPresent) or the CONNACK reason code that refused it
    const open = async (clientId, clean) => {
      const client = mqtt.connect(WS_URL, {
        protocolVersion: 5, clientId, clean, username: 'x', password: u.token, reconnectPeriod: 0,
        connectTimeout: CONNECT_MS, keepalive: 30, properties: clean ? {} : { sessionExpiryInterval: 3600 },
      });
      clients.add(client);
      let refused = null;
      client.on('error', (e) => { if (typeof e.code === 'number') refused = e.code; });
      const r = await new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no CONNACK for ${clientId}`)), CONNECT_MS);
        client.on('connect', (p) => { clearTimeout(t); resolve(p.sessionPresent ? 'resumed' : 'connected'); });
        client.on('close', () => { if (refused !== null) { clearTimeout(t); resolve(refused); } });
      });
      if (typeof r === 'number') client.end(true);
      else await new Promise((res) => client.end(false, {}, res));
      clients.delete(client);
      return r;
    };
    const ids = [];
    for (let i = 0; i < 10; i++) {
      ids.push(`${cid(u)}-s${i}`);
      assert.equal(await open(ids[i], false), 'connected', `session ${i + 1}`);
    }
    assert.equal(await open(`${cid(u)}-s10`, false), 0x87, 'an 11th session was let in');
    assert.equal(await open(ids[3], false), 'resumed', 'resuming a kept session was refused');
    assert.equal(await open(`${cid(u)}-clean`, true), 'connected', 'a clean connection was refused');
    // another user is not affected (a fresh one: U.C cools down after the filter flood above)
    const other = await newUser('mlsesso');
    const c = await connect(other, { clientId: `${cid(other)}-s0` });
    await end(c);
  });

  test("nothing is queued for a user's offline persistent session", async () => {
    const clientId = cid(U.B);
    const o = { clientId, clean: false, protocolVersion: 4 };
    const s1 = await rawConnect(U.B, o);
    await new Promise((r) => s1.client.subscribe(`chat/${pub.channel}/+`, { qos: 1 }, r));
    await new Promise((r) => s1.client.end(false, {}, r));
    clients.delete(s1.client);
    const a = await connect(U.A);
    // another connection of B (so on B's edge: th-wsfront picks the edge by user) sees when
    // the messages reached that edge: A may sit on another edge, and a PUBACK there says
    // nothing about the hub's copy to B's edge, which a reconnect must not overtake
    const watch = await connect(U.B);
    await mustSubscribe(watch, `chat/${pub.channel}/+`);
    const offline = [];
    for (let i = 0; i < 5; i++) {
      const m = chat(`offline-${i}`);
      offline.push(m);
      assert.equal(await publish(a, `chat/${pub.channel}/${U.A.id}`, m), 0);
    }
    await waitFor(() => offline.every((m) => hasPayload(watch, m)), DELIVER_MS, 'the messages on B\'s edge');
    await end(watch);
    const s2 = await rawConnect(U.B, o);
    assert.equal(s2.connack.sessionPresent, true, 'the session did not persist');
    // the session's subscription is there (a live message arrives) but nothing was queued
    const s = chat(`sentinel-${rnd()}`);
    assert.equal(await publish(a, `chat/${pub.channel}/${U.A.id}`, s), 0);
    await waitFor(() => s2.messages.some((m) => m.payload === s), DELIVER_MS, 'the live message');
    const queued = s2.messages.filter((m) => offline.includes(m.payload));
    assert.deepEqual(queued, [], 'messages were queued for the offline session');
    await new Promise((r) => s2.client.end(false, {}, r));
    clients.delete(s2.client);
    await end(a);
  });
});

// The chat rate of the stack under test (the plugin reads the same variables; API.md: 10/s,
// burst 30). A run that loosens it for load tests (e.g. bridge.test.mjs's hundreds of messages
// a user a second) cannot show drops within a test's time: the test says so and skips.
const MSG_INTERVAL_MS = Number(process.env.TH_RL_MSG_INTERVAL_MS || 100);
const MSG_BURST = Number(process.env.TH_RL_MSG_BURST || 30);
const RATE_TESTABLE = MSG_INTERVAL_MS >= 50 && MSG_BURST <= 100;

describe('publish rate', () => {
  // LOCAL_ONLY: the rate the stack was started with (a cluster loosens it) and its Redis
  test('chat over 10/s burst 30 is dropped with a failure code', {
    skip: LOCAL_ONLY || (RATE_TESTABLE ? false : `chat rate loosened to ${MSG_BURST} every ${MSG_INTERVAL_MS} ms`),
  }, async () => {
    const u = await newUser('mlrate');
    assertStatus(await api('POST', `/api/communities/${pub.id}/join`, u), 200, 'join:');
    const p = await connect(u);
    const w = await connect(U.B);
    await mustSubscribe(w, `chat/${pub.channel}/${u.id}`);
    const n = MSG_BURST * 2;
    const codes = await Promise.all(Array.from({ length: n },
      (_, i) => publish(p, `chat/${pub.channel}/${u.id}`, chat(`burst-${i}`))));
    const refused = codes.filter((c) => c >= 0x80).length;
    // 2 x burst at once: about a burst passes (plus what refills while they arrive)
    assert.ok(refused >= MSG_BURST / 2, `only ${refused} of ${n} refused: ${codes.join(',')}`);
    assert.ok(refused <= n - MSG_BURST / 2, `${refused} of ${n} refused: the burst was not honoured`);
    await sleep(QUIET_MS);
    const got = w.messages.filter((m) => m.payload.includes('burst-')).length;
    assert.equal(got, n - refused, 'deliveries differ from the accepted publishes');
    // the MQTT hits are booked in the bucket the REST routes take from (synced on the tick)
    await waitFor(async () => Number(await redis('GET', `th:rl:msg:${u.id}`)) > 0, DELIVER_MS,
      'th:rl:msg:<uid> booked');
    await end(p, w);
  });
});

describe('the ACL cache', () => {
  // LOCAL_ONLY: watches the stack's Redis (MONITOR). Before the rebuild tests: a rebuild makes
  // every broker forget every answer, as it must.
  test('a membership change in another community makes no broker ask again; one in this community does',
    { skip: LOCAL_ONLY }, async () => {
      const owner = await newUser('mlco');
      const member = await newUser('mlcm');
      const joiner = await newUser('mlcj');
      const priv = await community(owner, 'private', [[member, 'member']]);
      const other = await community(owner, 'public');
      const sub = await connect(member);
      await mustSubscribe(sub, `chat/${priv.channel}/+`);
      const from = await connect(owner);
      const send = async (tag) => {
        const m = chat(`${tag}-${rnd()}`);
        assert.equal(await publish(from, `chat/${priv.channel}/${owner.id}`, m), 0, `${tag}: publish refused`);
        await waitFor(() => hasPayload(sub, m), DELIVER_MS, tag);
      };
      // each delivery checks the subscriber's membership (MOSQ_ACL_READ): the first asks Redis,
      // the next ones are answered from the broker's cache
      await send('warm-1');
      await sleep(1200);
      await send('warm-2');
      // HGET th:members:<priv> <uid>: the broker asking about a member of this community
      const asked = (lines, uid) => lines.filter((l) => l.includes(`"HGET" "th:members:${priv.id}"`) &&
        (uid === undefined || l.includes(`"${uid}"`))).length;
      let mon = await redisMonitor();
      for (let i = 0; i < 3; i++) {
        assertStatus(await api('POST', `/api/communities/${other.id}/join`, joiner), 200, 'join elsewhere:');
        assertStatus(await api('POST', `/api/communities/${other.id}/leave`, joiner), 204, 'leave elsewhere:');
      }
      await sleep(2500); // two turns of the brokers' once-a-second look at the mirror
      await send('after-elsewhere');
      let lines = await mon.stop();
      assert.ok(lines.some((l) => l.includes('"XADD" "th:mirror:log"')), 'the changes elsewhere were not logged');
      assert.equal(asked(lines), 0, `a broker asked again about members of an unchanged community:\n${
        lines.filter((l) => l.includes(`th:members:${priv.id}`)).join('\n')}`);
      // the positive control: this member's role changes, the answer about them is asked again
      mon = await redisMonitor();
      assertStatus(await api('PUT', `/api/communities/${priv.id}/members/${member.id}`, owner, { role: 'moderator' }),
        200, 'role change:');
      await sleep(2500);
      await send('after-here');
      lines = await mon.stop();
      assert.ok(asked(lines, member.id) >= 1, 'no broker asked again about the member whose role changed');
      await end(sub, from);
    });
});

describe('membership mirror rebuild', () => {
  // a scripts/mirror-rebuild process on this machine (the brokers' watch starts it)
  function rebuildRunning() {
    for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('mirror-rebuild')) return true;
      } catch { /* gone meanwhile */ }
    }
    return false;
  }

  async function redisPid() {
    return Number(readFileSync(path.join(VAR_DIR, 'run/redis.pid'), 'utf8').trim());
  }

  async function checkAfterLoss(how, lose) {
    const owner = await newUser('mlmo');
    const member = await newUser('mlmm');
    const priv = await community(owner, 'private', [[member, 'member']]);
    const live = await connect(owner);
    await mustSubscribe(live, `chat/${priv.channel}/+`);
    await lose();
    // a new subscriber of the private community is granted within a few seconds
    const fresh = await connect(member);
    const code = await waitFor(async () => {
      const c = await subscribe(fresh, `chat/${priv.channel}/+`);
      return c < 0x80 ? 'granted' : null;
    }, 10000, `a SUBACK granted after ${how}`);
    assert.equal(code, 'granted');
    // the connected client keeps receiving
    const m = chat(`after-${how}`);
    assert.equal(await publish(fresh, `chat/${priv.channel}/${member.id}`, m), 0, `publish after ${how}`);
    await waitFor(() => hasPayload(live, m), DELIVER_MS, `delivery after ${how}`);
    // and the mirror is back in Redis (rebuilt by the broker's watch, no admin)
    await waitFor(async () => (await redis('HEXISTS', `th:members:${priv.id}`, String(member.id))) === '1',
      15000, `the mirror rebuilt after ${how}`);
    await waitFor(async () => (await redis('GET', 'th:mirror:epoch')) !== '', 15000, 'the marker set again');
    // a non-member is still refused
    const outsider = await connect(U.C);
    assert.ok((await subscribe(outsider, `chat/${priv.channel}/+`)) >= 0x80, 'an outsider was granted');
    await end(live, fresh, outsider);
  }

  // LOCAL_ONLY: flushes the stack's Redis
  test('call participants after a Redis FLUSHALL: signaling goes on', { skip: LOCAL_ONLY }, async () => {
    const call = assertStatus(await api('POST', '/api/calls', U.A, { channel_id: pub.channel }), 201, 'start call:').json;
    assertStatus(await api('POST', `/api/calls/${call.id}/join`, U.B), 200, 'join call:');
    const a = await connect(U.A);
    const b = await connect(U.B);
    await mustSubscribe(b, `signal/${call.id}/${U.B.id}/+`);
    await redis('FLUSHALL');
    const topic = `signal/${call.id}/${U.B.id}/${U.A.id}`;
    const tag = rnd();
    let n = 0;
    // within a few seconds the publish is allowed again (PostgreSQL, then the rebuilt set)
    // and delivered: A and B may sit on different edges, and B's edge notices the flush on its
    // own tick (once a second, plugin/mwatch.h), so a candidate that arrives there before
    // that may be dropped; A keeps sending candidates, as a WebRTC client does
    await waitFor(async () => {
      if ((await publish(a, topic, `{"type":"candidate","n":"${tag}-${n++}"}`)) !== 0) return false;
      await sleep(200);
      return b.messages.some((m) => m.payload.includes(tag));
    }, 15000, 'a signal publish accepted and delivered after the flush');
    await waitFor(async () => (await redis('SISMEMBER', `th:call:${call.id}:participants`, String(U.B.id))) === '1',
      15000, 'the participants set rebuilt');
    await api('POST', `/api/calls/${call.id}/leave`, U.A);
    await api('POST', `/api/calls/${call.id}/leave`, U.B);
    await end(a, b);
  });

  // LOCAL_ONLY: writes to the stack's Redis and restarts it
  test('an update lost while Redis was up but not writing heals by itself', { skip: LOCAL_ONLY }, async () => {
    const owner = await newUser('mllo');
    const x = await newUser('mllx');
    const by = await newUser('mllb');
    const priv = await community(owner, 'private');
    const open = await community(owner, 'public');
    // the mirror settled: a rebuild still running after an earlier test's FLUSHALL (each
    // broker starts one) would write the membership meant to be lost here
    await waitFor(async () => (await redis('GET', 'th:mirror:epoch')) !== '', 20000, 'the marker set');
    await waitFor(() => !rebuildRunning(), 20000, 'no mirror rebuild running');
    // Redis takes no writes for 1.5 s: the app commits the membership, its mirror write
    // times out (TH_REDIS_TIMEOUT_MS 250) and is lost
    await redis('CLIENT', 'PAUSE', '1500', 'WRITE');
    assertStatus(await api('PUT', `/api/communities/${priv.id}/members/${x.id}`, owner, { role: 'member' }), 200, 'add x:');
    await sleep(1600);
    assert.equal(await redis('HEXISTS', `th:members:${priv.id}`, String(x.id)), '0', 'the update was not lost');
    // later writes (any worker) drop the marker; the broker rebuilds the mirror
    await waitFor(async () => {
      assertStatus(await api('POST', `/api/communities/${open.id}/join`, by), 200, 'join:');
      assertStatus(await api('POST', `/api/communities/${open.id}/leave`, by), 204, 'leave:');
      return (await redis('HEXISTS', `th:members:${priv.id}`, String(x.id))) === '1';
    }, 20000, 'the lost membership in the mirror');
    const c = await connect(x);
    await mustSubscribe(c, `chat/${priv.channel}/+`);
    await end(c);
  });

  // LOCAL_ONLY: flushes the stack's Redis
  test('after a Redis FLUSHALL', { skip: LOCAL_ONLY }, async () => {
    await checkAfterLoss('flushall', async () => { await redis('FLUSHALL'); });
  });

  // LOCAL_ONLY: restarts the stack's Redis by its pid file
  test('after a Redis restart (no persistence)', { skip: LOCAL_ONLY }, async () => {
    await checkAfterLoss('restart', async () => {
      const pid = await redisPid();
      process.kill(pid, 'SIGKILL');
      await waitFor(() => { try { process.kill(pid, 0); return false; } catch { return true; } }, 5000, 'redis to exit');
      await stackUp();
    });
  });
});
