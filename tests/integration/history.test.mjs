// Edit history (issue 21 point 6, issue 23 point 4), black-box against ../shared/API.md
// "Moderation": GET /api/posts/:id/history and GET /api/messages/:id/history, for the author
// and moderators; every earlier body with its time (docs/openapi.yaml: newest first, paged).
//
// - Every edit keeps the version it replaced, with the times it was written and replaced; an
//   edit that changes nothing keeps nothing.
// - Who: the author and moderator+ see it; another member 403 forbidden; a stranger to a
//   private community 404; anonymous 401.
// - A message's history goes with the message when it is deleted.
// - The count is bounded: at 100 earlier versions the next edit is refused 400
//   validation_failed and the item is unchanged.
// - Client addresses: registrations from 127.70.x.y (lib/fixtures.mjs).
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { assertError, assertStatus } from './lib/assert.mjs';
import { uuid, api, fixtures } from './lib/fixtures.mjs';
import { psql } from './lib/stack.mjs';
import { LOCAL_ONLY } from './lib/http.mjs';

const { newUser, community } = fixtures({ net: 70, slug: 'hist', name: 'History', general: true });

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe('post history', () => {
  let owner, mod, member, stranger, pub, priv;
  before(async () => {
    [owner, mod, member, stranger] = await Promise.all(['ho', 'hm', 'hb', 'hs'].map((p) => newUser(p)));
    pub = await community(owner, 'public', [[mod, 'moderator'], [member, 'member']]);
    priv = await community(owner, 'private', [[member, 'member']]);
  });

  const newPost = async (c, who, title, body) => assertStatus(
    await api('POST', `/api/communities/${c.id}/posts`, who, { title, body }), 201, 'post:').json;

  test('each edit keeps the version it replaced, newest first, with its times', async () => {
    const p = await newPost(pub, member, 'first title', 'first body');
    assertStatus(await api('PATCH', `/api/posts/${p.id}`, member, { body: 'second body' }), 200, 'edit 1:');
    assertStatus(await api('PATCH', `/api/posts/${p.id}`, member, { title: 'third title' }), 200, 'edit 2:');
    // the same text again changes nothing, so it keeps nothing
    assertStatus(await api('PATCH', `/api/posts/${p.id}`, member, { body: 'second body' }), 200, 'no-op edit:');
    const h = assertStatus(await api('GET', `/api/posts/${p.id}/history`, member), 200, 'history:').json;
    assert.equal(h.next_cursor, null);
    assert.deepEqual(h.items.map((v) => [v.version, v.title, v.body]),
      [[2, 'first title', 'second body'], [1, 'first title', 'first body']]);
    for (const v of h.items) {
      assert.match(v.written_at, ISO);
      assert.match(v.replaced_at, ISO);
      assert.ok(v.written_at <= v.replaced_at, `${v.written_at} after ${v.replaced_at}`);
    }
    // version 1 was written when the post was created, version 2 when it was first edited
    assert.equal(h.items[1].written_at, p.created_at);
    assert.equal(h.items[0].written_at, h.items[1].replaced_at);
    const now = assertStatus(await api('GET', `/api/posts/${p.id}`, member), 200, 'get:').json;
    assert.equal(now.title, 'third title');
    assert.equal(now.body, 'second body');
  });

  test('pages through next_cursor', async () => {
    const p = await newPost(pub, member, 't', 'v1');
    for (const b of ['v2', 'v3', 'v4']) assertStatus(await api('PATCH', `/api/posts/${p.id}`, member, { body: b }), 200, `edit ${b}:`);
    const seen = [];
    let cursor = null;
    for (let i = 0; i < 5; i++) {
      const q = `?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const r = assertStatus(await api('GET', `/api/posts/${p.id}/history${q}`, owner), 200, 'page:').json;
      assert.ok(r.items.length <= 2);
      seen.push(...r.items.map((v) => v.body));
      cursor = r.next_cursor;
      if (!cursor) break;
    }
    assert.deepEqual(seen, ['v3', 'v2', 'v1']);
    assertError(await api('GET', `/api/posts/${p.id}/history?limit=0`, owner), 400, 'validation_failed');
  });

  test('the author and moderators see it; others do not', async () => {
    const p = await newPost(pub, member, 't', 'secret first draft');
    assertStatus(await api('PATCH', `/api/posts/${p.id}`, member, { body: 'clean' }), 200, 'edit:');
    for (const who of [member, mod, owner]) {
      const h = assertStatus(await api('GET', `/api/posts/${p.id}/history`, who), 200, `history as ${who.username}:`).json;
      assert.equal(h.items[0].body, 'secret first draft');
    }
    // a reader who is not the author and does not moderate
    assertError(await api('GET', `/api/posts/${p.id}/history`, stranger), 403, 'forbidden');
    assertError(await api('GET', `/api/posts/${p.id}/history`, null), 401, 'unauthorized');
    // a private community's post is invisible to a stranger
    const q = await newPost(priv, member, 't', 'private draft');
    assertStatus(await api('PATCH', `/api/posts/${q.id}`, member, { body: 'private clean' }), 200, 'edit:');
    assertError(await api('GET', `/api/posts/${q.id}/history`, stranger), 404, 'not_found');
    assertError(await api('GET', '/api/posts/999999999/history', owner), 404, 'not_found');
    assertError(await api('GET', '/api/posts/abc/history', owner), 404, 'not_found');
  });

  test('at 100 earlier versions the next edit is refused and the post is unchanged', { skip: LOCAL_ONLY }, async () => {
    const p = await newPost(pub, member, 't', 'kept');
    // 100 earlier versions written directly: 100 PATCHes would meet the edit rate limit
    const r = await psql(`INSERT INTO post_edits (post_id, title, body, written_at)
      SELECT ${Number(p.id)}, 't', 'old ' || g, now() FROM generate_series(1, 100) g`);
    assert.equal(r.code, 0, r.stderr);
    assertError(await api('PATCH', `/api/posts/${p.id}`, member, { body: 'one too many' }), 400, 'validation_failed');
    const now = assertStatus(await api('GET', `/api/posts/${p.id}`, member), 200, 'get:').json;
    assert.equal(now.body, 'kept');
    assert.equal(now.edited_at, null);
  });
});

describe('message history', () => {
  let owner, mod, member, other, c;
  before(async () => {
    [owner, mod, member, other] = await Promise.all(['mo', 'mm', 'mb', 'mx'].map((p) => newUser(p)));
    c = await community(owner, 'public', [[mod, 'moderator'], [member, 'member'], [other, 'member']]);
  });

  const send = async (who, body) => assertStatus(
    await api('POST', `/api/channels/${c.channel}/messages`, who, { id: uuid(), body }), 201, 'send:').json;

  test('each edit keeps the body it replaced; sender and moderators see it', async () => {
    const m = await send(member, 'hello wrold');
    assertStatus(await api('PATCH', `/api/messages/${m.id}`, member, { body: 'hello world' }), 200, 'edit 1:');
    assertStatus(await api('PATCH', `/api/messages/${m.id}`, member, { body: 'hello world!' }), 200, 'edit 2:');
    for (const who of [member, mod, owner]) {
      const h = assertStatus(await api('GET', `/api/messages/${m.id}/history`, who), 200, 'history:').json;
      assert.deepEqual(h.items.map((v) => [v.version, v.body, 'title' in v]),
        [[2, 'hello world', false], [1, 'hello wrold', false]]);
      assert.match(h.items[0].replaced_at, ISO);
    }
    assertError(await api('GET', `/api/messages/${m.id}/history`, other), 403, 'forbidden');
    assertError(await api('GET', `/api/messages/${uuid()}/history`, member), 404, 'not_found');
    assertError(await api('GET', '/api/messages/not-a-uuid/history', member), 404, 'not_found');
  });

  test('a deleted message takes its history with it', async () => {
    const m = await send(member, 'regret');
    assertStatus(await api('PATCH', `/api/messages/${m.id}`, member, { body: 'more regret' }), 200, 'edit:');
    assertStatus(await api('DELETE', `/api/messages/${m.id}`, member), 204, 'delete:');
    assertError(await api('GET', `/api/messages/${m.id}/history`, mod), 404, 'not_found');
    if (LOCAL_ONLY) return;
    const r = await psql(`SELECT count(*) FROM message_edits WHERE message_id = '${m.id}'`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '0');
  });
});
