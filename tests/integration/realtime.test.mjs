// Realtime app, black-box over HTTP against ../shared/API.md ("Channels, messages, calls")
// and issue 6 item 4: message history and posting, edit/delete, calls with the Redis
// participant mirror, TURN credentials (and a real coturn accepting them).
//
// Design notes
// - Client addresses. Registrations are rate limited per address (tests/integration/run:
//   3 per 5 s), so every registration comes from its own source address 127.7.x.y
//   (auth 127.1.x.y, community 127.3.x.y, mqtt 127.6.x.y, foundation 127.0.0.2).
// - Isolation. Every test builds its own community (fresh slug) and uses its #general;
//   the users are shared (registered once, in `before`).
// - Events. psql LISTENs on townhall_events while the test acts (as community.test.mjs
//   does); a bridge draining event_outbox does not hide NOTIFYs.
// - TURN. The secret is $TH_VAR_DIR/keys/turn.secret. Until scripts/stack creates it,
//   this file writes one when it is missing (the app reads it on first use). The coturn
//   test uses the stack's coturn when $TH_VAR_DIR/run/coturn.pid names a live one, else
//   starts its own turnserver from conf/coturn/turnserver.conf.in on BASE+5 and stops it.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  PORT_BASE, VAR_DIR, ROOT, runProgram, readPid, isAlive, waitGone, until, sleep, LOCAL_ONLY,
} from './lib/http.mjs';
import { assertError, assertStatus } from './lib/assert.mjs';
import { uuid, api, fixtures } from './lib/fixtures.mjs';
import { psql, redis, withEvents } from './lib/stack.mjs';

const RFC3339_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TURN_PORT = PORT_BASE + 5;
const TURN_SECRET_FILE = path.join(VAR_DIR, 'keys', 'turn.secret');

// --- helpers ----------------------------------------------------------------

const { newUser, community } = fixtures({ net: 7, slug: 'rt', name: 'RT', general: true });

const postMsg = (ch, who, body) => api('POST', `/api/channels/${ch}/messages`, who, body);
const history = (ch, who, q = '') => api('GET', `/api/channels/${ch}/messages${q}`, who);

const smembers = async (key) => (await redis('SMEMBERS', key)).split('\n').filter(Boolean).map(Number).sort((a, b) => a - b);

function assertMessage(m, { channel, sender, body }) {
  assert.match(m.id, UUID);
  assert.equal(m.channel_id, channel);
  assert.ok(Number.isInteger(m.seq) && m.seq > 0, `seq ${m.seq}`);
  assert.equal(m.sender.id, sender.id);
  assert.equal(m.sender.username, sender.username);
  assert.deepEqual(Object.keys(m.sender).sort(), ['created_at', 'display_name', 'id', 'username']);
  if (body !== undefined) assert.equal(m.body, body);
  assert.match(m.created_at, RFC3339_MS);
  assert.ok(m.edited_at === null || RFC3339_MS.test(m.edited_at));
  assert.ok('reply_to' in m);
}

// --- setup ---------------------------------------------------------------------

const U = {};
before(async () => {
  for (const k of ['owner', 'member', 'mod', 'other', 'outsider']) U[k] = await newUser(k.slice(0, 3));
});

// --- messages ---------------------------------------------------------------------

