// DMs and blocking, black-box over HTTP and MQTT against ../shared/API.md v1.1 ("Direct
// messages and blocking", "Limits every route and topic obeys") and issue 21 point 1:
// opening 1:1 (idempotent, also at the same instant) and group DMs, the list, leaving,
// members-only history/posting/editing over REST and chat/typing over MQTT, blocking
// (REST 403, MQTT publish refused), the 20/h limit, and bad input that stores nothing.
// Registrations come from 127.21.x.y (lib/fixtures.mjs).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { assertError, assertStatus } from './lib/assert.mjs';
import { uuid, api, fixtures } from './lib/fixtures.mjs';
import { psql, redis } from './lib/stack.mjs';
import {
  connect, end, subscribe, publish, waitFor, closeClients,
} from './lib/mqtt.mjs';
import { sleep, LOCAL_ONLY } from './lib/http.mjs';

const { newUser } = fixtures({ net: 21, slug: 'dm', name: 'DM' });

const openDm = (who, ids) => api('POST', '/api/dms', who, { user_ids: ids.map((u) => (typeof u === 'object' ? u.id : u)) });
const postMsg = (ch, who, body, id) => api('POST', `/api/channels/${ch}/messages`, who, id ? { id, body } : { body });
const history = (ch, who) => api('GET', `/api/channels/${ch}/messages`, who);
async function count(sql) {
  const r = await psql(sql);
  assert.equal(r.code, 0, r.stderr);
  return Number(r.stdout.trim());
}

after(closeClients);

// Publishes typing (never stored) every 300 ms, under the typing budget of 5/s, until
// ok(reason code) holds; fails after 6 s.
async function typingUntil(conn, ch, uid, ok, what) {
  const deadline = Date.now() + 6000;
  for (;;) {
    if (ok(await publish(conn, `typing/${ch}/${uid}`, '{}'))) return;
    assert.ok(Date.now() < deadline, `timed out: ${what}`);
    await sleep(300);
  }
}

