// The persistence bridge (realtime-bridge/bridge), black-box against ../shared/API.md
// (MQTT; Channels, messages, calls) and issue 6 items 1-3 and 5: history equals what was
// published, REST-posted messages reach MQTT subscribers, server events, call signaling
// between participants only, invalid payloads counted and dropped, and the loss tests
// (kill -9 the bridge, restart PostgreSQL, kill -9 the broker under a steady publish load).
//
// Design notes
// - Client addresses. Registrations are rate limited per address (tests/integration/run:
//   3 per 5 s), so every registration comes from its own source address 127.8.x.y
//   (foundation 127.0.0.2, auth 127.1.x.y, community 127.3.x.y, mqtt 127.6.x.y,
//   realtime 127.7.x.y).
// - Clients: mqtt.js over WebSocket through nginx, as a browser connects; the service account
//   (th-service, $TH_VAR_DIR/keys/mqtt-service.secret) over TCP (BASE+3), the one client the
//   plugin lets publish anything, so its invalid chat payloads reach the bridge.
// - The sender's part of "nothing is lost" (API.md, MQTT): a ChatSender (lib/sender.mjs)
//   keeps every message it sent until a `stored` receipt on user/<id>/inbox names its id,
//   and publishes all of those again, same ids, after every reconnect.
// - Isolation. Every test builds its own community and uses its #general channel; history
//   is read through GET /api/channels/:id/messages (newest first, keyset cursor).
// - Time. Every wait has a deadline; every client is closed in `finally`/`after`. The loss
//   tests restore the stack with `scripts/stack up` (idempotent) and check that the bridge
//   is connected again before they end.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync, statSync, rmSync, existsSync } from 'node:fs';
import path from 'node:path';
import {
  PORT_BASE, VAR_DIR, run, readPid, isAlive, waitGone, sleep, until,
} from './lib/http.mjs';
import { show } from './lib/assert.mjs';
import { rnd, uuid, api, fixtures, fullHistory } from './lib/fixtures.mjs';
import {
  PSQL_CONN, psql, redis, stackUp, poolMetrics, metric, brokerPid, brokerDb, killBroker, restartBrokers, BROKERS, HUB_URL,
} from './lib/stack.mjs';
import {
  WS_URL, CONNECT_MS, DELIVER_MS, clients, closeClients, serviceSecret, cid, connect, end, subscribe, mustSubscribe, publish,
  waitFor, hasPayload,
} from './lib/mqtt.mjs';
import { ChatSender } from './lib/sender.mjs';

const TCP_URL = `mqtt://127.0.0.1:${PORT_BASE + 3}`;
const STORED_MS = 30000;   // all receipts of a run arrive within this
const RESEND_MS = 5000;   // a publisher re-sends what waited this long for its receipt
const ACL_CACHE_MS = 5000; // the plugin caches ACL answers this long (negative ones 1 s)

// --- helpers: REST ----------------------------------------------------------------

const { newUser, community } = fixtures({ net: 8, slug: 'br', name: 'Bridge', general: true });

const bridgeMetrics = () => poolMetrics('bridge');

// --- helpers: mqtt.js ---------------------------------------------------------------

const parsed = (m) => { try { return JSON.parse(m.payload); } catch { return null; } };

after(closeClients);

// --- the cast ---------------------------------------------------------------------------

const U = {};
before(async () => {
  for (const k of ['A', 'B', 'C', 'D']) U[k] = await newUser(`br${k.toLowerCase()}`);
}, { timeout: 60000 });

// The chat limit (API.md: 10 messages a second, burst 30, a user) would drop most of the
// load these tests need (200 as fast as mqtt.js sends, 50/s for 8 s) before it reaches the
// bridge: this file runs against brokers restarted with the limit loosened (the edges, where
// users connect, apply it; every `scripts/stack up` of this file passes the variables on;
// mqtt_limits.test.mjs tests the limit itself), and gives the next file brokers at the
// suite's settings again. "The broker" below is the hub: th-bridge attaches there, and its
// persistent session lives in the hub's persistence file.
const LOOSE = { TH_RL_MSG_INTERVAL_MS: '1', TH_RL_MSG_BURST: '100000' };
const SUITE = Object.fromEntries(Object.keys(LOOSE).map((k) => [k, process.env[k]]));
const restartBroker = restartBrokers;
before(async () => {
  Object.assign(process.env, LOOSE);
  await restartBroker();
}, { timeout: 60000 });
after(async () => {
  for (const [k, v] of Object.entries(SUITE)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await restartBroker();
}, { timeout: 60000 });

// History checks shared by the tests that count. unordered: [from, to] ms, messages sent then
// are left out of the order check too (see lossRun's hubDown).
function checkHistory(items, pubs, { strictOrder, unordered = null }) {
  const ids = items.map((m) => m.id);
  const counts = new Map();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  const dups = [...counts].filter(([, n]) => n > 1);
  assert.deepEqual(dups, [], `ids stored more than once: ${JSON.stringify(dups.slice(0, 5))}`);
  const sent = new Set(pubs.flatMap((p) => p.sent));
  const missing = [...sent].filter((id) => !counts.has(id));
  const extra = ids.filter((id) => !sent.has(id));
  assert.deepEqual(extra, [], 'history holds messages nobody sent here');
  assert.equal(missing.length, 0, `${missing.length} of ${sent.size} sent messages missing from the history, e.g. ${missing.slice(0, 3).join(', ')}`);
  assert.equal(items.length, sent.size);
  // seq: 1..total, no gaps
  const seqs = items.map((m) => m.seq).sort((a, b) => a - b);
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), 'seq is not 1..total without gaps');
  // per sender: the bodies match the sender, and seq follows the publish order
  for (const p of pubs) {
    const mine = items.filter((m) => m.sender.id === p.user.id).sort((a, b) => a.seq - b.seq);
    assert.equal(mine.length, p.sent.length, `sender ${p.user.id}: ${mine.length} stored of ${p.sent.length} sent`);
    for (const m of mine) {
      const s = p.byId.get(m.id);
      assert.ok(s, `message ${m.id} of sender ${p.user.id} was not sent by it`);
      assert.equal(m.body, `sender=${p.user.id} n=${s.n}`);
      assert.equal(m.channel_id, p.channel);
    }
    const inWindow = (m) => unordered && p.byId.get(m.id).at >= unordered[0] && p.byId.get(m.id).at <= unordered[1];
    const order = mine.filter((m) => strictOrder || (!p.resent.has(m.id) && !inWindow(m))).map((m) => p.byId.get(m.id).n);
    const bad = order.findIndex((n, i) => i > 0 && n < order[i - 1]);
    assert.equal(bad, -1, `sender ${p.user.id}: seq order differs from the publish order at ${bad} (${order.slice(Math.max(0, bad - 3), bad + 3).join(',')})`);
  }
}

// --- 1. history equals what was published -------------------------------------------

