// Search over messages (issue 21 point 5): GET /api/messages/search?q= with channel_id= or
// community_id= (docs/openapi.yaml), messages the caller may read, ranked like post search
// (fcgi-apps/lib/textsearch.h), keyset paged.
//
// - Scope: one channel finds only its messages; a community finds every channel's.
// - Rank: more occurrences of the word rank first; ties keep a stable order through pages.
// - Edits and deletes: an edited message is found by its new text only; a deleted one never.
// - Who: a stranger to a private community gets 404 for both scopes; anonymous 401.
// - Bad input: q missing, empty, too long or with control characters; both or neither scope;
//   a malformed cursor; a malformed id — each a 4xx, never a 500.
// - Client addresses: registrations from 127.71.x.y (lib/fixtures.mjs).
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { assertError, assertStatus } from './lib/assert.mjs';
import { uuid, rnd, api, fixtures } from './lib/fixtures.mjs';

const { newUser, community } = fixtures({ net: 71, slug: 'ms', name: 'Message search', general: true });

const search = (who, qs) => api('GET', `/api/messages/search?${qs}`, who);

describe('message search', () => {
  let owner, member, stranger, pub, priv, second;
  // a word no other test writes: every match below is this file's
  const w = `zq${rnd(4)}`;
  const send = async (ch, who, body) => assertStatus(
    await api('POST', `/api/channels/${ch}/messages`, who, { id: uuid(), body }), 201, 'send:').json;

  before(async () => {
    [owner, member, stranger] = await Promise.all(['so', 'sm', 'ss'].map((p) => newUser(p)));
    pub = await community(owner, 'public', [[member, 'member']]);
    priv = await community(owner, 'private', [[member, 'member']]);
    second = assertStatus(await api('POST', `/api/communities/${pub.id}/channels`, owner, { name: `second-${rnd(3)}` }), 201, 'channel:').json;
  });

  test('scope and rank: a channel finds its own, a community every channel', async () => {
    const once = await send(pub.channel, member, `one ${w} here`);
    const thrice = await send(pub.channel, owner, `${w} ${w} ${w} again`);
    const other = await send(second.id, member, `${w} in the second channel`);
    await send(pub.channel, member, 'nothing to see');
    const inChannel = assertStatus(await search(member, `channel_id=${pub.channel}&q=${w}`), 200, 'channel:').json;
    assert.deepEqual(inChannel.items.map((m) => m.id), [thrice.id, once.id], 'ranked, this channel only');
    assert.equal(inChannel.next_cursor, null);
    assert.equal(inChannel.items[0].body, `${w} ${w} ${w} again`);
    assert.equal(inChannel.items[0].sender.id, owner.id);
    const inCommunity = assertStatus(await search(stranger, `community_id=${pub.id}&q=${encodeURIComponent(w)}`), 200, 'community:').json;
    assert.equal(inCommunity.items[0].id, thrice.id);
    assert.deepEqual(new Set(inCommunity.items.map((m) => m.id)), new Set([once.id, thrice.id, other.id]));
  });

  test('ties page in a stable order through next_cursor', async () => {
    const t = `tie${rnd(4)}`;
    const sent = [];
    for (let i = 0; i < 5; i++) sent.push(await send(second.id, member, `same ${t}`));
    const seen = [];
    let cursor = null;
    for (let i = 0; i < 5; i++) {
      const r = assertStatus(await search(member, `community_id=${pub.id}&q=${t}&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`), 200, 'page:').json;
      assert.ok(r.items.length <= 2);
      seen.push(...r.items.map((m) => m.id));
      cursor = r.next_cursor;
      if (!cursor) break;
    }
    // equal rank: newest (highest seq) first, each once
    assert.deepEqual(seen, sent.map((m) => m.id).reverse());
  });

  test('an edited message is found by its new text only; a deleted one never', async () => {
    const before = `old${rnd(4)}`;
    const afterW = `new${rnd(4)}`;
    const m = await send(pub.channel, member, `text ${before}`);
    assertStatus(await api('PATCH', `/api/messages/${m.id}`, member, { body: `text ${afterW}` }), 200, 'edit:');
    assert.equal(assertStatus(await search(member, `channel_id=${pub.channel}&q=${before}`), 200, 'old:').json.items.length, 0);
    assert.deepEqual(assertStatus(await search(member, `channel_id=${pub.channel}&q=${afterW}`), 200, 'new:').json.items.map((x) => x.id), [m.id]);
    assertStatus(await api('DELETE', `/api/messages/${m.id}`, member), 204, 'delete:');
    assert.equal(assertStatus(await search(member, `channel_id=${pub.channel}&q=${afterW}`), 200, 'deleted:').json.items.length, 0);
  });

  test('a private community is invisible to a stranger; anonymous 401', async () => {
    const p = `priv${rnd(4)}`;
    await send(priv.channel, member, `secret ${p}`);
    assert.equal(assertStatus(await search(member, `community_id=${priv.id}&q=${p}`), 200, 'member:').json.items.length, 1);
    assertError(await search(stranger, `community_id=${priv.id}&q=${p}`), 404, 'not_found');
    assertError(await search(stranger, `channel_id=${priv.channel}&q=${p}`), 404, 'not_found');
    assertError(await search(null, `community_id=${pub.id}&q=${p}`), 401, 'unauthorized');
    assertError(await search(member, `community_id=999999999&q=${p}`), 404, 'not_found');
  });

  test('bad input: a clear 4xx, never a 500', async () => {
    const c = `community_id=${pub.id}`;
    assertError(await search(member, c), 400, 'validation_failed', 'q');
    assertError(await search(member, `${c}&q=`), 400, 'validation_failed', 'q');
    assertError(await search(member, `${c}&q=${'a'.repeat(201)}`), 400, 'validation_failed', 'q');
    assertError(await search(member, `${c}&q=a%01b`), 400, 'validation_failed', 'q');
    assertError(await search(member, `q=x`), 400, 'validation_failed');
    assertError(await search(member, `${c}&channel_id=${pub.channel}&q=x`), 400, 'validation_failed');
    assertError(await search(member, `${c}&q=x&cursor=bad`), 400, 'validation_failed', 'cursor');
    assertError(await search(member, `${c}&q=x&limit=101`), 400, 'validation_failed', 'limit');
    assertError(await search(member, 'channel_id=abc&q=x'), 404, 'not_found');
    // operators and quotes are text, not syntax
    for (const q of ['"&|!():*', 'a -b OR "c d"', "'; DROP TABLE messages; --", '\\']) {
      assertStatus(await search(member, `${c}&q=${encodeURIComponent(q)}`), 200, `q ${q}:`);
    }
    // a cursor of a two-key list (post search: rank.id) is not a cursor of this one
    const twoKeys = Buffer.from('5.7').toString('base64url');
    assertError(await search(member, `${c}&q=x&cursor=${twoKeys}`), 400, 'validation_failed', 'cursor');
    const threeKeys = Buffer.from('5.7.9').toString('base64url');
    assertStatus(await search(member, `${c}&q=x&cursor=${threeKeys}`), 200, 'a well-formed cursor:');
  });
});
