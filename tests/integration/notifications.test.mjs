// Mentions and notifications (issue 21 point 3), black-box against ../shared/API.md "v1.1
// additions": Mentions and notifications.
//
// - Mentions in posts, comments and messages (REST and MQTT): case-insensitive, on a word
//   boundary, only for users who may read the place, never of oneself, never from someone
//   the user blocked; an edit never notifies the same user twice; at most 20 names an item.
// - Replies (a comment on your post, a reply to your comment or message), a new post where
//   your level is `all`, a ban, a role change.
// - Levels per community: `none` silences the community; bad levels 400; non-members 403/404.
// - Each notification reaches user/<id>/inbox as the same object the REST list returns.
// - Lists: newest first, ?unread=true, ?after= oldest first; marking read (ids / all) with a
//   `notifications_read` inbox event; GET /api/me/unread counts notifications and a channel's
//   unread mentions.
// - Bad input: a clear 400, nothing changed.
// - Client addresses: registrations from 127.72.x.y (lib/fixtures.mjs).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { assertError, assertStatus } from './lib/assert.mjs';
import { uuid, rnd, api, fixtures } from './lib/fixtures.mjs';
import { LOCAL_ONLY, sleep } from './lib/http.mjs';
import {
  closeClients, connect, end, mustSubscribe, publish, waitFor,
} from './lib/mqtt.mjs';

const { newUser, community } = fixtures({ net: 72, slug: 'nt', name: 'Notify', general: true });
after(closeClients);

const notes = async (who, qs = '') => assertStatus(await api('GET', `/api/notifications${qs}`, who), 200, 'notifications:').json;
const post = async (c, who, title, body) => assertStatus(await api('POST', `/api/communities/${c.id}/posts`, who, { title, body }), 201, 'post:').json;
const send = async (ch, who, body, extra = {}) => assertStatus(
  await api('POST', `/api/channels/${ch}/messages`, who, { id: uuid(), body, ...extra }), 201, 'send:').json;
// the caller's notifications about one item (the triggers commit with the action: no wait)
const about = async (who, pred) => (await notes(who, '?limit=100')).items.filter(pred);