describe('messages: posting', () => {
  test('POST stores with the next seq, generates an id, keeps newlines; replay of an id is 200 with the stored message', async () => {
    const c = await community(U.owner, 'public', [[U.member, 'member']]);
    const r1 = assertStatus(await postMsg(c.channel, U.member, { body: 'line one\nline two\ttab' }), 201);
    assertMessage(r1.json, { channel: c.channel, sender: U.member, body: 'line one\nline two\ttab' });
    assert.equal(r1.json.seq, 1);
    assert.equal(r1.json.reply_to, null);
    assert.equal(r1.json.edited_at, null);
    const id = uuid();
    const r2 = assertStatus(await postMsg(c.channel, U.owner, { id, body: 'second', reply_to: r1.json.id }), 201);
    assert.equal(r2.json.id, id);
    assert.equal(r2.json.seq, 2);
    assert.equal(r2.json.reply_to, r1.json.id);
    // the same id again (even upper case, even another body): the stored one, 200, no new seq
    const r3 = assertStatus(await postMsg(c.channel, U.owner, { id: id.toUpperCase(), body: 'different' }), 200);
    assert.deepEqual(r3.json, r2.json);
    const r4 = assertStatus(await postMsg(c.channel, U.owner, { body: 'third' }), 201);
    assert.equal(r4.json.seq, 3, 'a replay consumes no seq');
    // the id of another sender's message, or of another channel: 409
    assertError(await postMsg(c.channel, U.member, { id, body: 'steal' }), 409, 'conflict', 'id');
    const c2 = await community(U.owner, 'public');
    assertError(await postMsg(c2.channel, U.owner, { id, body: 'elsewhere' }), 409, 'conflict', 'id');
    const h = assertStatus(await history(c.channel, U.owner), 200);
    assert.deepEqual(h.json.items.map((m) => m.seq), [3, 2, 1]);
  });

  test('concurrent posts get distinct, gap-free seqs', async () => {
    const c = await community(U.owner, 'public');
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => postMsg(c.channel, U.owner, { body: `m${i}` })));
    for (const r of rs) assertStatus(r, 201);
    assert.deepEqual(rs.map((r) => r.json.seq).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i + 1));
  });

  test('who may post: members; non-members 403, banned 403 banned, private non-members 404, no token 401', async () => {
    const pub = await community(U.owner, 'public', [[U.member, 'member']]);
    const priv = await community(U.owner, 'private', [[U.member, 'member']]);
    assertError(await postMsg(pub.channel, U.outsider, { body: 'hi' }), 403, 'forbidden');
    assertError(await postMsg(priv.channel, U.outsider, { body: 'hi' }), 404, 'not_found');
    assertError(await postMsg(pub.channel, null, { body: 'hi' }), 401, 'unauthorized');
    assertStatus(await postMsg(priv.channel, U.member, { body: 'hi' }), 201);
    const b = await newUser('ban');
    assertStatus(await api('POST', `/api/communities/${pub.id}/join`, b), 200);
    assertStatus(await postMsg(pub.channel, b, { body: 'before ban' }), 201);
    assertStatus(await api('POST', `/api/communities/${pub.id}/bans`, U.owner, { user_id: b.id }), 201);
    assertError(await postMsg(pub.channel, b, { body: 'after ban' }), 403, 'banned');
  });

  test('bad input: every field has its limit and a clear error; bad ids are 404', async () => {
    const c = await community(U.owner, 'public');
    const ch = c.channel;
    assertError(await postMsg(ch, U.owner, {}), 400, 'validation_failed', 'body');
    assertError(await postMsg(ch, U.owner, { body: '' }), 400, 'validation_failed', 'body');
    assertError(await postMsg(ch, U.owner, { body: 5 }), 400, 'validation_failed', 'body');
    assertError(await postMsg(ch, U.owner, { body: 'x'.repeat(4001) }), 400, 'validation_failed', 'body');
    assertError(await postMsg(ch, U.owner, { body: 'bell\u0007' }), 400, 'validation_failed', 'body');
    assertStatus(await postMsg(ch, U.owner, { body: '€'.repeat(4000) }), 201, '4000 chars');
    assertError(await postMsg(ch, U.owner, { id: 'not-a-uuid', body: 'x' }), 400, 'validation_failed', 'id');
    assertError(await postMsg(ch, U.owner, { id: 7, body: 'x' }), 400, 'validation_failed', 'id');
    assertError(await postMsg(ch, U.owner, { body: 'x', reply_to: 'nope' }), 400, 'validation_failed', 'reply_to');
    assertError(await postMsg(ch, U.owner, { body: 'x', reply_to: uuid() }), 400, 'validation_failed', 'reply_to');
    assertError(await postMsg(ch, U.owner, '{"body":'), 400, 'bad_json');
    assertError(await postMsg(ch, U.owner, '[1]'), 400, 'bad_json');
    assertError(await api('POST', `/api/channels/${ch}/messages`, U.owner, 'x'.repeat(70 * 1024)), 413, 'too_large');
    for (const bad of ['abc', '0', '-1', '1.5', '99999999999999999999', '9223372036854775807']) {
      assertError(await postMsg(bad, U.owner, { body: 'x' }), 404, 'not_found');
      assertError(await history(bad, U.owner), 404, 'not_found');
    }
    for (const bad of ['abc', '1', uuid()]) {
      assertError(await api('PATCH', `/api/messages/${bad}`, U.owner, { body: 'x' }), 404, 'not_found');
      assertError(await api('DELETE', `/api/messages/${bad}`, U.owner), 404, 'not_found');
      assertError(await api('GET', `/api/messages/${bad}`, U.owner), 404, 'not_found');
    }
    const m = await api('PUT', `/api/channels/${ch}/messages`, U.owner, { body: 'x' });
    assertError(m, 405, 'method_not_allowed');
  });
});

