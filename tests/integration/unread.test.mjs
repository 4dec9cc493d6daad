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
import { psql } from './lib/stack.mjs';
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
    await sql(`WITH m AS (INSERT INTO messages (id, channel_id, seq, sender_id, body) VALUES (gen_random_uuid(), ${x}, ${xSeq}, ${s.id}, 'hi'), (gen_random_uuid(), ${x}, 1, ${s.id}, 'old') RETURNING id) INSERT INTO notifications (user_id, type, actor_id, community_id, channel_id, message_id) SELECT ${u.id}, 'mention', ${s.id}, ${xc}, ${x}, id FROM m`);
    assert.equal(Number(await sql(`SELECT count(*) FROM notifications WHERE channel_id = ${x} AND message_seq IN (1, ${xSeq})`)), 2, 'message_seq filled');
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