describe('history equals what was published', { timeout: 120000 }, () => {
  test('3 members x 200 QoS 1 messages: all receipted, each stored once, seq 1..600, per-sender order kept', async () => {
    const c = await community(U.A, 'public', [U.B, U.C]);
    const N = 200;
    const pubs = [U.A, U.B, U.C].map((u) => new ChatSender(u, c.channel, { resendMs: RESEND_MS }));
    try {
      await Promise.all(pubs.map((p) => p.start()));
      await sleep(200); // the inbox SUBACKs
      // interleaved, as fast as mqtt.js sends
      for (let i = 0; i < N; i++) for (const p of pubs) p.send();
      await waitFor(() => pubs.every((p) => p.pending.size === 0), STORED_MS,
        () => `stored receipts (pending: ${pubs.map((p) => p.pending.size).join(', ')})`);
      for (const p of pubs) {
        assert.equal(p.stored.size, N, `sender ${p.user.id}: receipts for ${p.stored.size} of ${N}`);
        assert.deepEqual([...p.stored].filter((id) => !p.byId.has(id)), [], 'a receipt named an id this sender did not send');
        assert.equal(p.connects, 1, `publisher reconnected: ${p.log.join('; ')}`);
      }
      const items = await fullHistory(c.channel, U.D);
      checkHistory(items, pubs, { strictOrder: true });
      // ?after= the 100th message: the rest, oldest first
      const bySeq = [...items].sort((a, b) => a.seq - b.seq);
      const r = await api('GET', `/api/channels/${c.channel}/messages?after=${bySeq[99].id}&limit=100`, U.A);
      assert.equal(r.status, 200, show(r));
      assert.deepEqual(r.json.items.map((m) => m.seq), Array.from({ length: 100 }, (_, i) => 101 + i));
    } finally {
      for (const p of pubs) p.stop();
    }
  });
});

// --- 2. REST -> MQTT ----------------------------------------------------------------------

describe('REST-posted messages reach MQTT subscribers', { timeout: 60000 }, () => {
  test('POST /api/channels/:id/messages is delivered on chat/<ch>/<sender> with its id and body, once', async () => {
    const c = await community(U.A, 'public', [U.B]);
    const sub = await connect(U.B);
    try {
      await mustSubscribe(sub, `chat/${c.channel}/+`);
      const id = uuid();
      const body = `rest ${rnd()} "quoted" \\ é\nline`;
      const r = await api('POST', `/api/channels/${c.channel}/messages`, U.A, { id, body });
      assert.equal(r.status, 201, show(r));
      const isIt = (m) => parsed(m)?.id === id;
      await waitFor(() => hasPayload(sub, isIt), DELIVER_MS, 'the REST-posted message on MQTT');
      const m = sub.messages.find(isIt);
      assert.equal(m.topic, `chat/${c.channel}/${U.A.id}`);
      assert.equal(parsed(m).body, body);
      // a server-generated id, too
      const r2 = await api('POST', `/api/channels/${c.channel}/messages`, U.A, { body: 'no id given' });
      assert.equal(r2.status, 201, show(r2));
      await waitFor(() => hasPayload(sub, (x) => parsed(x)?.id === r2.json.id), DELIVER_MS, 'the second REST message');
      assert.equal(parsed(sub.messages.find((x) => parsed(x)?.id === r2.json.id)).body, 'no id given');
      // a replay of the first id is not delivered again; a later message proves the wait
      assert.equal((await api('POST', `/api/channels/${c.channel}/messages`, U.A, { id, body })).status, 200);
      const r3 = await api('POST', `/api/channels/${c.channel}/messages`, U.A, { body: 'sentinel' });
      await waitFor(() => hasPayload(sub, (x) => parsed(x)?.id === r3.json.id), DELIVER_MS, 'the sentinel');
      await sleep(300);
      assert.equal(sub.messages.filter(isIt).length, 1, 'the message was delivered more than once');
      // and the history has each once (the bridge sees the relayed copies: duplicates, not new rows)
      await sleep(500);
      const items = await fullHistory(c.channel, U.B);
      assert.deepEqual(items.map((x) => x.seq), [3, 2, 1]);
    } finally {
      await end(sub);
    }
  });
});

// --- 3. events ------------------------------------------------------------------------------

describe('server events over MQTT', { timeout: 60000 }, () => {
  test('post_created and member_banned on events/community/<id>; member_banned in the banned user\'s inbox', async () => {
    const owner = await newUser('brevo');
    const victim = await newUser('brevv');
    const c = await community(owner, 'public', [victim, U.D]);
    const watcher = await connect(U.D);
    const v = await connect(victim);
    try {
      await mustSubscribe(watcher, `events/community/${c.id}`);
      await mustSubscribe(v, `user/${victim.id}/inbox`);
      const p = await api('POST', `/api/communities/${c.id}/posts`, owner, { title: 'hello', body: `post ${rnd()}` });
      assert.equal(p.status, 201, show(p));
      const isPost = (m) => parsed(m)?.type === 'post_created' && parsed(m)?.post_id === p.json.id;
      await waitFor(() => hasPayload(watcher, isPost), DELIVER_MS, 'post_created');
      const pe = parsed(watcher.messages.find(isPost));
      assert.equal(pe.community_id, c.id);
      assert.equal(pe.author_id, owner.id);
      assert.equal(watcher.messages.find(isPost).topic, `events/community/${c.id}`);

      const b = await api('POST', `/api/communities/${c.id}/bans`, owner, { user_id: victim.id });
      assert.equal(b.status, 201, show(b));
      const isBan = (m) => parsed(m)?.type === 'member_banned' && parsed(m)?.user_id === victim.id;
      await waitFor(() => hasPayload(watcher, isBan), DELIVER_MS, 'member_banned on events/community');
      assert.equal(parsed(watcher.messages.find(isBan)).community_id, c.id);
      await waitFor(() => hasPayload(v, isBan), DELIVER_MS, 'member_banned in the victim\'s inbox');
      const vb = v.messages.find(isBan);
      assert.equal(vb.topic, `user/${victim.id}/inbox`);
      assert.equal(parsed(vb).community_id, c.id);
      // each event once on each topic
      await sleep(500);
      assert.equal(watcher.messages.filter(isPost).length, 1, 'post_created more than once');
      assert.equal(watcher.messages.filter(isBan).length, 1, 'member_banned more than once');
      assert.equal(v.messages.filter(isBan).length, 1, 'member_banned more than once in the inbox');
    } finally {
      await end(watcher, v);
    }
  });
});

