// Reports and the mod queue (issue 23 point 1), black-box against ../shared/API.md "v1.1
// additions": Moderation, and "Limits every route and topic obeys" (reports 20/h per user).
//
// - POST /api/reports of a post, comment, message or user by anyone who can see it (201);
//   what the reporter cannot see, or what does not exist: 404; a second open report of the
//   same target by the same reporter: 409; bad type, reason, id or a note over 1000 chars:
//   400; the 21st report in an hour: 429.
// - GET /api/communities/:id/reports (moderator+): oldest first, each with the target's
//   current content; ?status=resolved; members 403.  No report carries the target's earlier
//   versions (the reporter may not read them; moderators page them at …/history), so a
//   report's size is bounded by its target's current content however often it was edited.
// - A message's id in any letter case is one target (stored lower case): one open report per
//   reporter (409), and the resolution resolves all of them.
// - POST /api/reports/:id/resolve: dismiss / remove / ban / warn by a moderator+ of the
//   target's community, one transaction with its modlog entry; every open report of the same
//   target resolved at once; each reporter gets `report_resolved`; warn gives the author a
//   `warning`; a non-moderator or another community's moderator 403 (404 for a private
//   community), a second resolution 409: nothing changed.
// - Reports of users (and of DM messages) go to the site admins' queue (admin.test.mjs).
// - Client addresses: registrations from 127.77.128+.y (lib/fixtures.mjs, net 77, shared
//   with modlog.test.mjs and admin.test.mjs: each file numbers its own addresses from the
//   offset it passes).
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { assertError, assertStatus } from './lib/assert.mjs';
import { uuid, api, fixtures } from './lib/fixtures.mjs';

const { newUser, community } = fixtures({ net: 77, slug: 'rp', name: 'Reports', general: true, first: 0x4000 });

const post = async (c, who, body = 'a post') => assertStatus(
  await api('POST', `/api/communities/${c.id}/posts`, who, { title: 't', body }), 201, 'post:').json;
const comment = async (p, who, body = 'a comment') => assertStatus(
  await api('POST', `/api/posts/${p.id}/comments`, who, { body }), 201, 'comment:').json;
const send = async (c, who, body = 'a message') => assertStatus(
  await api('POST', `/api/channels/${c.channel}/messages`, who, { id: uuid(), body }), 201, 'send:').json;
const report = (who, type, id, reason = 'spam', note = undefined) => api('POST', '/api/reports', who, { target: { type, id }, reason, note });
const reportOk = async (...a) => assertStatus(await report(...a), 201, 'report:').json;
const queue = async (c, who, qs = '') => assertStatus(await api('GET', `/api/communities/${c.id}/reports${qs}`, who), 200, 'queue:').json;
const resolve = (who, r, action, note = undefined) => api('POST', `/api/reports/${r.id}/resolve`, who, { action, note });
const notes = async (who) => assertStatus(await api('GET', '/api/notifications?limit=100', who), 200, 'notifications:').json.items;
const modlog = async (c, who) => assertStatus(await api('GET', `/api/communities/${c.id}/modlog?limit=100`, who), 200, 'modlog:').json.items;

