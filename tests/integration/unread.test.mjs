// Read markers and exact unread counts, black-box over HTTP and MQTT against ../shared/API.md
// v1.1 ("Read markers and unread counts") and issue 21 point 2: PUT /api/channels/:id/read
// (forward only, bad seqs 400, nothing stored), GET /api/me/unread (one query, from seq),
// the sender's own marker, exactness with edits and deletes, `unread` events on
// user/<id>/inbox from the REST path and from the bridge's store path (MQTT), and the
// query's plan and time with 1,000 channels for one user (printed as a diagnostic).
// Registrations come from 127.22.x.y (lib/fixtures.mjs).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { assertError, assertStatus, ok2xx } from './lib/assert.mjs';
import { uuid, api, fixtures } from './lib/fixtures.mjs';
import { psql, redis } from './lib/stack.mjs';
import {
  connect, end, mustSubscribe, publish, waitFor, closeClients,
} from './lib/mqtt.mjs';
import { sleep, LOCAL_ONLY } from './lib/http.mjs';

const { newUser, community } = fixtures({ net: 22, slug: 'ur', name: 'UR', general: true });

const openDm = (who, ids) => api('POST', '/api/dms', who, { user_ids: ids.map((u) => u.id) });
const postMsg = (ch, who, body) => api('POST', `/api/channels/${ch}/messages`, who, { body });
const markRead = (ch, who, seq) => api('PUT', `/api/channels/${ch}/read`, who, seq === undefined ? {} : { seq });
const unread = async (who) => assertStatus(await api('GET', '/api/me/unread', who), 200, 'unread:').json;
const entry = (u, ch) => u.channels.find((x) => x.channel_id === ch);