// Superseded events (realtime-bridge/bridge/supersede.c): an `unread` event carries a user's
// whole state for a channel, so of several queued together for one user and channel the relay
// publishes the newest alone and deletes the rest with it. 20 of them and one for another
// channel are committed in one transaction (one relay batch): the inbox gets read_seq 20 and
// the other channel's event, none of 1..19; every row is gone and the 19 are counted.
describe('the relay publishes the newest unread state of a user and channel', { timeout: 60000 }, () => {
  test('20 unread events for one channel and 1 for another, queued at once: read_seq 20 and the other arrive, 1..19 do not', async () => {
    const u = await newUser('brsup');
    const c = await community(u, 'public', []);
    const ch = Number(c.channel);
    const other = ch + 1000000; // routing reads user_id alone: any other channel id serves
    const uid = Number(u.id);
    const w = await connect(u);
    try {
      await mustSubscribe(w, `user/${uid}/inbox`);
      const m0 = await bridgeMetrics();
      const ev = (chan, seq) => `jsonb_build_object('type', 'unread', 'user_id', ${uid}, 'channel_id', ${chan}, 'read_seq', ${seq}, 'unread', 0, 'mentions', 0)`;
      const r = await psql(`BEGIN;
        INSERT INTO event_outbox (payload) SELECT ${ev(ch, 'g')} FROM generate_series(1, 20) g;
        INSERT INTO event_outbox (payload) SELECT ${ev(other, 7)};
        SELECT pg_notify('townhall_events', '{"type":"unread"}');
        COMMIT;`);
      assert.equal(r.code, 0, r.stderr);
      const isUnread = (chan) => (m) => parsed(m)?.type === 'unread' && parsed(m)?.channel_id === chan;
      await waitFor(() => hasPayload(w, isUnread(ch)) && hasPayload(w, isUnread(other)), DELIVER_MS, 'both unread events');
      await sleep(500);
      const seqs = w.messages.filter(isUnread(ch)).map((m) => parsed(m).read_seq);
      assert.deepEqual(seqs, [20], `read_seq published for the channel: ${seqs.join(',')}`);
      assert.equal(w.messages.filter(isUnread(other)).length, 1);
      const left = await psql(`SELECT count(*) FROM event_outbox WHERE payload->>'user_id' = '${uid}'`);
      assert.equal(left.stdout.trim(), '0', 'outbox rows left');
      const m1 = await bridgeMetrics();
      assert.equal(metric(m1, 'th_events_superseded_total') - metric(m0, 'th_events_superseded_total'), 19);
    } finally {
      await end(w);
    }
  });

  // The relay is paced (relay.c, TH_BRIDGE_RELAY_GAP_MS, 200 ms here): a NOTIFY after a quiet
  // spell is relayed at once, and under a stream of commits one claim a gap gathers what came
  // meanwhile, so older states are superseded instead of each costing the hub a copy per
  // edge. 20 unread events, each committed on its own with its NOTIFY, 40 ms apart (~800 ms):
  // the first alone (the relay was idle), then a few claims, the last read_seq 20; a claim
  // per NOTIFY would publish all 20.
  test('20 unread states committed one by one 40 ms apart: the first at once, at most 8 published, the last read_seq 20', async () => {
    const u = await newUser('brpace');
    const c = await community(u, 'public', []);
    const ch = Number(c.channel);
    const uid = Number(u.id);
    const w = await connect(u);
    try {
      await mustSubscribe(w, `user/${uid}/inbox`);
      await sleep(1000); // the relay idle: its last claim well over a gap ago
      const r = await psql(`DO $$ BEGIN FOR g IN 1..20 LOOP
          INSERT INTO event_outbox (payload) VALUES (jsonb_build_object('type', 'unread',
            'user_id', ${uid}, 'channel_id', ${ch}, 'read_seq', g, 'unread', 0, 'mentions', 0));
          PERFORM pg_notify('townhall_events', '{"type":"unread"}');
          COMMIT;
          PERFORM pg_sleep(0.04);
        END LOOP; END $$`);
      assert.equal(r.code, 0, r.stderr);
      const isMine = (m) => parsed(m)?.type === 'unread' && parsed(m)?.channel_id === ch;
      await waitFor(() => w.messages.some((m) => isMine(m) && parsed(m).read_seq === 20), DELIVER_MS, 'read_seq 20');
      await sleep(500);
      const seqs = w.messages.filter(isMine).map((m) => parsed(m).read_seq);
      assert.equal(seqs[0], 1, `the first state waited for a gap: ${seqs.join(',')}`);
      assert.ok(seqs.length <= 8, `${seqs.length} states published (${seqs.join(',')}): not paced`);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), `out of order: ${seqs.join(',')}`);
      assert.equal(seqs.at(-1), 20);
      const left = await psql(`SELECT count(*) FROM event_outbox WHERE payload->>'user_id' = '${uid}'`);
      assert.equal(left.stdout.trim(), '0', 'outbox rows left');
    } finally {
      await end(w);
    }
  });
});

