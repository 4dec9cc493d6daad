// The modlog no path can skip (issue 23 point 2), black-box against ../shared/API.md "v1.1
// additions": Moderation.
//
// - Every moderator action, through every route that can do it, leaves exactly its entry:
//   removing a post, a comment (once, not once per reply), a message; ban, unban, removing a
//   member; setting a role; slow mode.  What the author or the user does to their own (a
//   post, a comment, a message deleted by its author; leaving) leaves none.  No MQTT path
//   deletes or moderates anything (the bridge only stores chat; realtime-bridge/bridge), so
//   REST is every route.  The test compares the actions it performed with
//   GET /api/communities/:id/modlog, newest first, entry by entry.
// - The entries are written by the database (db/migrations/0033_moderation.sql): a change
//   made with no actor (a path that forgot to name one) is refused, not left unlogged.
// - The role notification names the moderator who changed the role.
// - Who reads: moderators see notes, members the same entries with note null, a signed-in
//   non-member of a public community 403, of a private one 404 (the one access policy: a
//   private community is invisible), anonymous 401.  Keyset paged newest first.
// - Client addresses: registrations from 127.77.x.y (lib/fixtures.mjs).
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { assertError, assertStatus } from './lib/assert.mjs';
import { uuid, api, fixtures } from './lib/fixtures.mjs';
import { psql } from './lib/stack.mjs';

const { newUser, community } = fixtures({ net: 77, slug: 'ml', name: 'Modlog', general: true });

const post = async (c, who, body = 'a post') => assertStatus(
  await api('POST', `/api/communities/${c.id}/posts`, who, { title: 't', body }), 201, 'post:').json;
const comment = async (p, who, body = 'a comment', parent = undefined) => assertStatus(
  await api('POST', `/api/posts/${p.id}/comments`, who, { body, parent_id: parent }), 201, 'comment:').json;
const send = async (c, who, body = 'a message') => assertStatus(
  await api('POST', `/api/channels/${c.channel}/messages`, who, { id: uuid(), body }), 201, 'send:').json;
const modlog = async (c, who, qs = '') => assertStatus(
  await api('GET', `/api/communities/${c.id}/modlog${qs}`, who), 200, 'modlog:').json;