describe('reports', () => {
  let owner, mod, a, b, c, outsider, otherMod, pub, priv, other;
  before(async () => {
    [owner, mod, a, b, c, outsider, otherMod] = await Promise.all(['ro', 'rm', 'ra', 'rb', 'rc', 'rx', 'ry'].map((p) => newUser(p)));
    pub = await community(owner, 'public', [[mod, 'moderator'], a, b, c]);
    priv = await community(owner, 'private', [[a, 'member'], [mod, 'moderator']]);
    other = await community(otherMod, 'public', []);
  });

  test('a report: 201 with its shape; a second open one of the same target 409', async () => {
    const p = await post(pub, b);
    const r = await reportOk(a, 'post', p.id, 'harassment', 'rude\nreally');
    assert.equal(typeof r.id, 'number');
    assert.equal(r.community_id, pub.id);
    assert.equal(r.reporter.id, a.id);
    assert.equal(r.reason, 'harassment');
    assert.equal(r.note, 'rude\nreally');
    assert.equal(r.status, 'open');
    assert.equal(r.resolution, null);
    assert.deepEqual({ type: r.target.type, id: r.target.id, author: r.target.author.id }, { type: 'post', id: p.id, author: b.id });
    assertError(await report(a, 'post', p.id, 'other'), 409, 'conflict');
    // another reporter of the same target is welcome
    await reportOk(c, 'post', p.id, 'spam');
  });

  test('what the reporter cannot see, or what does not exist: 404; bad input 400; nothing stored', async () => {
    const secret = await post(priv, a, 'private');
    const before = (await queue(priv, owner)).items.length;
    assertError(await report(outsider, 'post', secret.id), 404, 'not_found');
    assertError(await report(outsider, 'post', 999999999), 404, 'not_found');
    assertError(await report(outsider, 'comment', 999999999), 404, 'not_found');
    assertError(await report(outsider, 'message', uuid()), 404, 'not_found');
    assertError(await report(outsider, 'user', 999999999), 404, 'not_found');
    assertError(await report(outsider, 'video', 1), 400, 'validation_failed', 'target.type');
    assertError(await report(outsider, 'post', secret.id, 'boring'), 400, 'validation_failed', 'reason');
    assertError(await report(outsider, 'message', 'not-a-uuid'), 400, 'validation_failed');
    assertError(await report(outsider, 'post', '12'), 400, 'validation_failed');
    assertError(await report(a, 'post', secret.id, 'spam', 'x'.repeat(1001)), 400, 'validation_failed', 'note');
    assertError(await api('POST', '/api/reports', a, { reason: 'spam' }), 400, 'validation_failed', 'target');
    assertError(await api('POST', '/api/reports', a, '{"target":'), 400, 'bad_json');
    assertError(await report(null, 'post', secret.id), 401, 'unauthorized');
    // a private community's message, by a non-member
    const ch = assertStatus(await api('GET', `/api/communities/${priv.id}/channels`, owner), 200, 'channels:').json.items[0];
    const m = assertStatus(await api('POST', `/api/channels/${ch.id}/messages`, a, { id: uuid(), body: 'hush' }), 201, 'send:').json;
    assertError(await report(outsider, 'message', m.id), 404, 'not_found');
    assert.equal((await queue(priv, owner)).items.length, before, 'nothing stored');
    // a member may report it, and 1000 chars of note are fine
    await reportOk(a, 'message', m.id, 'other', 'y'.repeat(1000));
  });

  test('the reporter\'s 201 shows the target as it is now, none of its earlier versions (those are for author or moderator+)', async () => {
    // the post's and the message's history is refused to the reporter (403); the report of
    // them showed it all (target.history: every earlier title and body)
    const p = assertStatus(await api('POST', `/api/communities/${pub.id}/posts`, b, { title: 'old title secret-p1', body: 'old body secret-p2' }), 201, 'post:').json;
    assertStatus(await api('PATCH', `/api/posts/${p.id}`, b, { title: 'new title', body: 'new body' }), 200, 'edit post:');
    assertError(await api('GET', `/api/posts/${p.id}/history`, a), 403, 'forbidden');
    const m = await send(pub, b, 'old line secret-m1');
    assertStatus(await api('PATCH', `/api/messages/${m.id}`, b, { body: 'new line' }), 200, 'edit message:');
    assertError(await api('GET', `/api/messages/${m.id}/history`, a), 403, 'forbidden');
    for (const [type, id, now] of [['post', p.id, 'new body'], ['message', m.id, 'new line']]) {
      const res = assertStatus(await report(a, type, id), 201, `report ${type}:`);
      assert.doesNotMatch(res.text, /secret-/, `the ${type}'s earlier versions are not in the reporter's 201`);
      assert.equal(res.json.target.content.body, now);
      assert.ok(res.json.target.content.edited_at, 'edited_at says it was edited');
      assert.equal('history' in res.json.target, false);
    }
    // the moderator reads them where their paging is
    const h = assertStatus(await api('GET', `/api/posts/${p.id}/history`, mod), 200, 'history:').json.items;
    assert.equal(h[0].body, 'old body secret-p2');
  });

  test('the queue: moderator+ only, oldest first, with the current content (earlier versions at …/history)', async () => {
    const p = await post(pub, b, 'first words');
    assertStatus(await api('PATCH', `/api/posts/${p.id}`, b, { body: 'second words' }), 200, 'edit:');
    const r1 = await reportOk(a, 'post', p.id);
    const cm = await comment(p, b, 'a comment here');
    const r2 = await reportOk(a, 'comment', cm.id);
    const m = await send(pub, b, 'a chat line');
    const r3 = await reportOk(a, 'message', m.id);
    const q = await queue(pub, mod, '?limit=100');
    const ids = q.items.map((x) => x.id);
    assert.deepEqual([...ids].sort((x, y) => x - y), ids, 'oldest first');
    const i1 = q.items.find((x) => x.id === r1.id);
    assert.equal(i1.target.content.body, 'second words');
    assert.ok(i1.target.content.edited_at);
    assert.equal('history' in i1.target, false, 'earlier versions are paged at /api/posts/:id/history');
    const i2 = q.items.find((x) => x.id === r2.id);
    assert.equal(i2.target.content.body, 'a comment here');
    assert.equal(i2.target.content.post_id, p.id);
    const i3 = q.items.find((x) => x.id === r3.id);
    assert.equal(i3.target.content.body, 'a chat line');
    assert.equal(i3.target.id, m.id);
    assertError(await api('GET', `/api/communities/${pub.id}/reports`, a), 403, 'forbidden');
    assertError(await api('GET', `/api/communities/${priv.id}/reports`, outsider), 404, 'not_found');
    assertError(await api('GET', `/api/communities/${pub.id}/reports?status=closed`, mod), 400, 'validation_failed', 'status');
    // paged
    const first = await queue(pub, mod, '?limit=1');
    assert.equal(first.items.length, 1);
    assert.equal(first.items[0].id, ids[0]);
    const second = await queue(pub, mod, `?limit=1&cursor=${encodeURIComponent(first.next_cursor)}`);
    assert.equal(second.items[0].id, ids[1]);
  });

  test('a report\'s size is its target\'s now, however often it was edited (the 201, the queue, the resolution)', async () => {
    // every report carried every earlier version (up to 100 of 40,000 chars each): 5 edits
    // of a 40,000-char post made each report of it 240,000 chars and more
    const cq = await community(owner, 'public', [a, b]);
    const big = (i) => `${i}`.padEnd(40000, 'x');
    const p = assertStatus(await api('POST', `/api/communities/${cq.id}/posts`, b, { title: 't', body: big(0) }), 201, 'post:').json;
    for (let i = 1; i <= 5; i++) assertStatus(await api('PATCH', `/api/posts/${p.id}`, b, { body: big(i) }), 200, `edit ${i}:`);
    const bound = 40000 + 4000; // the body now, and the rest of a report
    const made = assertStatus(await report(a, 'post', p.id), 201, 'report:');
    assert.ok(made.text.length < bound, `the 201 is ${made.text.length} chars`);
    const q = assertStatus(await api('GET', `/api/communities/${cq.id}/reports?limit=100`, owner), 200, 'queue:');
    assert.equal(q.json.items.length, 1);
    assert.ok(q.text.length < bound, `the queue page is ${q.text.length} chars`);
    const done = assertStatus(await resolve(owner, made.json, 'dismiss'), 200, 'resolve:');
    assert.ok(done.text.length < bound, `the resolution is ${done.text.length} chars`);
  });

  test('a message id in any letter case is one target: one open report per reporter, all resolved together', async () => {
    // the id was stored as typed: 4 spellings made 4 open reports of one reporter, and
    // resolving one left 3 open
    const [v, w] = await Promise.all(['rv', 'rw'].map((x) => newUser(x)));
    const cq = await community(owner, 'public', [v, w, b]);
    const m = await send(cq, b, 'spam spam');
    const up = m.id.toUpperCase();
    const mixed = m.id.slice(0, 8).toUpperCase() + m.id.slice(8);
    const first = await reportOk(v, 'message', up);
    for (const id of [m.id, mixed, m.id.slice(0, 4).toUpperCase() + m.id.slice(4)]) {
      assertError(await report(v, 'message', id), 409, 'conflict');
    }
    assert.equal(first.target.id, m.id, 'stored and shown in lower case');
    const other = await reportOk(w, 'message', mixed);
    assert.equal(other.target.id, m.id);
    const q = await queue(cq, owner, '?limit=100');
    assert.deepEqual(q.items.map((x) => x.id), [first.id, other.id]);
    assertStatus(await resolve(owner, first, 'remove'), 200, 'resolve:');
    assert.deepEqual((await queue(cq, owner, '?limit=100')).items, [], 'every report of it resolved');
    const done = (await queue(cq, owner, '?status=resolved&limit=100')).items;
    assert.deepEqual(done.map((x) => [x.id, x.resolution]), [[first.id, 'remove'], [other.id, 'remove']]);
  });

  test('remove: the post goes, every open report of it resolved, each reporter notified, logged', async () => {
    const p = await post(pub, b, 'remove me');
    const ra = await reportOk(a, 'post', p.id);
    const rc = await reportOk(c, 'post', p.id, 'illegal');
    const done = assertStatus(await resolve(mod, ra, 'remove', 'against the rules'), 200, 'resolve:').json;
    assert.equal(done.status, 'resolved');
    assert.equal(done.resolution, 'remove');
    assert.equal(done.resolution_note, 'against the rules');
    assert.equal(done.resolved_by.id, mod.id);
    assert.equal(done.target.content, null, 'the post is gone');
    assertError(await api('GET', `/api/posts/${p.id}`, a), 404, 'not_found');
    const resolved = (await queue(pub, mod, '?status=resolved&limit=100')).items;
    assert.equal(resolved.find((x) => x.id === rc.id)?.resolution, 'remove', 'the other report of it too');
    assert.ok(!(await queue(pub, mod, '?limit=100')).items.some((x) => x.id === ra.id || x.id === rc.id));
    for (const who of [a, c]) {
      const n = (await notes(who)).find((x) => x.type === 'report_resolved' && x.community_id === pub.id);
      assert.ok(n, `${who.username} is told`);
      assert.equal(n.actor.id, mod.id);
    }
    const log = await modlog(pub, mod);
    const mine = log.filter((e) => (e.action === 'remove_post' && e.target.id === p.id)
      || (e.action === 'report_remove' && e.target.id === ra.id));
    assert.equal(mine.length, 2, JSON.stringify(log.slice(0, 4)));
    assert.equal(mine.find((e) => e.action === 'report_remove').note, 'against the rules');
    // twice: 409, nothing changes
    assertError(await resolve(mod, ra, 'dismiss'), 409, 'conflict');
    assertError(await resolve(mod, rc, 'dismiss'), 409, 'conflict');
    assert.equal((await modlog(pub, mod)).length, log.length);
    // after it was resolved, the same reporter may report the same target again (if it exists)
  });

  test('remove a comment and a message; dismiss; warn notifies the author', async () => {
    const p = await post(pub, owner);
    const cm = await comment(p, b, 'bad comment');
    const rcm = await reportOk(a, 'comment', cm.id);
    assertStatus(await resolve(mod, rcm, 'remove'), 200, 'remove comment:');
    const left = assertStatus(await api('GET', `/api/posts/${p.id}/comments`, a), 200, 'comments:').json.items;
    assert.ok(!left.some((x) => x.id === cm.id));
    assertStatus(await api('GET', `/api/posts/${p.id}`, a), 200, 'the post stays:');

    const m = await send(pub, b, 'bad chat');
    const rm = await reportOk(a, 'message', m.id);
    assertStatus(await resolve(mod, rm, 'remove'), 200, 'remove message:');
    const got = assertStatus(await api('GET', `/api/messages/${m.id}`, a), 200, 'message:').json;
    assert.equal(got.body, '');
    assert.ok(got.deleted_at);

    const p2 = await post(pub, b, 'borderline');
    const rd = await reportOk(a, 'post', p2.id);
    const dismissed = assertStatus(await resolve(mod, rd, 'dismiss'), 200, 'dismiss:').json;
    assert.equal(dismissed.resolution, 'dismiss');
    assertStatus(await api('GET', `/api/posts/${p2.id}`, a), 200, 'a dismissed report leaves the post:');
    // a new report of it is possible once the old one is resolved
    const again = await reportOk(a, 'post', p2.id);
    assertStatus(await resolve(owner, again, 'warn', 'last warning'), 200, 'warn:');
    const w = (await notes(b)).find((x) => x.type === 'warning' && x.post_id === p2.id);
    assert.ok(w, 'the author is warned');
    assert.equal(w.actor.id, owner.id);
    const log = await modlog(pub, mod);
    for (const [action, id] of [['remove_comment', cm.id], ['remove_message', m.id], ['report_dismiss', rd.id], ['report_warn', again.id]]) {
      assert.ok(log.some((e) => e.action === action && e.target.id === id), `${action} ${id}`);
    }
  });

  test('a target gone before the resolution: warn and dismiss still resolve (the notification names no ref)', async () => {
    const p = await post(pub, b, 'soon gone');
    const r1 = await reportOk(a, 'post', p.id);
    assertStatus(await api('DELETE', `/api/posts/${p.id}`, b), 204, 'the author deletes it:');
    assertStatus(await resolve(mod, r1, 'warn'), 200, 'warn after the post went:');
    const w = (await notes(b)).find((x) => x.type === 'warning' && x.community_id === pub.id && x.post_id === null);
    assert.ok(w, 'the author is warned, without a ref to the post that is gone');
    const m = await send(pub, b, 'soon deleted');
    const r2 = await reportOk(c, 'message', m.id);
    assertStatus(await api('DELETE', `/api/messages/${m.id}`, b), 204, 'the sender deletes it:');
    assertStatus(await resolve(mod, r2, 'dismiss'), 200, 'dismiss after the message was deleted:');
  });

  test('ban: the author is banned from the community, logged as a ban', async () => {
    const v = await newUser('rv');
    assertStatus(await api('POST', `/api/communities/${pub.id}/join`, v), 200, 'join:');
    const p = await post(pub, v, 'spam spam');
    const r = await reportOk(a, 'post', p.id);
    assertStatus(await resolve(mod, r, 'ban', 'spammer'), 200, 'ban:');
    const bans = assertStatus(await api('GET', `/api/communities/${pub.id}/bans`, mod), 200, 'bans:').json.items;
    assert.ok(bans.some((x) => x.user.id === v.id));
    assertError(await api('POST', `/api/communities/${pub.id}/posts`, v, { title: 't', body: 'again' }), 403, 'banned');
    const log = await modlog(pub, mod);
    assert.ok(log.some((e) => e.action === 'ban' && e.target.id === v.id && e.actor.id === mod.id));
    assert.ok(log.some((e) => e.action === 'report_ban' && e.target.id === r.id));
    assert.ok(!log.some((e) => e.action === 'remove_member' && e.target.id === v.id));
    // a moderator cannot ban the owner through a report either
    const po = await post(pub, owner, 'owner writes');
    const ro = await reportOk(a, 'post', po.id);
    assertError(await resolve(mod, ro, 'ban'), 403, 'forbidden');
  });

  test('resolve by a non-moderator, another community\'s moderator, bad actions: 4xx, nothing changed', async () => {
    const p = await post(pub, b, 'contested');
    const r = await reportOk(a, 'post', p.id);
    const sp = await post(priv, a, 'private contested');
    const rp = await reportOk(mod, 'post', sp.id);
    const logBefore = (await modlog(pub, mod)).length;
    assertError(await resolve(a, r, 'remove'), 403, 'forbidden');
    assertError(await resolve(c, r, 'dismiss'), 403, 'forbidden');
    assertError(await resolve(otherMod, r, 'remove'), 403, 'forbidden');
    assertError(await resolve(otherMod, rp, 'remove'), 404, 'not_found');
    assertError(await resolve(outsider, rp, 'remove'), 404, 'not_found');
    assertError(await resolve(null, r, 'remove'), 401, 'unauthorized');
    assertError(await resolve(mod, r, 'delete'), 400, 'validation_failed', 'action');
    assertError(await resolve(mod, r, 'dismiss', 'n'.repeat(1001)), 400, 'validation_failed', 'note');
    assertError(await api('POST', '/api/reports/999999999/resolve', mod, { action: 'dismiss' }), 404, 'not_found');
    assertError(await api('POST', '/api/reports/abc/resolve', mod, { action: 'dismiss' }), 404, 'not_found');
    assertStatus(await api('GET', `/api/posts/${p.id}`, a), 200, 'the post stays:');
    assert.ok((await queue(pub, mod, '?limit=100')).items.some((x) => x.id === r.id), 'still open');
    assert.equal((await modlog(pub, mod)).length, logBefore);
    // other's moderator has no queue of pub
    assertError(await api('GET', `/api/communities/${pub.id}/reports`, otherMod), 403, 'forbidden');
    assert.deepEqual((await queue(other, otherMod)).items, []);
  });

  test('at most 20 reports an hour per user: the 21st is 429 with Retry-After', async () => {
    const r = await newUser('rr');
    const w = await newUser('rw');
    assertStatus(await api('POST', `/api/communities/${pub.id}/join`, w), 200, 'join:');
    const msgs = [];
    for (let i = 0; i < 21; i++) msgs.push(await send(pub, w, `line ${i}`));
    for (let i = 0; i < 20; i++) await reportOk(r, 'message', msgs[i].id);
    const over = await report(r, 'message', msgs[20].id);
    assertError(over, 429, 'rate_limited');
    assert.ok(Number(over.headers['retry-after']) > 0);
  });
});