describe('messages: history', () => {
  test('newest first with keyset cursor; ?after= gives what came later, oldest first, continued by next_cursor', async () => {
    const c = await community(U.owner, 'public', [[U.member, 'member']]);
    const sent = [];
    for (let i = 1; i <= 7; i++) {
      const who = i % 2 ? U.owner : U.member;
      sent.push(assertStatus(await postMsg(c.channel, who, { body: `msg ${i}` }), 201).json);
    }
    // newest first, pages of 3
    const seen = [];
    let cursor = null;
    let pages = 0;
    do {
      const r = assertStatus(await history(c.channel, U.outsider, `?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`), 200);
      assert.ok(r.json.items.length <= 3);
      seen.push(...r.json.items);
      cursor = r.json.next_cursor;
      pages += 1;
    } while (cursor && pages < 10);
    assert.equal(pages, 3);
    assert.deepEqual(seen.map((m) => m.body), sent.map((m) => m.body).reverse());
    assert.deepEqual(seen.map((m) => m.seq), [7, 6, 5, 4, 3, 2, 1]);
    for (const m of seen) assertMessage(m, { channel: c.channel, sender: m.sender.id === U.owner.id ? U.owner : U.member });
    // ?after: oldest first, from the one after
    const a = assertStatus(await history(c.channel, U.member, `?after=${sent[2].id}`), 200);
    assert.deepEqual(a.json.items.map((m) => m.seq), [4, 5, 6, 7]);
    assert.equal(a.json.next_cursor, null);
    const a1 = assertStatus(await history(c.channel, U.member, `?after=${sent[1].id}&limit=2`), 200);
    assert.deepEqual(a1.json.items.map((m) => m.seq), [3, 4]);
    assert.ok(a1.json.next_cursor);
    const a2 = assertStatus(await history(c.channel, U.member, `?after=${sent[1].id}&limit=2&cursor=${a1.json.next_cursor}`), 200);
    assert.deepEqual(a2.json.items.map((m) => m.seq), [5, 6]);
    const a3 = assertStatus(await history(c.channel, U.member, `?after=${sent[1].id}&limit=2&cursor=${a2.json.next_cursor}`), 200);
    assert.deepEqual(a3.json.items.map((m) => m.seq), [7]);
    assert.equal(a3.json.next_cursor, null);
    // after the newest: empty, caught up
    const a4 = assertStatus(await history(c.channel, U.member, `?after=${sent[6].id}`), 200);
    assert.deepEqual(a4.json, { items: [], next_cursor: null });
    // upper-case id works too
    assertStatus(await history(c.channel, U.member, `?after=${sent[5].id.toUpperCase()}`), 200);
  });

  test('history errors: unknown or foreign after -> 404, malformed after/cursor/limit -> 400 naming it', async () => {
    const c = await community(U.owner, 'public');
    const c2 = await community(U.owner, 'public');
    const foreign = assertStatus(await postMsg(c2.channel, U.owner, { body: 'other channel' }), 201).json;
    assertError(await history(c.channel, U.owner, `?after=${uuid()}`), 404, 'not_found');
    assertError(await history(c.channel, U.owner, `?after=${foreign.id}`), 404, 'not_found');
    assertError(await history(c.channel, U.owner, '?after=xyz'), 400, 'validation_failed', 'after');
    assertError(await history(c.channel, U.owner, '?after='), 400, 'validation_failed', 'after');
    assertError(await history(c.channel, U.owner, '?cursor=!!!'), 400, 'validation_failed', 'cursor');
    assertError(await history(c.channel, U.owner, '?limit=0'), 400, 'validation_failed', 'limit');
    assertError(await history(c.channel, U.owner, '?limit=101'), 400, 'validation_failed', 'limit');
    assertStatus(await history(c.channel, U.owner, '?limit=100'), 200);
  });

  test('who may read: public -> any signed-in user; private -> members only (404 otherwise); no token 401', async () => {
    const pub = await community(U.owner, 'public');
    const priv = await community(U.owner, 'private', [[U.member, 'member']]);
    const m = assertStatus(await postMsg(priv.channel, U.owner, { body: 'secret' }), 201).json;
    assertStatus(await history(pub.channel, U.outsider), 200);
    assertError(await history(pub.channel, null), 401, 'unauthorized');
    assertError(await history(priv.channel, U.outsider), 404, 'not_found');
    assertError(await api('GET', `/api/messages/${m.id}`, U.outsider), 404, 'not_found');
    const h = assertStatus(await history(priv.channel, U.member), 200);
    assert.equal(h.json.items[0].body, 'secret');
    assert.deepEqual(assertStatus(await api('GET', `/api/messages/${m.id}`, U.member), 200).json, h.json.items[0]);
    assertError(await history(999999999, U.owner), 404, 'not_found');
  });
});