describe('opening DMs', () => {
  let a; let b; let c; let d;
  before(async () => {
    [a, b, c, d] = await Promise.all([newUser('dma'), newUser('dmb'), newUser('dmc'), newUser('dmd')]);
  });

  test('a 1:1 DM: 201, then the same one (200) from either side, a channel of kind dm without a community', async () => {
    const r = assertStatus(await openDm(a, [b]), 201, 'open:');
    const dm = r.json;
    assert.equal(dm.kind, 'dm');
    assert.equal(dm.community_id, null);
    assert.equal(dm.group, false);
    assert.deepEqual(dm.members.map((m) => m.id).sort((x, y) => x - y), [a.id, b.id].sort((x, y) => x - y));
    assert.deepEqual(Object.keys(dm.members[0]).sort(), ['created_at', 'display_name', 'id', 'username']);
    assert.equal(dm.last_message, null);
    assert.equal(dm.unread, 0);
    const again = assertStatus(await openDm(a, [b]), 200, 'again:');
    assert.equal(again.json.id, dm.id);
    const other = assertStatus(await openDm(b, [a]), 200, 'from the other side:');
    assert.equal(other.json.id, dm.id);
  });

  test('a 1:1 opened by both at the same instant is one conversation', async () => {
    const [x, y] = await Promise.all([newUser('dmx'), newUser('dmy')]);
    const rs = await Promise.all([
      openDm(x, [y]), openDm(y, [x]), openDm(x, [y]), openDm(y, [x]), openDm(x, [y]), openDm(y, [x]),
    ]);
    for (const r of rs) assert.ok(r.status === 201 || r.status === 200, `status ${r.status}: ${r.text}`);
    assert.equal(rs.filter((r) => r.status === 201).length, 1, rs.map((r) => r.status).join(','));
    assert.equal(new Set(rs.map((r) => r.json.id)).size, 1);
    const id = rs[0].json.id;
    if (!LOCAL_ONLY) { // the stack's database
      assert.equal(await count(`SELECT count(*) FROM dm_members WHERE channel_id = ${id}`), 2);
    }
  });

  test('a group DM: 201 each time, members only read and write', async () => {
    const g = assertStatus(await openDm(a, [b, c]), 201, 'group:').json;
    assert.equal(g.group, true);
    assert.equal(g.members.length, 3);
    const g2 = assertStatus(await openDm(a, [c, b]), 201, 'a second group:').json;
    assert.notEqual(g2.id, g.id);
    const m = assertStatus(await postMsg(g.id, b, 'hello group'), 201, 'member posts:').json;
    assert.equal(m.seq, 1);
    assertStatus(await history(g.id, c), 200, 'member reads:');
    assertError(await history(g.id, d), 404, 'not_found');
    assertError(await postMsg(g.id, d, 'let me in'), 404, 'not_found');
    assertError(await api('GET', `/api/messages/${m.id}`, d), 404, 'not_found');
    assertError(await api('PATCH', `/api/messages/${m.id}`, c, { body: 'not mine' }), 403, 'forbidden');
    assertError(await api('DELETE', `/api/messages/${m.id}`, c), 403, 'forbidden');
    const e = assertStatus(await api('PATCH', `/api/messages/${m.id}`, b, { body: 'edited' }), 200, 'sender edits:');
    assert.equal(e.json.body, 'edited');
    assertStatus(await api('DELETE', `/api/messages/${m.id}`, b), 204, 'sender deletes:');
  });

  test('the list: latest activity first, with last_message and unread, keyset paged', async () => {
    const [p, q1, q2, q3] = await Promise.all([newUser('dmp'), newUser('dmq'), newUser('dmq'), newUser('dmq')]);
    const d1 = assertStatus(await openDm(p, [q1]), 201, 'd1:').json;
    const d2 = assertStatus(await openDm(p, [q2]), 201, 'd2:').json;
    const d3 = assertStatus(await openDm(p, [q3]), 201, 'd3:').json;
    // activity: d1 last; d2 gets two messages from q2 (unread 2 for p)
    assertStatus(await postMsg(d2.id, q2, 'one'), 201);
    assertStatus(await postMsg(d2.id, q2, 'two'), 201);
    await sleep(5);
    assertStatus(await postMsg(d1.id, p, 'mine'), 201);
    const all = assertStatus(await api('GET', '/api/dms', p), 200, 'list:').json;
    assert.deepEqual(all.items.map((x) => x.id), [d1.id, d2.id, d3.id]);
    assert.equal(all.next_cursor, null);
    const [i1, i2, i3] = all.items;
    assert.equal(i1.last_message.body, 'mine');
    assert.equal(i1.unread, 0, 'own messages are never unread');
    assert.equal(i2.last_message.body, 'two');
    assert.equal(i2.last_message.sender.id, q2.id);
    assert.equal(i2.unread, 2);
    assert.equal(i3.last_message, null);
    const p1 = assertStatus(await api('GET', '/api/dms?limit=2', p), 200).json;
    assert.deepEqual(p1.items.map((x) => x.id), [d1.id, d2.id]);
    assert.ok(p1.next_cursor);
    const p2 = assertStatus(await api('GET', `/api/dms?limit=2&cursor=${encodeURIComponent(p1.next_cursor)}`, p), 200).json;
    assert.deepEqual(p2.items.map((x) => x.id), [d3.id]);
    assert.equal(p2.next_cursor, null);
    // the other side sees the DM too, with p's message unread
    const theirs = assertStatus(await api('GET', '/api/dms', q1), 200).json;
    assert.equal(theirs.items[0].id, d1.id);
    assert.equal(theirs.items[0].unread, 1);
  });

  test('leaving a group: 204, then no access; a 1:1 cannot be left (409); a stranger gets 404', async () => {
    const g = assertStatus(await openDm(a, [b, c]), 201).json;
    const one = (await openDm(a, [b])).json;
    assertError(await api('POST', `/api/dms/${one.id}/leave`, a), 409, 'conflict');
    assertError(await api('POST', `/api/dms/${g.id}/leave`, d), 404, 'not_found');
    assertStatus(await api('POST', `/api/dms/${g.id}/leave`, c), 204, 'leave:');
    assertError(await history(g.id, c), 404, 'not_found');
    assertError(await postMsg(g.id, c, 'back?'), 404, 'not_found');
    assertError(await api('POST', `/api/dms/${g.id}/leave`, c), 404, 'not_found');
    const left = assertStatus(await api('GET', `/api/dms`, a), 200).json.items.find((x) => x.id === g.id);
    assert.deepEqual(left.members.map((m) => m.id).sort((x, y) => x - y), [a.id, b.id].sort((x, y) => x - y));
    assertStatus(await postMsg(g.id, a, 'still here'), 201);
    // the last one out: the conversation goes
    assertStatus(await api('POST', `/api/dms/${g.id}/leave`, b), 204);
    assertStatus(await api('POST', `/api/dms/${g.id}/leave`, a), 204);
    if (!LOCAL_ONLY) { // the stack's database
      assert.equal(await count(`SELECT count(*) FROM channels WHERE id = ${g.id}`), 0);
      assert.equal(await count(`SELECT count(*) FROM messages WHERE channel_id = ${g.id}`), 0);
    }
  });

  test('bad input: oneself, 50 people, duplicates, unknown users, wrong shapes: 400, nothing stored', async () => {
    const before = LOCAL_ONLY ? 0 : await count('SELECT count(*) FROM channels WHERE kind = \'dm\'');
    const many = Array.from({ length: 50 }, (_, i) => 1000000 + i);
    for (const [body, what] of [
      [{ user_ids: [a.id] }, 'oneself'],
      [{ user_ids: [b.id, a.id] }, 'oneself in a group'],
      [{ user_ids: many }, '50 people'],
      [{ user_ids: [b.id, c.id, d.id, 1, 2, 3, 4, 5, 6, 7] }, '10 others'],
      [{ user_ids: [] }, 'nobody'],
      [{ user_ids: [b.id, b.id] }, 'a duplicate'],
      [{ user_ids: [999999999] }, 'an unknown user'],
      [{ user_ids: [b.id, 999999999] }, 'an unknown user in a group'],
      [{ user_ids: [String(b.id)] }, 'a string id'],
      [{ user_ids: [-1] }, 'a negative id'],
      [{ user_ids: [1.5] }, 'a fraction'],
      [{ user_ids: b.id }, 'not an array'],
      [{}, 'no user_ids'],
    ]) {
      assert.ok(what);
      assertError(await api('POST', '/api/dms', a, body), 400, 'validation_failed', 'user_ids');
    }
    assertError(await api('POST', '/api/dms', a, '{"user_ids": ['), 400, 'bad_json');
    assertError(await api('POST', '/api/dms', null, { user_ids: [b.id] }), 401, 'unauthorized');
    if (!LOCAL_ONLY) assert.equal(await count('SELECT count(*) FROM channels WHERE kind = \'dm\''), before);
  });

  test('opening DMs is limited (20/h): 429 with Retry-After; a 1:1 that exists is not counted', async () => {
    const [u, v, w] = await Promise.all([newUser('dml'), newUser('dml'), newUser('dml')]);
    const one = assertStatus(await openDm(u, [v]), 201).json;
    for (let i = 0; i < 19; i++) assertStatus(await openDm(u, [v, w]), 201, `group ${i}:`);
    const r = await openDm(u, [v, w]);
    assertError(r, 429, 'rate_limited');
    assert.ok(Number(r.headers['retry-after']) > 0, `Retry-After ${r.headers['retry-after']}`);
    assert.equal(assertStatus(await openDm(u, [v]), 200, 'the existing 1:1:').json.id, one.id);
  });
});