// a community's whole log, newest first, through next_cursor (pages of `limit`)
async function wholeLog(c, who, limit = 100) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < 50; i++) {
    const page = await modlog(c, who, `?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    items.push(...page.items);
    cursor = page.next_cursor;
    if (!cursor) return items;
  }
  assert.fail('modlog: too many pages');
}
const brief = (e) => `${e.action} ${e.target.type}:${e.target.id} by ${e.actor?.id ?? null}`;

describe('modlog', () => {
  let owner, mod, a, b, c, outsider, pub, priv, kept;
  // a post of pub that stays (comments of an erased account go with it)
  const p2OfPub = () => kept;
  before(async () => {
    [owner, mod, a, b, c, outsider] = await Promise.all(['mo', 'mm', 'ma', 'mb', 'mc', 'mx'].map((p) => newUser(p)));
    pub = await community(owner, 'public', [[mod, 'moderator'], a, b, c]);
    priv = await community(owner, 'private', [[a, 'member']]);
    kept = await post(pub, owner, 'stays');
  });

  test('each moderator action through each route leaves exactly its entry; own actions none', async () => {
    const expected = []; // oldest first
    const want = (action, type, id, actor) => expected.push(`${action} ${type}:${id} by ${actor.id}`);
    // the set-up's: the owner made `mod` a moderator (the members who joined: none)
    want('set_role_moderator', 'user', mod.id, owner);

    // posts: the author's own delete, a moderator's removal (with its comments: one entry)
    const own = await post(pub, a);
    assertStatus(await api('DELETE', `/api/posts/${own.id}`, a), 204, 'own post delete:');
    const p1 = await post(pub, a);
    const c1 = await comment(p1, b);
    await comment(p1, c, 'a reply', c1.id);
    assertStatus(await api('DELETE', `/api/posts/${p1.id}`, mod), 204, 'mod post delete:');
    want('remove_post', 'post', p1.id, mod);

    // comments: own delete; a moderator's removal of a comment with a reply: one entry
    const p2 = await post(pub, b);
    const ownC = await comment(p2, a);
    assertStatus(await api('DELETE', `/api/comments/${ownC.id}`, a), 204, 'own comment delete:');
    const c2 = await comment(p2, a);
    await comment(p2, b, 'reply', c2.id);
    assertStatus(await api('DELETE', `/api/comments/${c2.id}`, mod), 204, 'mod comment delete:');
    want('remove_comment', 'comment', c2.id, mod);

    // messages: own delete, a moderator's (the owner's) removal
    const m0 = await send(pub, a);
    assertStatus(await api('DELETE', `/api/messages/${m0.id}`, a), 204, 'own message delete:');
    const m1 = await send(pub, a);
    assertStatus(await api('DELETE', `/api/messages/${m1.id}`, owner), 204, 'owner message delete:');
    want('remove_message', 'message', m1.id, owner);

    // bans: a ban (its membership removal is the ban's, not a second entry), an unban
    assertStatus(await api('POST', `/api/communities/${pub.id}/bans`, mod, { user_id: b.id, reason: 'spam links' }), 201, 'ban:');
    want('ban', 'user', b.id, mod);
    assertStatus(await api('DELETE', `/api/communities/${pub.id}/bans/${b.id}`, mod), 204, 'unban:');
    want('unban', 'user', b.id, mod);

    // members: a removal by a moderator; leaving by oneself is none
    assertStatus(await api('DELETE', `/api/communities/${pub.id}/members/${c.id}`, mod), 204, 'remove member:');
    want('remove_member', 'user', c.id, mod);
    assertStatus(await api('POST', `/api/communities/${pub.id}/join`, b), 200, 'b joins again:');
    assertStatus(await api('POST', `/api/communities/${pub.id}/leave`, b), 204, 'b leaves:');

    // roles: a role set by the owner (an existing member, and a non-member added with one)
    assertStatus(await api('PUT', `/api/communities/${pub.id}/members/${a.id}`, owner, { role: 'moderator' }), 200, 'role:');
    want('set_role_moderator', 'user', a.id, owner);
    assertStatus(await api('PUT', `/api/communities/${pub.id}/members/${a.id}`, owner, { role: 'member' }), 200, 'role back:');
    want('set_role_member', 'user', a.id, owner);

    // slow mode, through its route (PATCH by an admin+); the same value again changes nothing
    // and logs nothing
    assertStatus(await api('PATCH', `/api/communities/${pub.id}`, owner, { slow_mode_seconds: 30 }), 200, 'slow mode:');
    want('set_slow_mode', 'community', pub.id, owner);
    assertStatus(await api('PATCH', `/api/communities/${pub.id}`, owner, { slow_mode_seconds: 30 }), 200, 'slow mode again:');
    // the content limits, through the same route
    assertStatus(await api('PATCH', `/api/communities/${pub.id}`, owner, { max_message_length: 500 }), 200, 'limits:');
    want('set_content_limits', 'community', pub.id, owner);

    const log = await wholeLog(pub, mod);
    assert.deepEqual(log.map(brief), [...expected].reverse(), JSON.stringify(log, null, 1));
    // ids newest first, each with its time
    for (let i = 1; i < log.length; i++) assert.ok(log[i - 1].id > log[i].id);
    for (const e of log) assert.match(e.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(log.find((e) => e.action === 'ban').note, 'spam links');
    assert.equal(log.find((e) => e.action === 'set_slow_mode').note, '30 s');
    assert.equal(log[0].actor.username, owner.username);

    // the private community's log is its own: only its set-up (the owner added a member)
    assert.deepEqual((await modlog(priv, owner)).items.map(brief), [`set_role_member user:${a.id} by ${owner.id}`]);
  });

  test('a change with no actor is refused, and nothing changes', async () => {
    const p = await post(pub, a);
    const del = await psql(`DELETE FROM posts WHERE id = ${p.id}`);
    assert.notEqual(del.code, 0, 'an unattributed removal must fail');
    assert.match(del.stderr, /without an actor/);
    assertStatus(await api('GET', `/api/posts/${p.id}`, a), 200, 'the post is still there:');
    const ban = await psql(`INSERT INTO bans (community_id, user_id) VALUES (${pub.id}, ${c.id})`);
    assert.notEqual(ban.code, 0);
    const sm = await psql(`UPDATE communities SET slow_mode_seconds = 5 WHERE id = ${pub.id}`);
    assert.notEqual(sm.code, 0);
    const bans = assertStatus(await api('GET', `/api/communities/${pub.id}/bans`, mod), 200, 'bans:').json;
    assert.ok(!bans.items.some((x) => x.user.id === c.id));
  });

  test('what a cascade deletes is no action: a community deleted whole, an account erased', async () => {
    const doomed = await community(owner, 'public', [[mod, 'moderator'], a, b]);
    const p = await post(doomed, a);
    await comment(p, b);
    assertStatus(await api('POST', `/api/communities/${doomed.id}/bans`, mod, { user_id: c.id }), 201, 'ban:');
    assertStatus(await api('DELETE', `/api/communities/${doomed.id}`, owner), 204, 'delete the community:');
    // an account erased (DELETE /api/auth/me: its memberships go, its posts and comments stay
    // without author or body), by its owner: their own action, no entry
    const gone = await newUser('mg');
    assertStatus(await api('POST', `/api/communities/${pub.id}/join`, gone), 200, 'join:');
    const gp = await post(pub, gone);
    await comment(gp, a);
    await comment(p2OfPub(), gone);
    const before = (await wholeLog(pub, mod)).length;
    assertStatus(await api('DELETE', '/api/auth/me', gone, { password: gone.password }), 202, 'erase:');
    const left = assertStatus(await api('GET', `/api/posts/${gp.id}`, a), 200, 'the post stays:').json;
    assert.equal(left.author, null);
    assert.equal(left.body, '');
    assert.equal((await wholeLog(pub, mod)).length, before, 'no entry for what went with the account');
    // the erased author's post removed by a moderator: a removal like any other
    assertStatus(await api('DELETE', `/api/posts/${gp.id}`, mod), 204, 'remove the authorless post:');
    const after = await wholeLog(pub, mod);
    assert.equal(after.length, before + 1, JSON.stringify(after.slice(0, 3)));
    assert.equal(after[0].action, 'remove_post');
    assert.equal(String(after[0].target.id), String(gp.id));
  });

  test('the role notification names who changed the role', async () => {
    const u = await newUser('mr');
    assertStatus(await api('POST', `/api/communities/${pub.id}/join`, u), 200, 'join:');
    assertStatus(await api('PUT', `/api/communities/${pub.id}/members/${u.id}`, owner, { role: 'moderator' }), 200, 'role:');
    const n = assertStatus(await api('GET', '/api/notifications', u), 200, 'notifications:').json.items
      .find((x) => x.type === 'role' && x.community_id === pub.id);
    assert.ok(n, 'a role notification');
    assert.equal(n.actor?.id, owner.id);
  });

  test('members see the entries without notes; non-members 403 (public) / 404 (private); anonymous 401', async () => {
    const u = await newUser('mn');
    assertStatus(await api('POST', `/api/communities/${pub.id}/join`, u), 200, 'join:');
    const asMod = await wholeLog(pub, mod);
    const asMember = await wholeLog(pub, u);
    assert.equal(asMember.length, asMod.length);
    assert.deepEqual(asMember.map(brief), asMod.map(brief));
    assert.ok(asMod.some((e) => e.note !== null));
    assert.ok(asMember.every((e) => e.note === null));
    assertError(await api('GET', `/api/communities/${pub.id}/modlog`, outsider), 403, 'forbidden');
    assertError(await api('GET', `/api/communities/${priv.id}/modlog`, outsider), 404, 'not_found');
    assertError(await api('GET', `/api/communities/${pub.id}/modlog`, null), 401, 'unauthorized');
    assertError(await api('GET', '/api/communities/999999999/modlog', mod), 404, 'not_found');
    assertError(await api('GET', `/api/communities/${pub.id}/modlog?limit=0`, mod), 400, 'validation_failed');
  });

  test('keyset pages: newest first, no entry twice, none lost', async () => {
    const all = await wholeLog(pub, mod);
    const paged = await wholeLog(pub, mod, 2);
    assert.deepEqual(paged.map((e) => e.id), all.map((e) => e.id));
    const first = await modlog(pub, mod, '?limit=2');
    assert.equal(first.items.length, 2);
    assert.equal(typeof first.next_cursor, 'string');
  });
});