describe('messages: edit and delete', () => {
  test('PATCH: sender only, sets edited_at; DELETE: sender or moderator+, keeps seq, body "" and deleted_at in history', async () => {
    const c = await community(U.owner, 'public', [[U.member, 'member'], [U.mod, 'moderator'], [U.other, 'member']]);
    const m = assertStatus(await postMsg(c.channel, U.member, { body: 'original' }), 201).json;
    const m2 = assertStatus(await postMsg(c.channel, U.member, { body: 'second' }), 201).json;
    const m3 = assertStatus(await postMsg(c.channel, U.mod, { body: 'mod says' }), 201).json;
    assertError(await api('PATCH', `/api/messages/${m.id}`, U.other, { body: 'hijack' }), 403, 'forbidden');
    assertError(await api('PATCH', `/api/messages/${m.id}`, U.owner, { body: 'owner edit' }), 403, 'forbidden');
    assertError(await api('PATCH', `/api/messages/${m.id}`, U.member, {}), 400, 'validation_failed', 'body');
    assertError(await api('PATCH', `/api/messages/${m.id}`, U.member, { body: '' }), 400, 'validation_failed', 'body');
    assertError(await api('PATCH', `/api/messages/${m.id}`, U.member, { body: 'y'.repeat(4001) }), 400, 'validation_failed', 'body');
    const e = assertStatus(await api('PATCH', `/api/messages/${m.id}`, U.member, { body: 'edited\ntext' }), 200).json;
    assert.equal(e.body, 'edited\ntext');
    assert.match(e.edited_at, RFC3339_MS);
    assert.equal(e.seq, m.seq);
    assert.equal(e.id, m.id);
    // delete: another member no, a moderator yes, the sender yes; a moderator's message by a member no
    assertError(await api('DELETE', `/api/messages/${m.id}`, U.other), 403, 'forbidden');
    assertError(await api('DELETE', `/api/messages/${m3.id}`, U.member), 403, 'forbidden');
    assertStatus(await api('DELETE', `/api/messages/${m.id}`, U.mod), 204);
    assertStatus(await api('DELETE', `/api/messages/${m2.id}`, U.member), 204);
    assertError(await api('DELETE', `/api/messages/${m2.id}`, U.member), 404, 'not_found');
    assertError(await api('PATCH', `/api/messages/${m2.id}`, U.member, { body: 'revive' }), 404, 'not_found');
    const h = assertStatus(await history(c.channel, U.owner), 200).json.items;
    assert.deepEqual(h.map((x) => x.seq), [3, 2, 1]);
    const byId = Object.fromEntries(h.map((x) => [x.id, x]));
    for (const id of [m.id, m2.id]) {
      assert.equal(byId[id].body, '');
      assert.match(byId[id].deleted_at, RFC3339_MS);
    }
    assert.equal(byId[m3.id].deleted_at, null);
    assert.equal(byId[m3.id].body, 'mod says');
    // a replay of a deleted message's id returns it as stored (deleted), never re-creates it
    const rp = assertStatus(await postMsg(c.channel, U.member, { id: m2.id, body: 'second' }), 200).json;
    assert.equal(rp.body, '');
    assert.ok(rp.deleted_at);
  });

  test('events: chat_message with the message, message_edited, message_deleted; a replay emits nothing', { skip: LOCAL_ONLY }, async () => {
    const c = await community(U.owner, 'public', [[U.member, 'member']]);
    const id = uuid();
    const big = 'ж'.repeat(4000); // 8000 bytes of UTF-8: over NOTIFY's limit
    const { events, v } = await withEvents(4, async () => {
      const m = assertStatus(await postMsg(c.channel, U.member, { id, body: 'hello "events"\n' }), 201).json;
      assertStatus(await postMsg(c.channel, U.member, { id, body: 'hello "events"\n' }), 200);
      const r = assertStatus(await postMsg(c.channel, U.member, { body: 'reply', reply_to: id }), 201).json;
      const b = assertStatus(await postMsg(c.channel, U.member, { body: big }), 201).json;
      assertStatus(await api('PATCH', `/api/messages/${id}`, U.member, { body: 'changed' }), 200);
      assertStatus(await api('DELETE', `/api/messages/${id}`, U.owner), 204);
      return { m, r, b };
    });
    const mine = events.filter((e) => e.channel_id === c.channel);
    assert.deepEqual(mine.map((e) => e.type), ['chat_message', 'chat_message', 'chat_message', 'message_edited', 'message_deleted'], JSON.stringify(mine));
    assert.deepEqual(mine[0], {
      type: 'chat_message', community_id: c.id, channel_id: c.channel, sender_id: U.member.id,
      message: { id, body: 'hello "events"\n', reply_to: null },
    });
    assert.deepEqual(mine[1].message, { id: v.r.id, body: 'reply', reply_to: id });
    // the large one: the whole event is in the outbox; the NOTIFY names it without the body
    assert.equal(mine[2].message.id, v.b.id);
    assert.equal(mine[2].message.body, undefined);
    assert.ok(Number.isInteger(mine[2].outbox_id), JSON.stringify(mine[2]));
    const row = await psql(`SELECT payload->'message'->>'id', length(payload->'message'->>'body') FROM event_outbox WHERE id = ${mine[2].outbox_id}`);
    if (row.stdout.trim()) assert.equal(row.stdout.trim(), `${v.b.id}|4000`); // unless a bridge drained it already
    assert.equal(mine[3].sender_id, U.member.id);
    assert.equal(mine[3].message.id, id);
    assert.equal(mine[3].message.body, 'changed');
    assert.equal(mine[3].community_id, c.id);
    assert.deepEqual(mine[4], {
      type: 'message_deleted', community_id: c.id, channel_id: c.channel, message_id: id,
      seq: v.m.seq, sender_id: U.member.id, deleted_by: U.owner.id,
    });
  });
});