async function sql(text) {
  const r = await psql(text);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

// A write straight to the database, as a route makes it: the versions its statements name
// (the triggers of migration 0040 fill townhall.uv in their transaction) bumped after it
// commits, as fcgi-apps/lib/reply.c does; the keys bumped.
async function sqlAsRoute(text) {
  const out = await sql(`${text}; SELECT 'uv=' || current_setting('townhall.uv', true)`);
  const keys = out.split('\n').pop().replace(/^uv=/, '').split(',').filter(Boolean);
  for (const k of keys) await redis('INCR', `th:uv:{v}:${k}`);
  return keys;
}

// the `unread` events on a connection's inbox for channel ch
const unreadEvents = (conn, ch) => conn.messages
  .filter((m) => /\/inbox$/.test(m.topic))
  .map((m) => JSON.parse(m.payload))
  .filter((e) => e.type === 'unread' && e.channel_id === ch);

after(closeClients);

describe('read markers', () => {
  let a; let b; let dm; let ca; let ca2; let cb;
  before(async () => {
    [a, b] = await Promise.all([newUser('ura'), newUser('urb')]);
    dm = assertStatus(await openDm(a, [b]), 201).json;
    ca = await connect(a); ca2 = await connect(a); cb = await connect(b);
    await mustSubscribe(ca, `user/${a.id}/inbox`);
    await mustSubscribe(ca2, `user/${a.id}/inbox`);
    await mustSubscribe(cb, `user/${b.id}/inbox`);
  });
  after(() => end(ca, ca2, cb));

  test('a message: the others count it, the sender\'s marker moves to it; both hear it on their inbox', async () => {
    const t0 = Date.now();
    const m = assertStatus(await postMsg(dm.id, b, 'one'), 201).json;
    const ev = await waitFor(() => unreadEvents(ca, dm.id).find((e) => e.unread === 1), 5000, 'a\'s unread event');
    const ms = Date.now() - t0;
    assert.deepEqual(ev, {
      type: 'unread', user_id: a.id, channel_id: dm.id, read_seq: 0, unread: 1, mentions: 0,
    });
    await waitFor(() => unreadEvents(cb, dm.id).find((e) => e.read_seq === m.seq && e.unread === 0), 5000, 'b\'s marker event');
    console.log(`# unread event on the inbox ${ms} ms after POST (REST path)`);
    const ua = await unread(a);
    assert.deepEqual(entry(ua, dm.id), {
      channel_id: dm.id, community_id: null, last_seq: 1, read_seq: 0, unread: 1, mentions: 0,
    });
    assert.equal(ua.notifications, 0);
    assert.equal(entry(await unread(b), dm.id), undefined, 'the sender has nothing unread');
  });

  test('PUT read: 200 with the counts, forward only, every device hears it; the list clears', async () => {
    const r = assertStatus(await markRead(dm.id, a, 1), 200, 'mark:').json;
    assert.deepEqual(r, {
      channel_id: dm.id, read_seq: 1, unread: 0, mentions: 0,
    });
    await waitFor(() => unreadEvents(ca2, dm.id).find((e) => e.read_seq === 1 && e.unread === 0), 5000, 'the other device');
    assert.equal(entry(await unread(a), dm.id), undefined);
    const n = unreadEvents(ca2, dm.id).length;
    const back = assertStatus(await markRead(dm.id, a, 0), 200, 'a lower seq:').json;
    assert.equal(back.read_seq, 1, 'the marker never moves back');
    assert.equal(back.unread, 0);
    assertStatus(await markRead(dm.id, a, 1), 200, 'the same seq:');
    await sleep(700);
    assert.equal(unreadEvents(ca2, dm.id).length, n, 'no event when nothing moved');
  });

  test('bad markers: beyond the last seq, negative, not an integer, missing: 400; not a reader: 404; nothing stored', async () => {
    for (const [seq, what] of [[2, 'beyond'], [-1, 'negative'], ['1', 'a string'], [1.5, 'a fraction'], [null, 'null'], [undefined, 'missing']]) {
      assert.ok(what);
      assertError(await markRead(dm.id, a, seq), 400, 'validation_failed', 'seq');
    }
    assertError(await api('PUT', `/api/channels/${dm.id}/read`, a, '{"seq":'), 400, 'bad_json');
    const s = await newUser('urs');
    assertError(await markRead(dm.id, s, 1), 404, 'not_found');
    assertError(await markRead(99999999, a, 1), 404, 'not_found');
    assertError(await markRead(dm.id, null, 1), 401, 'unauthorized');
    if (!LOCAL_ONLY) { // the stack's database
      assert.equal(await sql(`SELECT read_seq FROM channel_reads WHERE channel_id = ${dm.id} AND user_id = ${a.id}`), '1');
      assert.equal(await sql(`SELECT count(*) FROM channel_reads WHERE user_id = ${s.id}`), '0');
    }
  });

  test('exact: edits and deletes keep the count (a deleted message keeps its seq), one\'s own message clears it', async () => {
    const m2 = assertStatus(await postMsg(dm.id, b, 'two'), 201).json;
    const m3 = assertStatus(await postMsg(dm.id, b, 'three'), 201).json;
    assert.equal(entry(await unread(a), dm.id).unread, 2);
    assertStatus(await api('PATCH', `/api/messages/${m2.id}`, b, { body: 'two, edited' }), 200);
    assert.equal(entry(await unread(a), dm.id).unread, 2);
    assertStatus(await api('DELETE', `/api/messages/${m3.id}`, b), 204);
    assert.equal(entry(await unread(a), dm.id).unread, 2, 'a tombstone stays counted until read');
    assertStatus(await markRead(dm.id, a, m2.seq), 200);
    assert.equal(entry(await unread(a), dm.id).unread, 1);
    // replying moves a's marker past everything before it
    const mine = assertStatus(await postMsg(dm.id, a, 'mine'), 201).json;
    assert.equal(entry(await unread(a), dm.id), undefined);
    const list = assertStatus(await api('GET', '/api/dms', a), 200).json.items.find((x) => x.id === dm.id);
    assert.equal(list.read_seq, mine.seq);
    assert.equal(list.unread, 0);
    assert.equal(entry(await unread(b), dm.id).unread, 1);
    // the rule behind it: no message lies above its own sender's marker (an erased sender's
    // messages have no sender, and no marker, any more: account erasure)
    if (!LOCAL_ONLY) {
      assert.equal(await sql('SELECT count(*) FROM messages m LEFT JOIN channel_reads r ON r.user_id = m.sender_id '
        + 'AND r.channel_id = m.channel_id WHERE m.sender_id IS NOT NULL AND m.seq > coalesce(r.read_seq, 0)'), '0');
    }
  });

  test('over MQTT (the bridge\'s store path): the others\' counts reach their inbox, the sender\'s marker moves', async () => {
    const before = entry(await unread(a), dm.id)?.unread ?? 0;
    const seen = unreadEvents(ca, dm.id).length;
    const id = uuid();
    const t0 = Date.now();
    assert.ok(await publish(cb, `chat/${dm.id}/${b.id}`, JSON.stringify({ id, body: 'over mqtt' })) < 0x80);
    const ev = await waitFor(() => unreadEvents(ca, dm.id).slice(seen).find((e) => e.unread === before + 1), 5000, 'a\'s unread event from the bridge');
    console.log(`# unread event on the inbox ${Date.now() - t0} ms after the MQTT publish (bridge path)`);
    const stored = assertStatus(await api('GET', `/api/messages/${id}`, b), 200).json;
    assert.equal(ev.read_seq + ev.unread, stored.seq);
    await waitFor(() => unreadEvents(cb, dm.id).find((e) => e.read_seq === stored.seq && e.unread === 0), 5000, 'b\'s marker event');
    assert.equal(entry(await unread(b), dm.id), undefined);
  });
});

describe('community channels', () => {
  test('members count their channels; a public reader may mark but is not listed; a ban removes them', async () => {
    const [o, m, r] = await Promise.all([newUser('uro'), newUser('urm'), newUser('urr')]);
    const c = await community(o, 'public', [m]);
    const co = await connect(o);
    try {
      await mustSubscribe(co, `events/community/${c.id}`);
      assertStatus(await postMsg(c.channel, m, 'hi all'), 201);
      assertStatus(await postMsg(c.channel, m, 'again'), 201);
      // the channel's last seq on the community's topic: o's count is last_seq - read_seq
      await waitFor(() => co.messages.map((x) => JSON.parse(x.payload)).find((e) => e.type === 'channel_activity'
        && e.channel_id === c.channel && e.community_id === c.id && e.last_seq === 2), 5000, 'channel_activity');
    } finally {
      await end(co);
    }
    assert.deepEqual(entry(await unread(o), c.channel), {
      channel_id: c.channel, community_id: c.id, last_seq: 2, read_seq: 0, unread: 2, mentions: 0,
    });
    assert.equal(entry(await unread(m), c.channel), undefined);
    assert.equal(assertStatus(await markRead(c.channel, r, 1), 200, 'a public reader:').json.unread, 1);
    assert.equal(entry(await unread(r), c.channel), undefined, 'not a member: not listed');
    ok2xx(await api('POST', `/api/communities/${c.id}/bans`, o, { user_id: m.id }), 'ban');
    assert.equal(entry(await unread(m), c.channel), undefined);
    assertStatus(await postMsg(c.channel, o, 'after the ban'), 201);
    assert.equal(entry(await unread(m), c.channel), undefined, 'a banned user counts nothing there');
  });

  test('GET /api/me/unread with 1,000 channels: one query that never reads messages (EXPLAIN ANALYZE printed)', { skip: LOCAL_ONLY }, async (t) => {
    const u = await newUser('urk');
    const c1 = await community(u, 'private');
    const c2 = await community(u, 'public');
    // 998 more channels with messages counted in last_seq, half of them read to the end
    await sql(`INSERT INTO channels (community_id, name, last_seq) SELECT CASE WHEN g % 2 = 0 THEN ${c1.id} ELSE ${c2.id} END, 'bulk-' || g, g % 50 + 1 FROM generate_series(1, 998) g`);
    await sql(`INSERT INTO channel_reads (user_id, channel_id, read_seq) SELECT ${u.id}, id, CASE WHEN id % 2 = 0 THEN last_seq ELSE last_seq / 2 END FROM channels WHERE community_id IN (${c1.id}, ${c2.id}) AND name LIKE 'bulk-%'`);
    await sql('ANALYZE channels; ANALYZE channel_reads; ANALYZE memberships');
    const expected = Number(await sql(`SELECT count(*) FROM channels c LEFT JOIN channel_reads r ON r.user_id = ${u.id} AND r.channel_id = c.id WHERE c.community_id IN (${c1.id}, ${c2.id}) AND c.last_seq > coalesce(r.read_seq, 0)`));
    assert.equal(Number(await sql(`SELECT count(*) FROM channels WHERE community_id IN (${c1.id}, ${c2.id})`)), 1000);
    const got = await unread(u);
    assert.equal(got.channels.length, expected);
    assert.equal(got.truncated, false);
    for (const e of got.channels) assert.equal(e.unread, e.last_seq - e.read_seq);
    // mentions: a notification keeps its message's seq (0038's trigger, whatever inserts
    // it); one above the marker counts, one at or below it does not
    const s = await newUser('urs');
    const xs = got.channels.filter((e) => e.read_seq >= 1);
    assert.ok(xs.length > 0, 'a channel read part of the way');
    const { channel_id: x, last_seq: xSeq, read_seq: xRead, community_id: xc } = xs[0];
    const touched = await sqlAsRoute(`WITH m AS (INSERT INTO messages (id, channel_id, seq, sender_id, body) VALUES (gen_random_uuid(), ${x}, ${xSeq}, ${s.id}, 'hi'), (gen_random_uuid(), ${x}, 1, ${s.id}, 'old') RETURNING id) INSERT INTO notifications (user_id, type, actor_id, community_id, channel_id, message_id) SELECT ${u.id}, 'mention', ${s.id}, ${xc}, ${x}, id FROM m`);
    assert.equal(Number(await sql(`SELECT count(*) FROM notifications WHERE channel_id = ${x} AND message_seq IN (1, ${xSeq})`)), 2, 'message_seq filled');
    assert.deepEqual(touched, [`u${u.id}`], 'the notifications name their user\'s version (0040)');
    const withMentions = await unread(u);
    assert.deepEqual(withMentions.channels.filter((e) => e.mentions > 0).map((e) => [e.channel_id, e.read_seq, e.mentions]), [[x, xRead, 1]]);
    assert.equal(withMentions.notifications, 2);
    const plan = await sql(`EXPLAIN (ANALYZE, BUFFERS) SELECT channel_id, community_id, last_seq, read_seq FROM unread_channels(${u.id}) ORDER BY channel_id LIMIT 2001`);
    assert.doesNotMatch(plan, /messages/, 'the counts never read messages');
    assert.doesNotMatch(plan, /Function Scan/, 'unread_channels() is inlined into one plan');
    // community_access() once per membership (2 here), not once per channel (0038)
    for (const m of plan.matchAll(/on (memberships|bans|users) .*loops=(\d+)/g)) {
      assert.ok(Number(m[2]) <= 10, `community_access() ran per channel: ${m[0]}`);
    }
    const exec = /Execution Time: ([\d.]+) ms/.exec(plan)[1];
    // HTTP round trips through nginx (not asserted: the machine is shared)
    const times = [];
    for (let i = 0; i < 20; i++) {
      const t0 = process.hrtime.bigint();
      assertStatus(await api('GET', '/api/me/unread', u), 200);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    times.sort((x, y) => x - y);
    t.diagnostic(`unread_channels() over 1000 channels (${expected} unread): execution ${exec} ms; `
      + `GET /api/me/unread median ${times[10].toFixed(2)} ms, max ${times[19].toFixed(2)} ms over 20`);
    console.log(`# EXPLAIN ANALYZE, 1000 channels:\n${plan.split('\n').map((l) => `#   ${l}`).join('\n')}`);
    console.log(`# GET /api/me/unread, 1000 channels: median ${times[10].toFixed(2)} ms, max ${times[19].toFixed(2)} ms over 20`);
  });
});

// The cached answers (fcgi-apps/realtime/unreadcache.c, lib/unreadver.h): GET /api/me/unread
// and the first page of GET /api/notifications are served from a cache that a version of
// the user or of a community guards. Shown here: the cache is real (a change made behind
// the routes' back, without a bump, is not seen until its version moves), and every write
// through the routes — the caller's own, another user's, a moderator's — is in the very next
// read, with no wait for an event.
describe('cached unread counts and notifications stay exact', { skip: LOCAL_ONLY }, () => {
  const notes = async (who, qs = '') => assertStatus(await api('GET', `/api/notifications${qs}`, who), 200, 'notifications:').json;
  let o; let m; let c;
  before(async () => {
    [o, m] = await Promise.all([newUser('uco'), newUser('ucm')]);
    c = await community(o, 'public', [m]);
  });

  test('served from the cache until a version moves; a missing version is never taken as current', async () => {
    // the relay bumps versions again when it publishes a change's events: wait for those of
    // this message, so no late bump makes the cached answer below new
    const ev = await connect(o);
    try {
      await mustSubscribe(ev, `events/community/${c.id}`);
      assertStatus(await postMsg(c.channel, o, 'first'), 201);
      await waitFor(() => ev.messages.some((x) => JSON.parse(x.payload).type === 'channel_activity'), 5000, 'channel_activity');
    } finally { await end(ev); }
    const before1 = entry(await unread(m), c.channel);
    assert.equal(before1.unread, 1);
    // behind the routes' back: no version bumped, the cached answer stays
    await sql(`UPDATE channels SET last_seq = last_seq + 5 WHERE id = ${c.channel}`);
    assert.deepEqual(entry(await unread(m), c.channel), before1, 'a cached answer, not a new query');
    // the trigger names the community's version; bumping it makes the next read exact
    const keys = await sqlAsRoute(`UPDATE channels SET last_seq = last_seq WHERE id = ${c.channel}`);
    assert.deepEqual(keys, [`c${c.id}`]);
    assert.equal(entry(await unread(m), c.channel).unread, 6);
    // a lost version key (Redis flushed or evicted): the entry cannot match, PostgreSQL answers
    await sql(`UPDATE channels SET last_seq = last_seq - 5 WHERE id = ${c.channel}`);
    assert.equal(entry(await unread(m), c.channel).unread, 6, 'still cached');
    await redis('DEL', `th:uv:{v}:c${c.id}`);
    assert.equal(entry(await unread(m), c.channel).unread, 1);
  });

  test('another user\'s message, a mention, one\'s own marker, a removal: each in the next read', async () => {
    const n0 = (await notes(m)).items.length;
    const u0 = entry(await unread(m), c.channel)?.unread ?? 0;
    assertStatus(await postMsg(c.channel, o, 'second'), 201);
    assert.equal(entry(await unread(m), c.channel).unread, u0 + 1, 'another user\'s message');
    const ping = assertStatus(await postMsg(c.channel, o, `ping @${m.username}`), 201).json;
    const u2 = await unread(m);
    assert.equal(entry(u2, c.channel).unread, u0 + 2);
    assert.equal(entry(u2, c.channel).mentions, 1, 'the mention counts at once');
    const page = await notes(m);
    assert.equal(page.items.length, n0 + 1, 'the first page of notifications has it at once');
    assert.equal(page.items[0].message_id, ping.id);
    // the caller's own writes
    assertStatus(await markRead(c.channel, m, ping.seq), 200);
    assert.equal(entry(await unread(m), c.channel), undefined, 'one\'s own marker');
    assertStatus(await api('POST', '/api/notifications/read', m, { all: true }), 204);
    assert.equal((await notes(m, '?unread=true')).items.length, 0);
    assert.equal((await unread(m)).notifications, 0);
    // a moderator's: the member removed no longer counts the community's channels
    assertStatus(await postMsg(c.channel, o, 'third'), 201);
    assert.equal(entry(await unread(m), c.channel).unread, 1);
    assertStatus(await api('DELETE', `/api/communities/${c.id}/members/${m.id}`, o), 204, 'remove:');
    assert.equal(entry(await unread(m), c.channel), undefined, 'removed: not listed at once');
  });

  test('the notifications page: cached, later pages and ?after= always read PostgreSQL', async () => {
    const x = await newUser('ucx');
    const cx = await community(o, 'public', [x]);
    const inbox = await connect(x);
    try {
      await mustSubscribe(inbox, `user/${x.id}/inbox`);
      for (let i = 0; i < 3; i += 1) assertStatus(await postMsg(cx.channel, o, `@${x.username} ${i}`), 201);
      // the relay's bumps for these (see above) are done once their events arrived
      await waitFor(() => inbox.messages.filter((e) => JSON.parse(e.payload).type === 'notification').length === 3, 5000, 'three notifications');
    } finally { await end(inbox); }
    const first = await notes(x, '?limit=2');
    assert.equal(first.items.length, 2);
    // a notification written behind the routes' back: the cached first page does not show it,
    // the gap fill does
    const id = await sql(`INSERT INTO notifications (user_id, type, actor_id, community_id) VALUES (${x.id}, 'role', ${o.id}, ${cx.id}) RETURNING id`);
    assert.deepEqual((await notes(x, '?limit=2')).items.map((n) => n.id), first.items.map((n) => n.id), 'cached');
    const gap = await notes(x, `?after=${first.items[0].id}`);
    assert.deepEqual(gap.items.map((n) => n.id), [Number(id.split('\n')[0])], 'gap fill reads the database');
    await redis('INCR', `th:uv:{v}:u${x.id}`);
    assert.equal((await notes(x, '?limit=2')).items[0].id, Number(id.split('\n')[0]), 'after the bump');
  });
});