// The outbox (realtime-bridge/bridge/relay.c): an event leaves event_outbox only after the
// broker acknowledged its publishes. (1) The hub is stopped (SIGSTOP: the bridge's bytes still
// go into the socket, nothing answers) while an event goes out: the row must stay, claimed;
// once the hub runs again the event arrives and the row is gone. Deleting after the write
// alone would have lost it had the hub died. (2) With every edge down the hub has no
// subscriber for the event and says so (PUBACK 0x10): the bridge keeps publishing it again
// (what happens while a restarted hub waits for its edges), and the first subscriber to
// appear receives it, once: the events delivered beside it are not sent again.
describe('an outbox event is deleted only after the broker acknowledged it', { timeout: 180000 }, () => {
  // the outbox rows of one post's post_created: 'none', or their claimed flags and how often
  // the hub had no subscriber for them
  const rowsOf = async (postId) => {
    const r = await psql(`SELECT coalesce(string_agg((claimed_by IS NOT NULL)::text || '/' || attempts, ','), 'none')
      FROM event_outbox WHERE payload->>'type' = 'post_created' AND payload->>'post_id' = '${Number(postId)}'`);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  const isPostOf = (id) => (m) => parsed(m)?.type === 'post_created' && parsed(m)?.post_id === id;

  test('the hub stops answering while post_created goes out: the row stays claimed; the hub resumes: delivered once, row deleted', async () => {
    const owner = await newUser('brack');
    const c = await community(owner, 'public', [U.D]);
    const watcher = await connect(U.D);
    const pid = brokerPid('hub');
    let stopped = false;
    try {
      await mustSubscribe(watcher, `events/community/${c.id}`);
      process.kill(pid, 'SIGSTOP');
      stopped = true;
      const p = await api('POST', `/api/communities/${c.id}/posts`, owner, { title: 'acked', body: `post ${rnd()}` });
      assert.equal(p.status, 201, show(p));
      await waitFor(async () => (await rowsOf(p.json.id)) === 'true/0', 10000, 'the bridge claims the event');
      await sleep(2000); // its publish is written; no PUBACK can come
      assert.equal(await rowsOf(p.json.id), 'true/0', 'the event left the outbox although the hub acknowledged nothing');
      assert.ok(!hasPayload(watcher, isPostOf(p.json.id)), 'delivered through a stopped hub?');
      process.kill(pid, 'SIGCONT');
      stopped = false;
      await waitFor(() => hasPayload(watcher, isPostOf(p.json.id)), DELIVER_MS, 'post_created once the hub runs');
      await waitFor(async () => (await rowsOf(p.json.id)) === 'none', 10000, 'the row deleted once acknowledged');
      await sleep(500);
      assert.equal(watcher.messages.filter(isPostOf(p.json.id)).length, 1, 'post_created more than once');
    } finally {
      if (stopped) process.kill(pid, 'SIGCONT');
      await end(watcher);
    }
  });

  test('every edge down: the hub has no subscriber (PUBACK 0x10), the bridge publishes again until a subscriber is there', async () => {
    const owner = await newUser('brunr');
    const c = await community(owner, 'public', [U.D]);
    const m0 = await bridgeMetrics();
    const edges = BROKERS.filter((b) => b !== 'hub');
    let watcher;
    try {
      for (const e of edges) await killBroker(e);
      const p = await api('POST', `/api/communities/${c.id}/posts`, owner, { title: 'unrouted', body: `post ${rnd()}` });
      assert.equal(p.status, 201, show(p));
      // published, answered "no matching subscribers", published again: attempts grow, the row stays
      let rows = '';
      await waitFor(async () => /^(true|false)\/([3-9]|1\d)$/.test(rows = await rowsOf(p.json.id)), 15000,
        () => `the event published again (rows: ${rows})`);
      const m1 = await bridgeMetrics();
      assert.ok(metric(m1, 'th_events_retried_total') > metric(m0, 'th_events_retried_total'), 'th_events_retried_total did not grow');
      // a subscriber appears (on the hub itself: the edges' bridges would take the event and
      // hand it to nobody yet): the next attempt reaches it, and the row goes
      watcher = await connect(U.D, { url: HUB_URL });
      await mustSubscribe(watcher, `events/community/${c.id}`);
      await waitFor(() => hasPayload(watcher, isPostOf(p.json.id)), 20000, 'post_created once a subscriber is there');
      // events are settled one by one (realtime-bridge/bridge/relay.c): the delivered one is
      // deleted at its PUBACK and not sent again, although another event of its batch that
      // nobody takes yet (an inbox event queued while the edges were down) goes out again
      await waitFor(async () => (await rowsOf(p.json.id)) === 'none', 15000, 'the row deleted once delivered');
      await sleep(1500); // the unrouted events beside it go out again meanwhile (every 0.5 s)
      assert.equal(watcher.messages.filter(isPostOf(p.json.id)).length, 1, 'post_created sent again after its PUBACK');
    } finally {
      if (watcher) await end(watcher);
      await stackUp();
    }
  });
});

// --- 4. call signaling --------------------------------------------------------------------

describe('call signaling between participants only', { timeout: 90000 }, () => {
  test('participants exchange signal/<call>/<to>/<from>; a member outside the call may neither publish nor subscribe', async () => {
    const owner = await newUser('brsa');
    const peer = await newUser('brsb');
    const third = await newUser('brsc');
    const c = await community(owner, 'public', [peer, third]);
    const cr = await api('POST', '/api/calls', owner, { channel_id: c.channel });
    assert.equal(cr.status, 201, show(cr));
    const call = cr.json.id;
    assert.equal((await api('POST', `/api/calls/${call}/join`, peer)).status, 200);
    const a = await connect(owner);
    const b = await connect(peer);
    const x = await connect(third);
    const sig = (to, from) => `signal/${call}/${to.id}/${from.id}`;
    try {
      await mustSubscribe(a, `signal/${call}/${owner.id}/+`);
      await mustSubscribe(b, `signal/${call}/${peer.id}/+`);
      const offer = JSON.stringify({ type: 'offer', sdp: `v=0 ${rnd()}` });
      assert.ok(await publish(a, sig(peer, owner), offer) < 0x80, 'owner -> peer refused');
      await waitFor(() => hasPayload(b, (m) => m.payload === offer), DELIVER_MS, 'the offer at the peer');
      assert.equal(b.messages.find((m) => m.payload === offer).topic, sig(peer, owner));
      const answer = JSON.stringify({ type: 'answer', sdp: `v=0 ${rnd()}` });
      assert.ok(await publish(b, sig(owner, peer), answer) < 0x80, 'peer -> owner refused');
      await waitFor(() => hasPayload(a, (m) => m.payload === answer), DELIVER_MS, 'the answer at the owner');

      // the third member, not in the call
      const sub = await subscribe(x, `signal/${call}/${third.id}/+`);
      assert.ok(sub >= 0x80, `non-participant subscribed to its own signal topic (SUBACK ${sub})`);
      const bad1 = JSON.stringify({ type: 'candidate', from: 'outsider', n: rnd() });
      const bad2 = JSON.stringify({ type: 'candidate', forged: 'from the peer', n: rnd() });
      const rc1 = await publish(x, sig(owner, third), bad1);
      const rc2 = await publish(x, sig(owner, peer), bad2); // from another participant's id
      // a participant may not address the outsider either
      const rc3 = await publish(a, sig(third, owner), JSON.stringify({ type: 'offer', to: 'outsider' }));
      const sentinel = JSON.stringify({ type: 'candidate', sentinel: rnd() });
      await publish(b, sig(owner, peer), sentinel);
      await waitFor(() => hasPayload(a, (m) => m.payload === sentinel), DELIVER_MS, 'the sentinel');
      await sleep(300);
      assert.ok(!hasPayload(a, (m) => m.payload === bad1 || m.payload === bad2), 'a non-participant\'s signal was delivered');
      assert.ok(rc1 >= 0x80 && rc2 >= 0x80, `PUBACK reasons for the outsider: ${rc1}, ${rc2}`);
      assert.ok(rc3 >= 0x80, `PUBACK reason for signaling a non-participant: ${rc3}`);

      // positive control: once the third joins (negative answers are cached 1 s), it may
      let code;
      assert.equal((await api('POST', `/api/calls/${call}/join`, third)).status, 200);
      await waitFor(async () => { code = await subscribe(x, `signal/${call}/${third.id}/+`); return code < 0x80; },
        3000, 'the new participant\'s subscription to be granted');
      const hi = JSON.stringify({ type: 'offer', hi: rnd() });
      await waitFor(async () => (await publish(a, sig(third, owner), hi)) < 0x80, 3000, 'owner -> new participant accepted');
      await waitFor(() => hasPayload(x, (m) => m.payload === hi), DELIVER_MS, 'the signal at the new participant');

      // and a participant who left is out within the plugin's 5 s cache
      assert.equal((await api('POST', `/api/calls/${call}/leave`, peer)).status, 204);
      await waitFor(async () => (await publish(b, sig(owner, peer), JSON.stringify({ type: 'bye' }))) >= 0x80,
        ACL_CACHE_MS + 2000, 'the peer\'s publish to be refused after it left');
    } finally {
      await end(a, b, x);
    }
  });
});

// --- 5. invalid payloads ----------------------------------------------------------------

describe('a call ends when its participants disconnect', { timeout: 60000 }, () => {
  test('the last connection of a participant closes: they leave; the last one out ends the call', async () => {
    const owner = await newUser('brda');
    const peer = await newUser('brdb');
    const c = await community(owner, 'public', [peer]);
    const cr = await api('POST', '/api/calls', owner, { channel_id: c.channel });
    assert.equal(cr.status, 201, show(cr));
    const call = cr.json.id;
    assert.equal((await api('POST', `/api/calls/${call}/join`, peer)).status, 200);
    const a = await connect(owner);
    const b = await connect(peer);
    const participants = async () => (await api('GET', `/api/calls/${call}`, owner)).json;
    // (a disconnect is seen once the plugin's presence "offline" reaches the bridge)
    await end(b);
    await waitFor(async () => {
      const j = await participants();
      return j.participants.length === 1 && j.participants[0].id === owner.id && j.ended_at === null;
    }, 10000, 'the peer to leave the call after disconnecting');
    await end(a);
    await waitFor(async () => (await participants()).ended_at !== null, 10000,
      'the call to end after its last participant disconnected');
    assert.equal(await redis('EXISTS', `th:call:${call}:participants`), '0', 'the participants set of an ended call is gone from Redis');
  });
});

describe('invalid chat payloads are counted and dropped', { timeout: 60000 }, () => {
  test('the service account\'s invalid chat/<ch>/<uid> payloads grow th_messages_dropped_total and are not stored', async () => {
    const c = await community(U.A, 'public', [U.B]);
    const svc = await connect({ id: 0, token: serviceSecret() }, {
      url: TCP_URL, clientId: `th-service-brt-${rnd(4)}`, username: 'th-service',
    });
    try {
      const topic = `chat/${c.channel}/${U.B.id}`;
      const bad = [
        [topic, 'not json'],
        [topic, JSON.stringify({ body: 'no id' })],
        [topic, JSON.stringify({ id: 'not-a-uuid', body: 'bad id' })],
        [topic, JSON.stringify({ id: uuid(), body: '' })],
        [topic, JSON.stringify({ id: uuid(), body: 'x'.repeat(4001) })],
        [topic, JSON.stringify({ id: uuid(), body: 'bad reply', reply_to: 'nope' })],
        [topic, JSON.stringify([uuid(), 'an array'])],
        [`chat/${c.channel}/notanumber`, JSON.stringify({ id: uuid(), body: 'bad sender in the topic' })],
      ];
      const m0 = await bridgeMetrics();
      assert.ok('th_messages_dropped_total' in m0, `no th_messages_dropped_total in /metrics/bridge: ${JSON.stringify(m0)}`);
      for (const [t, p] of bad) assert.ok(await publish(svc, t, p) < 0x80, `the broker refused the service account's publish on ${t}`);
      // a valid message after them, on the same connection: once it is stored, the bridge
      // has seen everything before it (one publisher's QoS 1 messages arrive in order)
      const sentinel = { id: uuid(), body: 'sentinel after the invalid ones' };
      await publish(svc, topic, JSON.stringify(sentinel));
      const items = await waitFor(async () => {
        const h = await fullHistory(c.channel, U.A);
        return h.some((m) => m.id === sentinel.id) && h;
      }, DELIVER_MS, 'the sentinel in the history');
      const m1 = await bridgeMetrics();
      assert.equal(metric(m1, 'th_messages_dropped_total') - metric(m0, 'th_messages_dropped_total'), bad.length,
        `th_messages_dropped_total grew by ${metric(m1, 'th_messages_dropped_total') - metric(m0, 'th_messages_dropped_total')}, expected ${bad.length}`);
      assert.ok(metric(m1, 'th_messages_persisted_total') - metric(m0, 'th_messages_persisted_total') >= 1, 'the sentinel was not counted as persisted');
      assert.deepEqual(items.map((m) => m.id), [sentinel.id], `history: ${JSON.stringify(items.map((m) => m.body.slice(0, 40)))}`);
      assert.equal(items[0].sender.id, U.B.id);
      assert.equal(items[0].seq, 1);
    } finally {
      await end(svc);
    }
  });
});

// The same id twice in one batch (a client's re-send next to mqtt.js's own replay after a
// reconnect, or a broker redelivery next to a re-send): stored once, and it is a
// duplicate, not an invalid message. Known bug (see the report of this file): store.c
// counts rows returned < messages in the batch as dropped, and its final SELECT does not
// see the rows its own INSERT CTE wrote, so an in-batch duplicate of a new id is counted
// in th_messages_dropped_total (and missing from th_messages_duplicate_total).
describe('duplicates within one batch', { timeout: 60000 }, () => {
  test('the same message published twice back to back: stored once, counted as a duplicate, not as dropped',
    async () => {
      const c = await community(U.A, 'public', [U.B]);
      const svc = await connect({ id: 0, token: serviceSecret() }, {
        url: TCP_URL, clientId: `th-service-brt-${rnd(4)}`, username: 'th-service',
      });
      try {
        const topic = `chat/${c.channel}/${U.B.id}`;
        const m0 = await bridgeMetrics();
        const msg = JSON.stringify({ id: uuid(), body: 'twice' });
        await Promise.all([publish(svc, topic, msg), publish(svc, topic, msg)]);
        const sentinel = { id: uuid(), body: 'sentinel' };
        await publish(svc, topic, JSON.stringify(sentinel));
        const items = await waitFor(async () => {
          const h = await fullHistory(c.channel, U.A);
          return h.some((m) => m.id === sentinel.id) && h;
        }, DELIVER_MS, 'the sentinel in the history');
        assert.deepEqual(items.map((m) => m.body), ['sentinel', 'twice']);
        const m1 = await bridgeMetrics();
        const d = (n) => metric(m1, n) - metric(m0, n);
        assert.equal(d('th_messages_persisted_total'), 2, 'persisted');
        assert.equal(d('th_messages_dropped_total'), 0, `a valid duplicate was counted as dropped (duplicate_total grew by ${d('th_messages_duplicate_total')})`);
        assert.equal(d('th_messages_duplicate_total'), 1, 'duplicate_total');
      } finally {
        await end(svc);
      }
    });
});

// --- 6. no loss under crashes ---------------------------------------------------------------

// Two publishers, 50 msg/s each for ~8 s; `disrupt(channel)` runs ~3 s in. Afterwards every
// sent message is receipted and in the history exactly once.
// hubDown: disrupt() takes the hub away. The publishers sit on an edge, whose bridge to the hub
// re-sends on its own what the hub did not acknowledge, and 2.0.11 may then send a message
// published during the bridge's reconnect ahead of older ones it had queued (src/database.c:
// db__message_reconnect_reset leaves the queue for the CONNACK, while a new message goes
// straight into the in-flight list): the order of what was sent while the hub was away, and
// for 2 s after, is not checked.
async function lossRun(what, disrupt, { hubDown = false } = {}) {
  const c = await community(U.A, 'public', [U.B]);
  const pubs = [new ChatSender(U.A, c.channel, { resendMs: RESEND_MS }), new ChatSender(U.B, c.channel, { resendMs: RESEND_MS })];
  const m0 = await bridgeMetrics();
  const diag = () => pubs.map((p) => `u${p.user.id}: sent ${p.sent.length}, pending ${p.pending.size}, stored ${p.stored.size}, resent ${p.resent.size}, receipts dropped ${p.receiptsDropped}, connects ${p.connects}, log [${p.log.slice(-8).join('; ')}]`).join('\n');
  try {
    await Promise.all(pubs.map((p) => p.start()));
    await sleep(200);
    const load = Promise.all(pubs.map((p) => p.load(50, 8000)));
    await sleep(3000);
    const down0 = Date.now();
    await disrupt(c.channel, pubs);
    const down1 = Date.now() + 2000;
    await load;
    const allStored = await (async () => {
      const endAt = Date.now() + STORED_MS;
      while (Date.now() < endAt) {
        if (pubs.every((p) => p.pending.size === 0)) return true;
        await sleep(100);
      }
      return false;
    })();
    const items = await fullHistory(c.channel, U.A);
    const m1 = await bridgeMetrics();
    const delta = (n) => metric(m1, n) - metric(m0, n);
    const info = `${what}\n${diag()}\nhistory ${items.length}; bridge metrics delta: persisted ${delta('th_messages_persisted_total')}, duplicate ${delta('th_messages_duplicate_total')}, dropped ${delta('th_messages_dropped_total')}, redelivered ${delta('th_messages_redelivered_total')}`;
    if (!allStored) {
      const inHist = new Set(items.map((m) => m.id));
      const pend = pubs.flatMap((p) => [...p.pending.keys()]);
      const stored = pend.filter((id) => inHist.has(id)).length;
      assert.fail(`not every message receipted within ${STORED_MS} ms: ${pend.length} pending, ${stored} of them in the history (receipt lost), ${pend.length - stored} not (message lost)\n${info}`);
    }
    checkHistory(items, pubs, { strictOrder: false, unordered: hubDown ? [down0, down1] : null });
    return { info, pubs, delta };
  } finally {
    for (const p of pubs) p.stop();
  }
}

async function stackIsBack() {
  await waitFor(async () => (await run('scripts/stack', ['status'])).code === 0, 20000, 'scripts/stack status to report everything up');
}

const BROKER_DB = brokerDb('hub');
const mtime = (f) => (existsSync(f) ? statSync(f).mtimeMs : 0);

// SIGUSR1 makes mosquitto write its persistence file now (as its autosave does every
// autosave_interval): the bridge's persistent session and shared subscription are in it.
async function brokerSave() {
  const before = mtime(BROKER_DB);
  process.kill(brokerPid('hub'), 'SIGUSR1');
  await waitFor(() => mtime(BROKER_DB) > before, 5000, `mosquitto to write ${BROKER_DB} after SIGUSR1`);
}

const killHub = () => killBroker('hub');

// A transaction that holds channel's row for s seconds: the bridge's next batch with a message
// of it waits on the lock, read from the broker and not committed. -> {holder, done}
function holdChannel(channel, s) {
  const holder = spawn('psql', [...PSQL_CONN,
    '-c', `BEGIN; SELECT id FROM channels WHERE id = ${channel} FOR UPDATE; SELECT pg_sleep(${s}); COMMIT;`],
  { stdio: 'ignore' });
  return { holder, done: new Promise((resolve) => holder.on('close', resolve)) };
}
async function holderEnds({ holder, done }) {
  const killer = setTimeout(() => holder.kill('SIGKILL'), 10000);
  await done;
  clearTimeout(killer);
}
async function holderHolds(s) {
  await waitFor(async () => {
    const r = await psql(`SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(${s})%' AND state = 'active' AND pid <> pg_backend_pid()`);
    return r.code === 0 && Number(r.stdout.trim()) > 0;
  }, DELIVER_MS, 'the lock holder to hold the channel');
}
async function bridgeWaitsOnLock() {
  await waitFor(async () => {
    const r = await psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%FROM message_store(%'");
    return r.code === 0 && Number(r.stdout.trim()) > 0;
  }, DELIVER_MS, 'the bridge to wait on the channel lock with a batch out');
}
async function killBridgeAndRestart() {
  const pid = readPid('run/bridge.pid');
  process.kill(pid, 'SIGKILL');
  assert.ok(await waitGone(pid, 5000), `bridge (pid ${pid}) still alive after SIGKILL`);
  await stackUp();
}

describe('no loss under crashes (steady load, client re-sends unreceipted after a reconnect)', { timeout: 600000 }, () => {
  test('kill -9 the bridge while it holds an uncommitted batch, restart it ~1 s later', { timeout: 120000 }, async (t) => {
    const { info } = await lossRun('bridge kill -9', async (channel) => {
      // A transaction holds the channel row: the bridge's next batch waits on its lock,
      // read from the broker and not committed, so not acknowledged (if all is well).
      const holder = spawn('psql', [...PSQL_CONN,
        '-c', `BEGIN; SELECT id FROM channels WHERE id = ${channel} FOR UPDATE; SELECT pg_sleep(3); COMMIT;`],
      { stdio: 'ignore' });
      const holderDone = new Promise((resolve) => holder.on('close', resolve));
      try {
        const waiting = await waitFor(async () => {
          const r = await psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%FROM message_store(%'");
          return r.code === 0 && Number(r.stdout.trim()) > 0;
        }, 2500, 'the bridge to wait on the channel lock with a batch in hand');
        assert.ok(waiting);
        const pid = readPid('run/bridge.pid');
        process.kill(pid, 'SIGKILL');
        assert.ok(await waitGone(pid, 5000), `bridge (pid ${pid}) still alive after SIGKILL`);
        await sleep(1000);
        await stackUp();
        assert.notEqual(readPid('run/bridge.pid'), pid, 'the bridge was not restarted');
      } finally {
        const killer = setTimeout(() => holder.kill('SIGKILL'), 10000);
        await holderDone;
        clearTimeout(killer);
      }
    });
    t.diagnostic(info.replace(/\n/g, ' | '));
    await stackIsBack();
  });

  test('restart PostgreSQL (fast shutdown) under load; the bridge reconnects by itself', { timeout: 120000 }, async (t) => {
    const bridgePid = readPid('run/bridge.pid');
    const { info } = await lossRun('PostgreSQL restart', async () => {
      const pid = readPid(path.join(VAR_DIR, 'pg/data/postmaster.pid'));
      process.kill(pid, 'SIGINT'); // fast shutdown, as pg_ctl stop -m fast
      assert.ok(await waitGone(pid, 30000), `postgres (pid ${pid}) did not stop`);
      await sleep(500);
      await stackUp();
    });
    t.diagnostic(info.replace(/\n/g, ' | '));
    assert.ok(isAlive(bridgePid) && readPid('run/bridge.pid') === bridgePid, 'the bridge died during the PostgreSQL restart');
    await stackIsBack();
  });

  // The relay's paced claim (relay.c) must not turn into a busy loop while no claim can go:
  // a bridge that starts with PostgreSQL down has a wake-up pending and its broker
  // connected; it waits for PostgreSQL in poll, not on a core (measured before the fix:
  // 199 ticks of 200 in 2 s).
  test('a bridge started while PostgreSQL is down waits without spinning (under a quarter of a core over 2 s)', { timeout: 120000 }, async () => {
    const bridgePid = readPid('run/bridge.pid');
    const exe = readlinkSync(`/proc/${bridgePid}/exe`);
    const env = Object.fromEntries(readFileSync(`/proc/${bridgePid}/environ`, 'utf8').split('\0')
      .filter((kv) => kv.includes('=')).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    const ticks = (pid) => {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
      return Number(rest[11]) + Number(rest[12]); // utime + stime (fields 14, 15)
    };
    let child = null;
    try {
      process.kill(bridgePid, 'SIGKILL'); // its session stays on the hub: the same id comes back
      assert.ok(await waitGone(bridgePid, 5000), 'the bridge did not stop');
      const pgPid = readPid(path.join(VAR_DIR, 'pg/data/postmaster.pid'));
      process.kill(pgPid, 'SIGINT');
      assert.ok(await waitGone(pgPid, 30000), `postgres (pid ${pgPid}) did not stop`);
      let log = '';
      child = spawn(exe, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.on('data', (d) => { log += d; });
      child.stderr.on('data', (d) => { log += d; });
      await waitFor(() => /bridge: connected/.test(log), 15000, `the bridge to reach the hub: ${log}`);
      await sleep(500);
      const t0 = ticks(child.pid);
      await sleep(2000);
      const used = ticks(child.pid) - t0;
      assert.ok(used < 50, `${used} clock ticks of CPU in 2 s with PostgreSQL down: a busy loop`);
    } finally {
      if (child && child.exitCode === null) {
        child.kill('SIGTERM');
        if (!(await waitGone(child.pid, 10000))) child.kill('SIGKILL');
      }
      await stackUp();
      await stackIsBack();
    }
  });

  test('kill -9 the broker (its persistence file holds the bridge\'s session), restart it', { timeout: 120000 }, async (t) => {
    const bridgePid = readPid('run/bridge.pid');
    await brokerSave();
    const { info, delta } = await lossRun('broker kill -9', async (_channel, pubs) => {
      // Receipts on their way when a broker dies die with it, and the publishers re-send
      // messages that are stored already.  How many were on their way at the kill is luck
      // (often none at 50 msg/s): the publishers lose receipts until each has lost one
      // (300 ms at least, 5 s at most: a fixed 300 ms once lost none), so the bridge must
      // see such re-sends and store each message once.
      for (const p of pubs) p.dropReceipts = true;
      await sleep(300);
      await until(() => pubs.every((p) => p.receiptsDropped > 0), { timeoutMs: 5000, intervalMs: 50 });
      const pid = await killHub();
      for (const p of pubs) p.dropReceipts = false;
      await sleep(1000);
      await stackUp();
      assert.notEqual(brokerPid('hub'), pid, 'the broker was not restarted');
    }, { hubDown: true });
    t.diagnostic(info.replace(/\n/g, ' | '));
    assert.ok(delta('th_messages_duplicate_total') > 0, `re-sent messages that were stored already should count as duplicates\n${info}`);
    assert.ok(isAlive(bridgePid) && readPid('run/bridge.pid') === bridgePid, 'the bridge died during the broker restart');
    await stackIsBack();
  });

  // A broker that crashes before it ever wrote the bridge's session to disk comes back
  // without the bridge's shared subscription; publishers that reconnect first re-send into
  // a broker with no subscriber. The client's timed re-send (RESEND_MS) repairs that.
  test('kill -9 a broker that has not yet saved the bridge\'s session (fresh start), restart it',
    { timeout: 150000 }, async (t) => {
      // a fresh broker: no persistence file, the bridge's session only in memory
      const bridgeLog = path.join(VAR_DIR, 'log/bridge.log');
      const logFrom = statSync(bridgeLog).size;
      await killHub();
      rmSync(BROKER_DB, { force: true });
      await stackUp();
      await waitFor(() => /bridge: connected \(session new\)/.test(readFileSync(bridgeLog, 'utf8').slice(logFrom)),
        10000, 'the bridge to connect to the fresh broker with a new session');
      await sleep(1000); // its SUBSCRIBE
      try {
        const { info } = await lossRun('fresh broker kill -9', async () => {
          await killHub();
          // down ~3 s, as a real restart takes: the bridge's backoff has grown to 3.2 s by
          // then, the publishers retry every 500 ms
          await sleep(3000);
          await stackUp();
        }, { hubDown: true });
        t.diagnostic(info.replace(/\n/g, ' | '));
      } finally {
        await stackIsBack();
        await sleep(2000); // the bridge's session back in the broker,
        await brokerSave(); // and on disk for whatever runs next
      }
    });
});

// --- pipelining: a batch is read while the one before it commits ----------------------------

// The bridge reads the next batch while one is out at PostgreSQL; the PUBACKs of what it read
// must still leave only after their own commit. Here the batch out waits on a channel lock, the
// messages read meanwhile (another channel) are held unacknowledged (the bridge's gauge says so,
// and none is in the history), and after a kill -9 the broker redelivers every one of them: the
// publisher never re-sends, so a PUBACK that left early would be a lost message.
describe('pipelined batches: a PUBACK leaves only after its own commit', { timeout: 120000 }, () => {
  test('messages read while the batch before them waits on a lock stay unacknowledged; after kill -9 the broker redelivers them, each stored once',
    async () => {
      const a = await community(U.A, 'public', [U.B]);
      const b = await community(U.A, 'public', [U.B]);
      const svc = await connect({ id: 0, token: serviceSecret() }, {
        url: TCP_URL, clientId: `th-service-brp-${rnd(4)}`, username: 'th-service',
      });
      const hold = holdChannel(a.channel, 6);
      const first = Array.from({ length: 20 }, (_, i) => ({ id: uuid(), body: `locked ${i}` }));
      const second = Array.from({ length: 30 }, (_, i) => ({ id: uuid(), body: `behind ${i}` }));
      try {
        await holderHolds(6);
        for (const m of first) assert.ok(await publish(svc, `chat/${a.channel}/${U.B.id}`, JSON.stringify(m)) < 0x80, 'publish (first)');
        await bridgeWaitsOnLock();
        for (const m of second) assert.ok(await publish(svc, `chat/${b.channel}/${U.B.id}`, JSON.stringify(m)) < 0x80, 'publish (second)');
        // read by the bridge, acknowledgements held: all 50 (first and second) await a commit
        await waitFor(async () => metric(await bridgeMetrics(), 'th_messages_awaiting_commit') >= 50,
          DELIVER_MS, 'th_messages_awaiting_commit >= 50');
        assert.equal((await fullHistory(b.channel, U.A)).length, 0, 'a message read behind the blocked batch was stored before it');
        await killBridgeAndRestart();
      } finally {
        await holderEnds(hold);
        await end(svc);
      }
      for (const [ch, sent] of [[a.channel, first], [b.channel, second]]) {
        const items = await waitFor(async () => {
          const h = await fullHistory(ch, U.A);
          return h.length >= sent.length && h;
        }, STORED_MS, () => `${sent.length} messages in the history of channel ${ch}`);
        assert.deepEqual(items.map((m) => m.id).sort(), sent.map((m) => m.id).sort(), `history of channel ${ch}: each sent message once`);
        // per channel, seq 1..n without a gap, in the order they were published
        assert.deepEqual(items.map((m) => m.seq).reverse(), sent.map((_, i) => i + 1), `seq of channel ${ch}`);
        assert.deepEqual(items.map((m) => m.body).reverse(), sent.map((m) => m.body), `order of channel ${ch}`);
      }
      await stackIsBack();
    });
});

// A chat message may come at QoS 0 (a member may publish so). Its place among the connection's
// QoS 1 messages was the index of the last one before it, 0 for one read first on a fresh
// connection: the bridge then computed 0 - 1 for the messages it may acknowledge and let every
// held PUBACK go before the commit, so QoS 1 messages behind it were lost with the batch.
describe('a QoS 0 chat message first on a connection', { timeout: 120000 }, () => {
  test('QoS 1 messages read behind it stay unacknowledged until their commit: after kill -9 they are redelivered and stored',
    async () => {
      const a = await community(U.A, 'public', [U.B]);
      // a fresh connection: the bridge restarted, nothing read on it yet
      await killBridgeAndRestart();
      await stackIsBack();
      const svc = await connect({ id: 0, token: serviceSecret() }, {
        url: TCP_URL, clientId: `th-service-q0-${rnd(4)}`, username: 'th-service',
      });
      const hold = holdChannel(a.channel, 6);
      const q1 = Array.from({ length: 20 }, (_, i) => ({ id: uuid(), body: `behind qos0 ${i}` }));
      try {
        await holderHolds(6);
        assert.equal(await publish(svc, `chat/${a.channel}/${U.B.id}`, JSON.stringify({ id: uuid(), body: 'qos0 first' }), { qos: 0 }), 0);
        for (const m of q1) assert.ok(await publish(svc, `chat/${a.channel}/${U.B.id}`, JSON.stringify(m)) < 0x80, 'publish');
        await bridgeWaitsOnLock();
        await waitFor(async () => metric(await bridgeMetrics(), 'th_messages_awaiting_commit') >= 20,
          DELIVER_MS, 'th_messages_awaiting_commit >= 20');
        await killBridgeAndRestart();
      } finally {
        await holderEnds(hold);
        await end(svc);
      }
      // every QoS 1 message is stored (the QoS 0 one may be: at most once, nothing promises it)
      const items = await waitFor(async () => {
        const h = await fullHistory(a.channel, U.A);
        return q1.every((m) => h.some((x) => x.id === m.id)) && h;
      }, STORED_MS, () => 'the 20 QoS 1 messages in the history');
      const ids = items.map((m) => m.id);
      assert.equal(new Set(ids).size, ids.length, 'a message stored twice');
      await stackIsBack();
    });
});

// The hub retains every user's presence (100,000 messages with 100,000 users online), and
// mosquitto 2.0.11 sends a shared subscription every retained match on each SUBSCRIBE. The
// bridge subscribes on every connect and acts only on a live "offline": it asks for no
// retained messages (MQTT 5 retain handling 2). Before, each reconnect queued the whole
// retained presence ahead of the chat in its session, and after a reconnect storm the
// session's queue filled and the broker dropped chat ("Outgoing messages are being dropped").
describe('the bridge takes no retained presence', { timeout: 60000 }, () => {
  test('50 retained presence messages at the hub; the bridge restarts and subscribes again: it receives the live presence message after them, not the retained ones',
    async () => {
      const RETAINED = 50;
      const a = await community(U.A, 'public', [U.B]);
      const svc = await connect({ id: 0, token: serviceSecret() }, {
        url: TCP_URL, clientId: `th-service-brr-${rnd(4)}`, username: 'th-service',
      });
      // members no client connects as (made in SQL): the bridge ends no call for them, and
      // their statuses are a member's, which it leaves alone (a non-member's it has cleared,
      // ghosts.c: a clear it would then receive too)
      const made = await psql(`WITH u AS (INSERT INTO users (email, username, display_name, password_hash) `
        + `SELECT 'brr_${a.id}_' || g || '@example.test', 'brr_${a.id}_' || g, 'brr', '!' `
        + `FROM generate_series(0, ${RETAINED}) g RETURNING id), `
        + `m AS (INSERT INTO memberships (community_id, user_id, role) SELECT ${a.id}, u.id, 'member' FROM u) `
        + 'SELECT id FROM u ORDER BY id');
      assert.equal(made.code, 0, made.stderr);
      const ids = made.stdout.trim().split('\n').map(Number);
      assert.equal(ids.length, RETAINED + 1);
      const offline = JSON.stringify({ status: 'offline' });
      try {
        const base0 = metric(await bridgeMetrics(), 'th_presence_messages_total');
        const codes = await Promise.all(Array.from({ length: RETAINED },
          (_, i) => publish(svc, `presence/${a.id}/${ids[i]}`, offline, { retain: true })));
        assert.ok(codes.every((c) => c < 0x80), `retained publishes accepted: ${codes}`);
        const logFile = path.join(VAR_DIR, 'log', 'bridge.log');
        const logFrom = statSync(logFile).size;
        // the running bridge gets them live first (counted before it stops: the pool's
        // counters outlive a restart of its process)
        const before = await waitFor(async () => {
          const v = metric(await bridgeMetrics(), 'th_presence_messages_total');
          return v >= base0 + RETAINED && v;
        }, DELIVER_MS, `the ${RETAINED} presence messages live at the running bridge`);
        const pid = readPid('run/bridge.pid');
        process.kill(pid, 'SIGTERM');
        assert.ok(await waitGone(pid, 10000), `bridge (pid ${pid}) still alive after SIGTERM`);
        await stackUp();
        await waitFor(() => readFileSync(logFile, 'utf8').slice(logFrom).includes('bridge: connected'),
          DELIVER_MS, 'the bridge to connect again');
        // its SUBACK is on the way: a live message published after it arrives after anything
        // the SUBSCRIBE replays
        await sleep(500);
        assert.ok(await publish(svc, `presence/${a.id}/${ids[RETAINED]}`, offline) < 0x80, 'live presence publish');
        const n = await waitFor(async () => {
          const v = metric(await bridgeMetrics(), 'th_presence_messages_total') - before;
          return v >= 1 && v;
        }, DELIVER_MS, 'the live presence message at the bridge');
        // a few live ones of other clients may come too; the 50 retained ones would all
        assert.ok(n < 10, `the bridge received ${n} presence messages after its restart (${RETAINED} retained at the hub)`);
      } finally {
        await Promise.all(Array.from({ length: RETAINED },
          (_, i) => publish(svc, `presence/${a.id}/${ids[i]}`, '', { retain: true }))).catch(() => {});
        await end(svc);
        // the memberships made in SQL are in no Redis mirror: gone again, so the database and
        // the mirror agree for the tests after this one (community.test rebuilds the mirror
        // from the database and compares)
        const gone = await psql(`BEGIN; SET LOCAL townhall.actor_id = 'operator'; `
          + `DELETE FROM memberships WHERE community_id = ${a.id} AND user_id IN (${ids.join(',')}); COMMIT;`);
        assert.equal(gone.code, 0, gone.stderr);
      }
      await stackIsBack();
    });
});