// --- calls ---------------------------------------------------------------------

describe('calls', () => {
  const startCall = (ch, who) => api('POST', '/api/calls', who, { channel_id: ch });
  const partsKey = (id) => `th:call:${id}:participants`;

  test('lifecycle: create (creator joins), join, leave, last one out ends it; Redis mirrors the participants', { skip: LOCAL_ONLY }, async () => {
    const c = await community(U.owner, 'public', [[U.member, 'member'], [U.other, 'member']]);
    const { events, v } = await withEvents(5, async () => {
      const cr = assertStatus(await startCall(c.channel, U.owner), 201).json;
      assert.ok(Number.isInteger(cr.id));
      assert.equal(cr.channel_id, c.channel);
      assert.equal(cr.created_by, U.owner.id);
      assert.deepEqual(cr.participants.map((p) => p.id), [U.owner.id]);
      assert.deepEqual(Object.keys(cr.participants[0]).sort(), ['created_at', 'display_name', 'id', 'username']);
      assert.ok(Array.isArray(cr.ice_servers));
      assert.match(cr.created_at, RFC3339_MS);
      assert.equal(cr.ended_at, null);
      assert.deepEqual(await smembers(partsKey(cr.id)), [U.owner.id]);
      assert.ok((await smembers(`th:user:${U.owner.id}:calls`)).includes(cr.id));

      const j = assertStatus(await api('POST', `/api/calls/${cr.id}/join`, U.member), 200).json;
      assert.deepEqual(j.participants.map((p) => p.id), [U.owner.id, U.member.id]);
      assertStatus(await api('POST', `/api/calls/${cr.id}/join`, U.member), 200, 'join again is a no-op');
      // POST /api/calls on a channel with an ongoing call: joins it, 200
      const again = assertStatus(await startCall(c.channel, U.other), 200).json;
      assert.equal(again.id, cr.id);
      assert.deepEqual(again.participants.map((p) => p.id).sort((a, b) => a - b), [U.owner.id, U.member.id, U.other.id].sort((a, b) => a - b));
      assert.deepEqual(await smembers(partsKey(cr.id)), [U.owner.id, U.member.id, U.other.id].sort((a, b) => a - b));

      const g = assertStatus(await api('GET', `/api/calls/${cr.id}`, U.member), 200).json;
      assert.equal(g.participants.length, 3);

      assertStatus(await api('POST', `/api/calls/${cr.id}/leave`, U.owner), 204);
      assertStatus(await api('POST', `/api/calls/${cr.id}/leave`, U.owner), 204, 'leave again is a no-op');
      assert.deepEqual(await smembers(partsKey(cr.id)), [U.member.id, U.other.id].sort((a, b) => a - b));
      assert.ok(!(await smembers(`th:user:${U.owner.id}:calls`)).includes(cr.id));
      assertStatus(await api('POST', `/api/calls/${cr.id}/leave`, U.member), 204);
      assertStatus(await api('POST', `/api/calls/${cr.id}/leave`, U.other), 204);
      const ended = assertStatus(await api('GET', `/api/calls/${cr.id}`, U.member), 200).json;
      assert.match(ended.ended_at, RFC3339_MS);
      assert.deepEqual(ended.participants, []);
      assert.equal(await redis('EXISTS', partsKey(cr.id)), '0');
      assertError(await api('POST', `/api/calls/${cr.id}/join`, U.member), 409, 'conflict');
      // a new call in the same channel
      const next = assertStatus(await startCall(c.channel, U.member), 201).json;
      assert.notEqual(next.id, cr.id);
      assertStatus(await api('POST', `/api/calls/${next.id}/leave`, U.member), 204);
      return { cr, next };
    });
    const mine = events.filter((e) => e.call_id === v.cr.id);
    assert.deepEqual(mine.map((e) => [e.type, e.user_id ?? e.from]), [
      ['call_started', U.owner.id], ['call_invite', U.owner.id], ['call_joined', U.member.id],
      ['call_joined', U.other.id], ['call_left', U.owner.id], ['call_left', U.member.id],
      ['call_left', U.other.id], ['call_ended', U.other.id],
    ], JSON.stringify(mine));
    for (const e of mine) {
      assert.equal(e.community_id, c.id);
      assert.equal(e.channel_id, c.channel);
    }
    const { inbox, ...invite } = mine[1];
    assert.deepEqual(invite, { type: 'call_invite', community_id: c.id, call_id: v.cr.id, channel_id: c.channel, from: U.owner.id });
    // the invitation goes to the other members' inboxes, never back to the caller
    assert.ok(Array.isArray(inbox) && inbox.includes(U.member.id) && !inbox.includes(U.owner.id), JSON.stringify(mine[1]));
  });

  test('permissions: members only; private calls are invisible to outsiders; a removed participant is out of the call at once', { skip: LOCAL_ONLY }, async () => {
    const pub = await community(U.owner, 'public', [[U.member, 'member']]);
    const priv = await community(U.owner, 'private', [[U.member, 'member']]);
    assertError(await startCall(pub.channel, U.outsider), 403, 'forbidden');
    assertError(await startCall(priv.channel, U.outsider), 404, 'not_found');
    const pc = assertStatus(await startCall(pub.channel, U.owner), 201).json;
    const vc = assertStatus(await startCall(priv.channel, U.owner), 201).json;
    assertError(await api('GET', `/api/calls/${pc.id}`, U.outsider), 403, 'forbidden');
    assertError(await api('POST', `/api/calls/${pc.id}/join`, U.outsider), 403, 'forbidden');
    assertError(await api('GET', `/api/calls/${vc.id}`, U.outsider), 404, 'not_found');
    assertError(await api('POST', `/api/calls/${vc.id}/join`, U.outsider), 404, 'not_found');
    assertError(await api('POST', `/api/calls/${vc.id}/leave`, U.outsider), 404, 'not_found');
    assertStatus(await api('POST', `/api/calls/${pc.id}/leave`, U.outsider), 204, 'leaving a call one is not in is a no-op');
    assertError(await api('GET', `/api/calls/${pc.id}`, null), 401, 'unauthorized');
    // a participant removed from the private community is taken out of its calls by the
    // removal itself (issue 17: the signal ACL reads the participant set); the call is
    // then invisible to them, leave included
    assertStatus(await api('POST', `/api/calls/${vc.id}/join`, U.member), 200);
    assert.deepEqual(await smembers(partsKey(vc.id)), [U.member.id, U.owner.id].sort((a, b) => a - b));
    assertStatus(await api('DELETE', `/api/communities/${priv.id}/members/${U.member.id}`, U.owner), 204);
    assert.deepEqual(await smembers(partsKey(vc.id)), [U.owner.id]);
    assert.deepEqual(assertStatus(await api('GET', `/api/calls/${vc.id}`, U.owner), 200).json.participants.map((u) => u.id), [U.owner.id]);
    assertError(await api('GET', `/api/calls/${vc.id}`, U.member), 404, 'not_found');
    assertError(await api('POST', `/api/calls/${vc.id}/leave`, U.member), 404, 'not_found');
    for (const id of [pc.id, vc.id]) assertStatus(await api('POST', `/api/calls/${id}/leave`, U.owner), 204);
  });

  test('bad input: channel_id required integer; unknown channel 404; bad call ids 404', async () => {
    const c = await community(U.owner, 'public');
    assertError(await api('POST', '/api/calls', U.owner, {}), 400, 'validation_failed', 'channel_id');
    assertError(await api('POST', '/api/calls', U.owner, { channel_id: '1' }), 400, 'validation_failed', 'channel_id');
    assertError(await api('POST', '/api/calls', U.owner, { channel_id: 0 }), 400, 'validation_failed', 'channel_id');
    assertError(await api('POST', '/api/calls', U.owner, { channel_id: 1.5 }), 400, 'validation_failed', 'channel_id');
    assertError(await api('POST', '/api/calls', U.owner, '{'), 400, 'bad_json');
    assertError(await api('POST', '/api/calls', U.owner, { channel_id: 999999999 }), 404, 'not_found');
    for (const bad of ['abc', '0', '-3', '999999999', '99999999999999999999']) {
      assertError(await api('GET', `/api/calls/${bad}`, U.owner), 404, 'not_found');
      assertError(await api('POST', `/api/calls/${bad}/join`, U.owner), 404, 'not_found');
      assertError(await api('POST', `/api/calls/${bad}/leave`, U.owner), 404, 'not_found');
    }
    assertError(await api('DELETE', '/api/calls/1', U.owner), 405, 'method_not_allowed');
    assert.ok(c.id);
  });
});