describe('blocking', () => {
  let a; let b; let c; let dm; let group;
  before(async () => {
    [a, b, c] = await Promise.all([newUser('bla'), newUser('blb'), newUser('blc')]);
    dm = assertStatus(await openDm(a, [b]), 201).json;
    group = assertStatus(await openDm(a, [b, c]), 201).json;
  });

  test('block, list, unblock; bad targets', async () => {
    assertStatus(await api('PUT', `/api/users/${b.id}/block`, a), 204, 'block:');
    assertStatus(await api('PUT', `/api/users/${b.id}/block`, a), 204, 'again:');
    const l = assertStatus(await api('GET', '/api/users/me/blocks', a), 200).json;
    assert.deepEqual(l.items.map((u) => u.id), [b.id]);
    assert.deepEqual(Object.keys(l.items[0]).sort(), ['created_at', 'display_name', 'id', 'username']);
    assert.equal(l.next_cursor, null);
    assertError(await api('PUT', `/api/users/${a.id}/block`, a), 400, 'validation_failed');
    assertError(await api('PUT', '/api/users/999999999/block', a), 404, 'not_found');
    assertError(await api('PUT', '/api/users/abc/block', a), 404, 'not_found');
    assertError(await api('PUT', `/api/users/${b.id}/block`, null), 401, 'unauthorized');
    assertStatus(await api('DELETE', `/api/users/${b.id}/block`, a), 204, 'unblock:');
    assertStatus(await api('DELETE', `/api/users/${b.id}/block`, a), 204, 'unblock again:');
    assert.deepEqual(assertStatus(await api('GET', '/api/users/me/blocks', a), 200).json.items, []);
  });

  test('the blocked one cannot open or write a DM with the blocker (403); reading stays; unblocking lifts it', async () => {
    const m = assertStatus(await postMsg(dm.id, b, 'before'), 201).json;
    assertStatus(await api('PUT', `/api/users/${b.id}/block`, a), 204);
    assertError(await openDm(b, [a]), 403, 'forbidden');
    assertError(await openDm(b, [a, c]), 403, 'forbidden');
    assertError(await postMsg(dm.id, b, 'after'), 403, 'forbidden');
    assertError(await postMsg(group.id, b, 'in the group'), 403, 'forbidden');
    assertError(await api('PATCH', `/api/messages/${m.id}`, b, { body: 'edit' }), 403, 'forbidden');
    assertStatus(await history(dm.id, b), 200, 'reading:');
    // the blocker still writes; c still writes in the group
    assertStatus(await postMsg(dm.id, a, 'from the blocker'), 201);
    assertStatus(await postMsg(group.id, c, 'from c'), 201);
    assertStatus(await api('DELETE', `/api/users/${b.id}/block`, a), 204);
    assertStatus(await postMsg(dm.id, b, 'unblocked'), 201);
    assertStatus(await openDm(b, [a]), 200);
  });

  test('MQTT: members subscribe and publish in a DM, a stranger may not, a blocked member may not publish', { skip: LOCAL_ONLY }, async () => {
    const [s] = await Promise.all([newUser('bls')]);
    const ca = await connect(a); const cb = await connect(b); const cs = await connect(s);
    try {
      assert.ok(await subscribe(ca, `chat/${dm.id}/+`) < 0x80, 'a subscribes');
      assert.ok(await subscribe(cb, `typing/${dm.id}/+`) < 0x80, 'b subscribes to typing');
      assert.ok(await subscribe(cs, `chat/${dm.id}/+`) >= 0x80, 'a stranger may not subscribe');
      const id1 = uuid();
      assert.ok(await publish(cb, `chat/${dm.id}/${b.id}`, JSON.stringify({ id: id1, body: 'over mqtt' })) < 0x80);
      await waitFor(() => ca.messages.some((x) => x.payload.includes(id1)), 5000, 'the DM message over MQTT');
      await waitFor(async () => (await history(dm.id, a)).json.items.some((x) => x.id === id1), 5000, 'stored');
      assert.ok(await publish(cs, `chat/${dm.id}/${s.id}`, JSON.stringify({ id: uuid(), body: 'stranger' })) >= 0x80, 'a stranger may not publish');
      assertStatus(await api('PUT', `/api/users/${b.id}/block`, a), 204);
      // the broker's answer follows the mirror within about a second: typing (never stored)
      // probes it, bounded
      await typingUntil(cb, dm.id, b.id, (rc) => rc >= 0x80, 'typing refused after the block');
      const id2 = uuid();
      const rc = await publish(cb, `chat/${dm.id}/${b.id}`, JSON.stringify({ id: id2, body: 'blocked' }));
      assert.ok(rc >= 0x80, `a blocked member's publish is refused (0x${rc.toString(16)})`);
      assert.ok(await subscribe(cb, `chat/${dm.id}/+`) < 0x80, 'reading stays');
      await sleep(1000);
      assert.ok(!(await history(dm.id, a)).json.items.some((x) => x.id === id2), 'never stored');
      assertStatus(await api('DELETE', `/api/users/${b.id}/block`, a), 204);
      await typingUntil(cb, dm.id, b.id, (rc) => rc < 0x80, 'typing accepted after the unblock');
      assert.ok(await publish(cb, `chat/${dm.id}/${b.id}`, JSON.stringify({ id: uuid(), body: 'again' })) < 0x80, 'unblocked: publish accepted');
      // the mirror holds the DM's members and their state
      assert.equal(await redis('GET', `th:channel:${dm.id}`), 'dm');
      assert.equal(await redis('HGET', `th:dm:${dm.id}`, String(b.id)), 'member');
    } finally {
      await end(ca, cb, cs);
    }
  });

  test('events of a DM (edit, delete, a new DM) reach its members\' inboxes, with no community', { skip: LOCAL_ONLY }, async () => {
    const cb = await connect(b); const cc = await connect(c);
    try {
      assert.ok(await subscribe(cb, `user/${b.id}/inbox`) < 0x80);
      assert.ok(await subscribe(cc, `user/${c.id}/inbox`) < 0x80);
      const m = assertStatus(await postMsg(dm.id, a, 'to be edited'), 201).json;
      assertStatus(await api('PATCH', `/api/messages/${m.id}`, a, { body: 'edited' }), 200);
      assertStatus(await api('DELETE', `/api/messages/${m.id}`, a), 204);
      const evs = () => cb.messages.filter((x) => x.topic === `user/${b.id}/inbox`).map((x) => JSON.parse(x.payload));
      const edited = await waitFor(() => evs().find((e) => e.type === 'message_edited' && e.message.id === m.id), 5000, 'message_edited');
      assert.equal(edited.community_id, null);
      assert.equal(edited.channel_id, dm.id);
      await waitFor(() => evs().find((e) => e.type === 'message_deleted' && e.message_id === m.id), 5000, 'message_deleted');
      const g = assertStatus(await openDm(a, [b, c]), 201).json;
      await waitFor(() => cc.messages.some((x) => JSON.parse(x.payload).type === 'dm_created' && JSON.parse(x.payload).channel_id === g.id), 5000, 'dm_created');
      assert.ok(!cc.messages.some((x) => x.payload.includes(m.id)), 'c, no member of the 1:1, hears nothing of it');
    } finally {
      await end(cb, cc);
    }
  });

  test('scripts/mirror-rebuild writes the DM keys', { skip: LOCAL_ONLY }, async () => {
    assertStatus(await api('PUT', `/api/users/${c.id}/block`, a), 204);
    await redis('DEL', `th:dm:${group.id}`, `th:channel:${group.id}`);
    const { run } = await import('./lib/http.mjs');
    const r = await run('scripts/mirror-rebuild');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(await redis('GET', `th:channel:${group.id}`), 'dm');
    assert.equal(await redis('HGET', `th:dm:${group.id}`, String(c.id)), 'muted');
    assert.equal(await redis('HGET', `th:dm:${group.id}`, String(b.id)), 'member');
    assertStatus(await api('DELETE', `/api/users/${c.id}/block`, a), 204);
    assert.equal(await redis('HGET', `th:dm:${group.id}`, String(c.id)), 'member');
  });
});