describe('notifications', () => {
  let a, b, c, stranger, pub, priv;
  before(async () => {
    [a, b, c, stranger] = await Promise.all(['na', 'nb', 'nc', 'ns'].map((p) => newUser(p)));
    pub = await community(a, 'public', [b, c]);
    priv = await community(a, 'private', [[b, 'member']]);
  });

  test('a mention in a post: once, case-insensitive, with refs; the inbox carries the same object', { skip: LOCAL_ONLY }, async () => {
    const inbox = await connect(b);
    await mustSubscribe(inbox, `user/${b.id}/inbox`);
    const p = await post(pub, a, `Hi @${b.username.toUpperCase()}`, `and again @${b.username}, @${a.username}; not x@${c.username}`);
    const mine = await about(b, (n) => n.post_id === p.id);
    assert.equal(mine.length, 1, JSON.stringify(mine));
    const n = mine[0];
    assert.equal(n.type, 'mention');
    assert.equal(n.actor.id, a.id);
    assert.equal(n.actor.username, a.username);
    assert.equal(n.community_id, pub.id);
    assert.equal(n.comment_id, null);
    assert.equal(n.read_at, null);
    // nobody is notified of their own action; "x@name" is no mention (no word boundary)
    assert.equal((await about(a, (x) => x.post_id === p.id)).length, 0);
    assert.equal((await about(c, (x) => x.post_id === p.id)).length, 0);
    // the inbox event is the same object
    await waitFor(() => inbox.messages.some((m) => m.topic === `user/${b.id}/inbox` && JSON.parse(m.payload).notification?.id === n.id), 5000, 'the inbox event');
    const ev = JSON.parse(inbox.messages.find((m) => JSON.parse(m.payload).notification?.id === n.id).payload);
    assert.equal(ev.type, 'notification');
    assert.deepEqual(ev.notification, n);
    // an edit that still names b does not notify b again; a new name does
    assertStatus(await api('PATCH', `/api/posts/${p.id}`, a, { body: `@${b.username} and @${c.username}` }), 200, 'edit:');
    assert.equal((await about(b, (x) => x.post_id === p.id)).length, 1);
    assert.equal((await about(c, (x) => x.post_id === p.id && x.type === 'mention')).length, 1);
    await end(inbox);
  });

  test('only users who may read the place are notified; never by someone they blocked', async () => {
    const p = await post(priv, a, 't', `@${stranger.username} @${b.username}`);
    assert.equal((await about(stranger, (x) => x.post_id === p.id)).length, 0, 'a stranger to a private community');
    assert.equal((await about(b, (x) => x.post_id === p.id)).length, 1);
    assertStatus(await api('PUT', `/api/users/${a.id}/block`, c), 204, 'block:');
    const q = await post(pub, a, 't', `@${c.username}`);
    assert.equal((await about(c, (x) => x.post_id === q.id)).length, 0, 'blocked actor');
    assertStatus(await api('DELETE', `/api/users/${a.id}/block`, c), 204, 'unblock:');
    const r = await post(pub, a, 't', `@${c.username}`);
    assert.equal((await about(c, (x) => x.post_id === r.id)).length, 1, 'after the unblock');
  });

  test('replies: a comment on your post, a reply to your comment, a reply to your message', async () => {
    const p = await post(pub, a, 't', 'a post');
    const top = assertStatus(await api('POST', `/api/posts/${p.id}/comments`, b, { body: `first, @${a.username}` }), 201, 'comment:').json;
    // a (the post's author) gets the reply only, not also a mention for the same comment
    const forA = await about(a, (x) => x.comment_id === top.id);
    assert.deepEqual(forA.map((x) => x.type), ['reply']);
    assert.equal(forA[0].post_id, p.id);
    const sub = assertStatus(await api('POST', `/api/posts/${p.id}/comments`, c, { body: 'answer', parent_id: top.id }), 201, 'reply:').json;
    assert.deepEqual((await about(b, (x) => x.comment_id === sub.id)).map((x) => x.type), ['reply']);
    assert.deepEqual((await about(a, (x) => x.comment_id === sub.id)).map((x) => x.type), ['reply']);
    const m = await send(pub.channel, a, 'question?');
    const ans = await send(pub.channel, b, 'answer', { reply_to: m.id });
    const forM = await about(a, (x) => x.message_id === ans.id);
    assert.deepEqual(forM.map((x) => [x.type, x.channel_id, x.community_id]), [['reply', pub.channel, pub.id]]);
  });

  test('a mention in a message counts in GET /api/me/unread until read', async () => {
    const m = await send(pub.channel, a, `ping @${b.username}`);
    const n = (await about(b, (x) => x.message_id === m.id))[0];
    assert.equal(n.type, 'mention');
    const u = assertStatus(await api('GET', '/api/me/unread', b), 200, 'unread:').json;
    const ch = u.channels.find((x) => x.channel_id === pub.channel);
    assert.ok(ch && ch.mentions >= 1, JSON.stringify(u));
    assert.ok(u.notifications >= 1);
    // the marker past the message: its mention no longer counts for the channel
    assertStatus(await api('PUT', `/api/channels/${pub.channel}/read`, b, { seq: m.seq }), 200, 'read:');
    const u2 = assertStatus(await api('GET', '/api/me/unread', b), 200, 'unread:').json;
    const ch2 = u2.channels.find((x) => x.channel_id === pub.channel);
    assert.ok(!ch2 || ch2.mentions === 0, JSON.stringify(u2));
  });

  test('a mention in a DM: the unread event, GET /api/dms and PUT .../read carry it', { skip: LOCAL_ONLY }, async () => {
    const y = await newUser('ny');
    const dm = assertStatus(await api('POST', '/api/dms', a, { user_ids: [y.id] }), 201, 'dm:').json;
    const inbox = await connect(y);
    await mustSubscribe(inbox, `user/${y.id}/inbox`);
    const m = await send(dm.id, a, `hey @${y.username}`);
    const counted = () => inbox.messages.map((x) => JSON.parse(x.payload))
      .filter((e) => e.type === 'unread' && e.channel_id === dm.id && e.mentions === 1);
    await waitFor(() => counted().length > 0, 5000, 'an unread event counting the mention');
    assert.equal(counted().at(-1).unread, 1);
    // the next message, without a mention, keeps the count (its event counts mentions too)
    const m2 = await send(dm.id, a, 'and more');
    const last = () => inbox.messages.map((x) => JSON.parse(x.payload))
      .filter((e) => e.type === 'unread' && e.channel_id === dm.id).at(-1);
    await waitFor(() => last()?.unread === 2, 5000, 'the unread event of the second message');
    assert.equal(last().mentions, 1);
    const list = assertStatus(await api('GET', '/api/dms', y), 200, 'dms:').json;
    assert.equal(list.items.find((d) => d.id === dm.id).mentions, 1);
    const put = assertStatus(await api('PUT', `/api/channels/${dm.id}/read`, y, { seq: m2.seq }), 200, 'read:').json;
    assert.deepEqual([put.unread, put.mentions], [0, 0]);
    await end(inbox);
  });

  test('a mention published over MQTT notifies too', { skip: LOCAL_ONLY }, async () => {
    const conn = await connect(a);
    const id = uuid();
    assert.equal(await publish(conn, `chat/${pub.channel}/${a.id}`, JSON.stringify({ id, body: `mqtt @${c.username}` })), 0);
    await waitFor(async () => (await about(c, (x) => x.message_id === id)).length === 1, 10000, 'the mention stored by the bridge');
    await end(conn);
  });

  test('at most 20 names of an item count', async () => {
    const many = await Promise.all(Array.from({ length: 22 }, (_, i) => newUser(`m${i}`)));
    const big = await community(a, 'public', many);
    const p = await post(big, a, 't', many.map((u) => `@${u.username}`).join(' '));
    let told = 0;
    for (const u of many) told += (await about(u, (x) => x.post_id === p.id)).length;
    assert.equal(told, 20);
    assert.equal((await about(many[21], (x) => x.post_id === p.id)).length, 0, 'the 22nd name');
    // an edit naming the two left out does not pass 20 for the post
    assertStatus(await api('PATCH', `/api/posts/${p.id}`, a, { body: `@${many[20].username} @${many[21].username}` }), 200, 'edit:');
    told = 0;
    for (const u of many) told += (await about(u, (x) => x.post_id === p.id)).length;
    assert.equal(told, 20, 'still 20 after an edit');
  });

  test('a reply to someone who may no longer read the place tells them nothing', async () => {
    const gone = await newUser('ng');
    const stay = await newUser('nt');
    const cm = await community(a, 'private', [[gone, 'member'], [stay, 'member']]);
    const ch = assertStatus(await api('GET', `/api/communities/${cm.id}/channels`, a), 200, 'channels:').json.items[0].id;
    const m = await send(ch, gone, 'before I go');
    const p = await post(cm, gone, 't', 'my post');
    assertStatus(await api('POST', `/api/communities/${cm.id}/bans`, a, { user_id: gone.id }), 201, 'ban:');
    const ans = await send(ch, stay, 'an answer', { reply_to: m.id });
    const cmt = assertStatus(await api('POST', `/api/posts/${p.id}/comments`, stay, { body: 'a comment' }), 201, 'comment:').json;
    assert.equal((await about(gone, (x) => x.message_id === ans.id || x.comment_id === cmt.id)).length, 0);
  });

  test('a deleted message takes its mention with it', async () => {
    const z = await newUser('nz');
    const cm = await community(a, 'public', [z]);
    const ch = assertStatus(await api('GET', `/api/communities/${cm.id}/channels`, a), 200, 'channels:').json.items[0].id;
    const m = await send(ch, a, `oops @${z.username}`);
    assert.equal((await about(z, (x) => x.message_id === m.id)).length, 1);
    assertStatus(await api('DELETE', `/api/messages/${m.id}`, a), 204, 'delete:');
    assert.equal((await about(z, (x) => x.message_id === m.id)).length, 0);
    const u = assertStatus(await api('GET', '/api/me/unread', z), 200, 'unread:').json;
    assert.equal(u.channels.find((x) => x.channel_id === ch)?.mentions ?? 0, 0);
  });

  test('levels: none silences a community, all adds new posts; bad input', async () => {
    const d = await newUser('nd');
    const e = await newUser('ne');
    const cm = await community(a, 'public', [d, e]);
    assertError(await api('PUT', `/api/communities/${cm.id}/notify`, d, { level: 'loud' }), 400, 'validation_failed', 'level');
    assertError(await api('PUT', `/api/communities/${cm.id}/notify`, d, {}), 400, 'validation_failed', 'level');
    assertError(await api('PUT', `/api/communities/${cm.id}/notify`, stranger, { level: 'all' }), 403, 'forbidden');
    assertError(await api('PUT', `/api/communities/${priv.id}/notify`, stranger, { level: 'all' }), 404, 'not_found');
    assert.deepEqual(assertStatus(await api('PUT', `/api/communities/${cm.id}/notify`, d, { level: 'none' }), 200, 'none:').json, { community_id: cm.id, level: 'none' });
    assertStatus(await api('PUT', `/api/communities/${cm.id}/notify`, e, { level: 'all' }), 200, 'all:');
    const p = await post(cm, a, 't', `@${d.username} @${e.username}`);
    assert.equal((await about(d, (x) => x.post_id === p.id)).length, 0, 'level none');
    assert.deepEqual((await about(e, (x) => x.post_id === p.id)).map((x) => x.type).sort(), ['mention', 'post']);
  });

  test('a ban and a role change reach the user', async () => {
    const v = await newUser('nv');
    const cm = await community(a, 'public', [v]);
    assertStatus(await api('PUT', `/api/communities/${cm.id}/members/${v.id}`, a, { role: 'moderator' }), 200, 'role:');
    const role = await about(v, (x) => x.community_id === cm.id && x.type === 'role');
    assert.equal(role.length, 1);
    assertStatus(await api('POST', `/api/communities/${cm.id}/bans`, a, { user_id: v.id }), 201, 'ban:');
    const ban = await about(v, (x) => x.community_id === cm.id && x.type === 'ban');
    assert.equal(ban.length, 1);
    assert.equal(ban[0].actor.id, a.id);
  });

  // each role change used to make a notification (an inbox event, a Web Push): an admin
  // flipping a role back and forth flooded the user (migration 0042)
  test('role changes: one unread role notification a community; after it is read, the next change notifies', async () => {
    const v = await newUser('nr');
    const cm = await community(a, 'public', [v]);
    let lastAt = 0;
    for (const role of ['moderator', 'member', 'moderator', 'member', 'moderator']) {
      await sleep(20);
      lastAt = Date.now();
      assertStatus(await api('PUT', `/api/communities/${cm.id}/members/${v.id}`, a, { role }), 200, `role ${role}:`);
    }
    const first = await about(v, (x) => x.community_id === cm.id && x.type === 'role');
    assert.equal(first.length, 1, `role notifications: ${JSON.stringify(first)}`);
    // brought up to date by the last change (the clocks of the test and the database: 1 s slack)
    assert.ok(Date.parse(first[0].created_at) >= lastAt - 1000, `created_at ${first[0].created_at}, last change ${new Date(lastAt).toISOString()}`);
    assertStatus(await api('POST', '/api/notifications/read', v, { ids: [first[0].id] }), 204, 'read:');
    assertStatus(await api('PUT', `/api/communities/${cm.id}/members/${v.id}`, a, { role: 'member' }), 200, 'role after read:');
    const after = await about(v, (x) => x.community_id === cm.id && x.type === 'role');
    assert.equal(after.length, 2, `role notifications after one was read: ${JSON.stringify(after)}`);
    assert.equal(after.filter((x) => !x.read_at).length, 1);
  });

  test('a new DM and a call invitation reach the others, not the one who acted', async () => {
    const x = await newUser('nx');
    const dm = assertStatus(await api('POST', '/api/dms', a, { user_ids: [x.id] }), 201, 'dm:').json;
    const forX = await about(x, (n) => n.type === 'dm');
    assert.deepEqual(forX.map((n) => [n.channel_id, n.actor.id, n.community_id]), [[dm.id, a.id, null]]);
    assert.equal((await about(a, (n) => n.type === 'dm' && n.channel_id === dm.id)).length, 0);
    // opening the same 1:1 again is no new conversation
    assertStatus(await api('POST', '/api/dms', a, { user_ids: [x.id] }), 200, 'dm again:');
    assert.equal((await about(x, (n) => n.type === 'dm')).length, 1);
    // calls are a community channel's (a member starts one; the others are invited)
    assertError(await api('POST', '/api/calls', a, { channel_id: dm.id }), 400, 'validation_failed', 'channel_id');
    const call = assertStatus(await api('POST', '/api/calls', a, { channel_id: pub.channel }), 201, 'call:').json;
    const inv = await about(b, (n) => n.type === 'call' && n.call_id === call.id);
    assert.deepEqual(inv.map((n) => [n.channel_id, n.community_id, n.actor.id]), [[pub.channel, pub.id, a.id]]);
    assert.equal((await about(a, (n) => n.type === 'call' && n.call_id === call.id)).length, 0);
    await api('POST', `/api/calls/${call.id}/leave`, a);
  });

  test('lists, gap fill and marking read', { skip: LOCAL_ONLY }, async () => {
    const r = await newUser('nr');
    const cm = await community(a, 'public', [r]);
    const made = [];
    for (let i = 0; i < 4; i++) made.push(await post(cm, a, 't', `${i} @${r.username}`));
    const all = await notes(r);
    assert.deepEqual(all.items.map((x) => x.post_id), made.map((p) => p.id).reverse(), 'newest first');
    const ids = all.items.map((x) => x.id);
    // gap fill: after the oldest, oldest first, paged
    const page1 = await notes(r, `?after=${ids[3]}&limit=2`);
    assert.deepEqual(page1.items.map((x) => x.id), [ids[2], ids[1]]);
    const page2 = await notes(r, `?after=${ids[3]}&limit=2&cursor=${encodeURIComponent(page1.next_cursor)}`);
    assert.deepEqual(page2.items.map((x) => x.id), [ids[0]]);
    assert.equal(page2.next_cursor, null);
    // mark two read: the other devices hear it
    const inbox = await connect(r);
    await mustSubscribe(inbox, `user/${r.id}/inbox`);
    assertStatus(await api('POST', '/api/notifications/read', r, { ids: [ids[0], ids[1], 999999999] }), 204, 'read:');
    await waitFor(() => inbox.messages.some((m) => JSON.parse(m.payload).type === 'notifications_read'), 5000, 'the read event');
    const ev = JSON.parse(inbox.messages.find((m) => JSON.parse(m.payload).type === 'notifications_read').payload);
    assert.deepEqual(ev.ids, [ids[1], ids[0]].sort((x, y) => x - y));
    assert.equal(ev.unread, 2);
    assert.deepEqual((await notes(r, '?unread=true')).items.map((x) => x.id), [ids[2], ids[3]]);
    const readOne = (await notes(r)).items.find((x) => x.id === ids[0]);
    assert.match(readOne.read_at, /^\d{4}-\d\d-\d\dT/);
    assert.equal(assertStatus(await api('GET', '/api/me/unread', r), 200, 'unread:').json.notifications, 2);
    assertStatus(await api('POST', '/api/notifications/read', r, { all: true }), 204, 'read all:');
    assert.equal((await notes(r, '?unread=true')).items.length, 0);
    assert.equal(assertStatus(await api('GET', '/api/me/unread', r), 200, 'unread:').json.notifications, 0);
    // the kept count follows deletions too: a deleted post takes its notification with it
    const p1 = await post(cm, a, 't', `again @${r.username}`);
    await post(cm, a, 't', `and again @${r.username}`);
    assert.equal(assertStatus(await api('GET', '/api/me/unread', r), 200, 'unread:').json.notifications, 2);
    assertStatus(await api('DELETE', `/api/posts/${p1.id}`, a), 204, 'delete post:');
    assert.equal(assertStatus(await api('GET', '/api/me/unread', r), 200, 'unread:').json.notifications, 1);
    assert.equal((await notes(r, '?unread=true')).items.length, 1);
    // someone else's ids change nothing of theirs
    assertStatus(await api('POST', '/api/notifications/read', b, { ids }), 204, 'foreign ids:');
    await end(inbox);
  });

  test('bad input: 400, nothing changed', async () => {
    for (const body of [{}, { all: false }, { ids: [] }, { ids: 'x' }, { ids: [1, 'two'] }, { ids: [0] },
      { ids: Array.from({ length: 101 }, (_, i) => i + 1) }, { ids: [1], all: true }]) {
      assertError(await api('POST', '/api/notifications/read', b, body), 400, 'validation_failed');
    }
    for (const qs of ['?unread=maybe', '?after=x', '?after=-1', '?limit=0', '?cursor=bad']) {
      assertError(await api('GET', `/api/notifications${qs}`, b), 400, 'validation_failed');
    }
    assertError(await api('GET', '/api/notifications', null), 401, 'unauthorized');
    assert.ok((await notes(b, '?unread=true')).items.length > 0, 'b still has unread notifications');
  });
});