// --- TURN ------------------------------------------------------------------------

function ensureTurnSecret() {
  if (!existsSync(TURN_SECRET_FILE)) {
    writeFileSync(TURN_SECRET_FILE, crypto.randomBytes(32).toString('hex'), { mode: 0o600 });
  }
  return readFileSync(TURN_SECRET_FILE, 'utf8').replace(/\s+$/, '');
}
const hmac = (secret, user) => crypto.createHmac('sha1', secret).update(user).digest('base64');

describe('TURN', () => {
  let turnPid = 0;
  let turnDir = null;

  after(async () => {
    if (turnPid && isAlive(turnPid)) {
      process.kill(turnPid, 'SIGTERM');
      await waitGone(turnPid, 5000);
    }
    if (turnDir) rmSync(turnDir, { recursive: true, force: true });
  });

  test('GET /api/turn: coturn REST-API credentials (expiry:user, base64 HMAC-SHA1), STUN and TURN URLs, ttl', { skip: LOCAL_ONLY }, async () => {
    const secret = ensureTurnSecret();
    assertError(await api('GET', '/api/turn', null), 401, 'unauthorized');
    const r = assertStatus(await api('GET', '/api/turn', U.member), 200).json;
    assert.deepEqual(Object.keys(r).sort(), ['ice_servers', 'ttl']);
    assert.equal(r.ttl, 3600); // issue 17: 1 h by default, not 24 h
    assert.equal(r.ice_servers.length, 1);
    const s = r.ice_servers[0];
    assert.deepEqual(s.urls, [
      `stun:127.0.0.1:${TURN_PORT}`, `turn:127.0.0.1:${TURN_PORT}?transport=udp`, `turn:127.0.0.1:${TURN_PORT}?transport=tcp`,
    ]);
    const m = /^(\d+):(\d+)$/.exec(s.username);
    assert.ok(m, s.username);
    assert.equal(Number(m[2]), U.member.id);
    const now = Math.floor(Date.now() / 1000);
    assert.ok(Math.abs(Number(m[1]) - (now + r.ttl)) <= 5, `expiry ${m[1]} vs now+ttl ${now + r.ttl}`);
    assert.equal(s.credential, hmac(secret, s.username));
    // calls carry the caller's own credentials
    const c = await community(U.owner, 'public', [[U.member, 'member']]);
    const call = assertStatus(await api('POST', '/api/calls', U.member, { channel_id: c.channel }), 201).json;
    assert.equal(call.ice_servers.length, 1);
    assert.match(call.ice_servers[0].username, new RegExp(`^\\d+:${U.member.id}$`));
    assert.equal(call.ice_servers[0].credential, hmac(secret, call.ice_servers[0].username));
    assertStatus(await api('POST', `/api/calls/${call.id}/leave`, U.member), 204);
  });

  test('a real coturn accepts the credentials and refuses expired or wrong ones', { skip: LOCAL_ONLY }, async (t) => {
    const which = await runProgram('sh', ['-c', 'command -v turnserver && command -v turnutils_uclient']);
    if (which.code !== 0) { t.skip('coturn is not installed'); return; }
    // the one loopback address coturn relays to on a test stack (tests/integration/run): the
    // two clients' relay addresses (-y); every other loopback peer is denied
    const TURN_PEER = process.env.TH_TURN_TEST_PEER || '127.77.0.1';
    const secret = ensureTurnSecret();
    let stackPid = 0;
    try { stackPid = readPid('run/coturn.pid'); } catch { stackPid = 0; }
    if (!stackPid || !isAlive(stackPid)) {
      // our own coturn on the stack's TURN port, rendered like scripts/stack would
      turnDir = mkdtempSync(path.join(os.tmpdir(), 'th-turn-'));
      for (const d of ['run', 'log', 'coturn']) rmSync(path.join(turnDir, d), { force: true, recursive: true });
      const { mkdirSync } = await import('node:fs');
      for (const d of ['run', 'log', 'coturn']) mkdirSync(path.join(turnDir, d));
      const min = 50000 + (Math.floor(PORT_BASE / 10) % 499) * 20;
      const conf = readFileSync(path.join(ROOT, 'conf/coturn/turnserver.conf.in'), 'utf8')
        .replaceAll('@VAR@', turnDir).replaceAll('@PORT_TURN@', String(TURN_PORT))
        .replaceAll('@TURN_MIN_PORT@', String(min)).replaceAll('@TURN_MAX_PORT@', String(min + 19))
        .replaceAll('@TURN_SECRET@', secret).replaceAll('@TURN_RELAY_IP@', TURN_PEER)
        + `allow-loopback-peers\nallowed-peer-ip=${TURN_PEER}\n`;
      assert.ok(!/@[A-Z_]+@/.test(conf), 'unrendered placeholder');
      const confPath = path.join(turnDir, 'coturn', 'turnserver.conf');
      writeFileSync(confPath, conf, { mode: 0o600 });
      const child = spawn('turnserver', ['-c', confPath], { stdio: 'ignore' });
      turnPid = child.pid;
      const ok = await until(async () => {
        const probe = await runProgram('sh', ['-c', `ss -Hlnt "sport = :${TURN_PORT}" | grep -q .`]);
        return probe.code === 0;
      }, { timeoutMs: 8000, intervalMs: 100 });
      assert.ok(ok, `turnserver did not listen on ${TURN_PORT}`);
    }
    const uclient = (user, cred, extra = []) => runProgram('turnutils_uclient',
      [...extra, '-y', '-n', '3', '-l', '50', '-e', TURN_PEER, '-p', String(TURN_PORT), '-u', user, '-w', cred, '127.0.0.1'],
      { timeoutMs: 20000 });
    const r = assertStatus(await api('GET', '/api/turn', U.other), 200).json.ice_servers[0];
    const good = await uclient(r.username, r.credential);
    assert.equal(good.code, 0, `uclient (udp) with fresh credentials: ${good.stdout.slice(-600)} ${good.stderr.slice(-600)}`);
    assert.match(good.stdout + good.stderr, /tot_recv_msgs=[1-9]/);
    const tcp = await uclient(r.username, r.credential, ['-t']);
    assert.equal(tcp.code, 0, `uclient (tcp): ${tcp.stdout.slice(-600)} ${tcp.stderr.slice(-600)}`);
    const expiredUser = `${Math.floor(Date.now() / 1000) - 60}:${U.other.id}`;
    const expired = await uclient(expiredUser, hmac(secret, expiredUser));
    assert.notEqual(expired.code, 0, 'expired credentials were accepted');
    const wrong = await uclient(r.username, hmac(`${secret}x`, r.username));
    assert.notEqual(wrong.code, 0, 'a credential of another secret was accepted');
    await sleep(10);
  });
});
