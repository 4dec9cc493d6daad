// Deleting an account you can prove, and exporting it (API.md v1.1 "Account lifecycle":
// DELETE /api/auth/me, GET /api/auth/me/export; issue 22 point 6; migration 0032).
//
// The proof: a user with everything (posts, comments and messages carrying a marker string,
// over REST and MQTT, a DM, edits, reactions, read markers, notifications both ways, blocks
// both ways, a push subscription, TOTP, two sessions, an owned community, an image) erases
// the account; then every column of every table of the public schema is searched for the
// user's id (in columns that hold user ids, and as a user-id key in JSON), email, username
// and the marker, and the media store for its bytes: nothing. Others see the content with
// `author: null` and an empty body; the tokens get 401, MQTT is refused, the open socket
// closes within 5 s.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { existsSync } from 'node:fs';
import { request, run, until, LOCAL_ONLY } from './lib/http.mjs';
import { assertError, assertStatus, show } from './lib/assert.mjs';
import { api, fixtures, rnd, uuid } from './lib/fixtures.mjs';
import { psql, redis } from './lib/stack.mjs';
import {
  connect, end, publish, closeClients, waitFor,
} from './lib/mqtt.mjs';
import {
  localPath, restartMedia, whitePng,
} from './lib/media.mjs';
import { totpCode } from './lib/totp.mjs';
import { startS3, mediaS3Env } from './lib/s3.mjs';

const { newUser, community, freshAddr } = fixtures({ net: 76, slug: 'er', name: 'Erase', general: true });

after(() => closeClients());

const sql = async (q) => {
  const r = await psql(q, { timeoutMs: 60000 });
  assert.equal(r.code, 0, `psql: ${r.stderr}\n${q}`);
  return r.stdout.split('\n').filter(Boolean);
};

// Every place of the public schema that still holds the user: [table.column: what] lines.
// Columns of user ids (by name: user_id, author_id, owner_id, ...; numbers compared whole),
// modlog targets of type user, user-id keys inside JSON, and the strings anywhere as text.
const USERISH = /(^|_)(user|author|sender|actor|owner|blocker|blocked|banned_by|created_by|pair_lo|pair_hi)(_id)?$/;
async function traces({ id, strings }) {
  const cols = (await sql(`SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
    JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
    WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' ORDER BY 1, 2`)).map((l) => l.split('|'));
  assert.ok(cols.length > 50, `columns found: ${cols.length}`);
  const parts = [];
  const lit = (s) => `'${String(s).replace(/'/g, "''")}'`;
  const like = (s) => lit(`%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
  for (const [t, c, type] of cols) {
    const col = `"${t}"."${c}"`;
    const conds = [];
    if (/int|numeric/.test(type) && USERISH.test(c)) conds.push(`${col} = ${Number(id)}`);
    if (!/int|numeric|boolean|timestamp|date|double|real|interval/.test(type)) {
      for (const s of strings) conds.push(`${col}::text ILIKE ${like(s)}`);
    }
    if (/json/.test(type)) {
      conds.push(`${col}::text ~ ${lit(`"(user_id|author_id|sender_id|actor_id|owner_id|blocker_id|blocked_id)"\\s*:\\s*"?${Number(id)}\\M`)}`);
    }
    if ((t === 'modlog' || t === 'reports') && c === 'target_id') conds.push(`(target_type = 'user' AND target_id = ${lit(id)})`);
    for (const cond of conds) {
      parts.push(`SELECT ${lit(`${t}.${c}: ${cond.slice(0, 120)}`)} FROM "${t}" WHERE ${cond}`);
    }
  }
  const hits = [];
  for (let i = 0; i < parts.length; i += 200) {
    hits.push(...await sql(parts.slice(i, i + 200).join('\nUNION ALL\n')));
  }
  return hits;
}

describe('DELETE /api/auth/me: deletion you can prove', { skip: LOCAL_ONLY }, () => {
  let x, b, c, own, theirs, marker, secret, recovery, token2, png, media, sock;
  const ids = {};

  before(async () => {
    x = await newUser('erx');
    b = await newUser('erb');
    c = await newUser('erc');
    marker = `mark${rnd(8)}`;
    // TOTP on, then a second device (a login with a code)
    secret = assertStatus(await api('POST', '/api/auth/totp/setup', x), 200, 'totp setup:').json.secret;
    recovery = assertStatus(await api('POST', '/api/auth/totp/enable', x, { code: totpCode(secret) }), 200,
      'totp enable:').json.recovery_codes;
    const login = await request('POST', '/api/auth/login', {
      body: { login: x.username, password: x.password, totp: recovery[0] }, localAddress: freshAddr(),
    });
    token2 = assertStatus(login, 200, 'second device:').json;
    // x owns one community (b admin, c member); b owns another, x a member
    own = await community(x, 'public', [[b, 'admin'], c]);
    theirs = await community(b, 'public', [x, c]);
    ids.own = own.id;
    // posts, comments, edits, reactions, notifications both ways
    const p = assertStatus(await api('POST', `/api/communities/${theirs.id}/posts`, x,
      { title: `title ${marker}`, body: `body ${marker}` }), 201, 'post:').json;
    assertStatus(await api('PATCH', `/api/posts/${p.id}`, x, { body: `edited ${marker}` }), 200, 'edit post:');
    const bp = assertStatus(await api('POST', `/api/communities/${theirs.id}/posts`, b,
      { title: 'hello', body: 'a post of b' }), 201, 'b post:').json;
    const xc = assertStatus(await api('POST', `/api/posts/${bp.id}/comments`, x, { body: `reply ${marker}` }), 201,
      'x comment:').json; // b is told (actor x)
    assertStatus(await api('POST', `/api/posts/${p.id}/comments`, b, { body: 'an answer to x' }), 201,
      'b comment:'); // x is told (actor b)
    assertStatus(await api('PUT', `/api/posts/${bp.id}/reactions/${encodeURIComponent('👍')}`, x), 204, 'react:');
    Object.assign(ids, { post: p.id, bpost: bp.id, comment: xc.id });
    // messages: REST (edited), MQTT, a DM; a read marker
    const m1 = assertStatus(await api('POST', `/api/channels/${theirs.channel}/messages`, x,
      { body: `rest ${marker}` }), 201, 'message:').json;
    assertStatus(await api('PATCH', `/api/messages/${m1.id}`, x, { body: `rest edited ${marker}` }), 200, 'edit msg:');
    const conn = await connect(x);
    const m2 = uuid();
    assert.ok(await publish(conn, `chat/${theirs.channel}/${x.id}`, JSON.stringify({ id: m2, body: `mqtt ${marker}` })) < 0x80,
      'mqtt publish');
    await end(conn);
    const dm = assertStatus(await api('POST', '/api/dms', x, { user_ids: [b.id] }), 201, 'dm:').json;
    const m3 = assertStatus(await api('POST', `/api/channels/${dm.id}/messages`, x, { body: `dm ${marker}` }), 201,
      'dm message:').json;
    assertStatus(await api('POST', `/api/channels/${dm.id}/messages`, b, { body: 'dm answer' }), 201, 'dm answer:');
    Object.assign(ids, { m1: m1.id, m2, m3: m3.id, dm: dm.id });
    const stored = await until(async () => {
      const r = await api('GET', `/api/channels/${theirs.channel}/messages`, b);
      return r.json?.items?.some((m) => m.id === m2) || null;
    }, { timeoutMs: 15000 });
    assert.ok(stored, 'the MQTT message was stored');
    assertStatus(await api('PUT', `/api/channels/${ids.dm}/read`, x, { seq: 2 }), 200, 'read marker:');
    // a group DM (before the blocks: nobody opens one with someone who blocked them)
    const g = assertStatus(await api('POST', '/api/dms', x, { user_ids: [b.id, c.id] }), 201, 'group dm:').json;
    ids.group = g.id;
    // blocks both ways; a push subscription; an image
    assertStatus(await api('PUT', `/api/users/${c.id}/block`, x), 204, 'x blocks c:');
    assertStatus(await api('PUT', `/api/users/${x.id}/block`, c), 204, 'c blocks x:');
    const keys = {
      p256dh: crypto.createECDH('prime256v1').generateKeys().toString('base64url'),
      auth: crypto.randomBytes(16).toString('base64url'),
    };
    const sub = await api('PUT', '/api/push/subscriptions', x, { endpoint: `http://127.0.0.1:9/push/${x.username}`, keys });
    assert.ok([200, 201, 204].includes(sub.status), `push subscription: ${show(sub)}`);
    png = whitePng(40, 33, 1 + (crypto.randomBytes(1)[0] % 127));
    const up = await request('POST', `/api/media?filename=${x.username}.png`, {
      headers: { authorization: `Bearer ${x.token}`, 'content-type': 'image/png' }, body: png, timeoutMs: 60000,
    });
    media = assertStatus(up, 201, 'upload:').json;
    // moderation entries naming x as actor and as target: x (owner) gave b the admin role in
    // its community when it was made (written by the modlog's trigger, migration 0033), and
    // two written here as a report's warnings are
    await sql(`INSERT INTO modlog (community_id, actor_id, action, target_type, target_id, note) VALUES
      (${Number(own.id)}, ${Number(x.id)}, 'warn', 'user', '${Number(c.id)}', 'by x'),
      (${Number(theirs.id)}, ${Number(b.id)}, 'warn', 'user', '${Number(x.id)}', 'x was warned')`);
    // x as a moderator: a ban in its community (bans.banned_by names x); a solo community of x
    // where b commented and left (it goes with x, b's comment with it); x's report with a note
    // in its words, and b's report of x
    const d = await newUser('erd');
    assertStatus(await api('POST', `/api/communities/${own.id}/bans`, x, { user_id: d.id }), 201, 'x bans d:');
    ids.d = d.id;
    const solo = await community(x, 'public');
    const sp = assertStatus(await api('POST', `/api/communities/${solo.id}/posts`, x, { body: `solo ${marker}` }), 201,
      'solo post:').json;
    assertStatus(await api('POST', `/api/communities/${solo.id}/join`, b), 200, 'b joins solo:');
    assertStatus(await api('POST', `/api/posts/${sp.id}/comments`, b, { body: 'b was here' }), 201, 'b comments:');
    assertStatus(await api('POST', `/api/communities/${solo.id}/leave`, b), 204, 'b leaves solo:');
    ids.solo = solo.id;
    assertStatus(await api('POST', '/api/reports', x, { target: { type: 'post', id: bp.id }, reason: 'other',
      note: `note ${marker}` }), 201, 'x reports:');
    assertStatus(await api('POST', '/api/reports', b, { target: { type: 'user', id: x.id }, reason: 'spam' }), 201,
      'b reports x:');
    // everything is there before
    const before1 = await traces({ id: x.id, strings: [x.email, x.username, marker] });
    assert.ok(before1.length > 10, `the search finds the user before: ${before1.join('\n')}`);
    assert.ok(existsSync(localPath(media.sha256)), 'the image is stored');
    // x's block mutes c in the group DM (the broker's mirror says so too)
    assert.equal(await redis('HGET', `th:dm:${ids.group}`, String(c.id)), 'muted');
    sock = await connect(x);
  });

  test('a wrong password, a missing or wrong code: 401, nothing done', async () => {
    assertError(await api('DELETE', '/api/auth/me', x, { password: 'not-the-password' }), 401, 'unauthorized');
    assertError(await api('DELETE', '/api/auth/me', x, { password: x.password }), 401, 'totp_required');
    assertError(await api('DELETE', '/api/auth/me', x, { password: x.password, totp: '000000' }), 401, 'unauthorized');
    assertError(await api('DELETE', '/api/auth/me', x, {}), 400, 'validation_failed', 'password');
    assertError(await api('DELETE', '/api/auth/me', null, { password: x.password }), 401, 'unauthorized');
    assertStatus(await api('GET', '/api/auth/me', x), 200, 'still there:');
    assert.equal(sock.closed, false, 'the socket is still open');
  });

  test('erased: 202, sessions and sockets gone, content anonymous, no trace anywhere', async () => {
    const t0 = Date.now();
    assertStatus(await api('DELETE', '/api/auth/me', x, { password: x.password, totp: recovery[1] }), 202, 'erase:');
    // the socket closes within 5 s; both devices' tokens and the refresh token are refused
    await waitFor(() => sock.closed, 6000, 'the open MQTT socket closed');
    assert.ok(sock.closedAt() - t0 <= 5000, `socket closed ${sock.closedAt() - t0} ms after the erase`);
    assertError(await api('GET', '/api/auth/me', x), 401, 'unauthorized');
    assertError(await api('GET', '/api/auth/me', token2.access_token), 401, 'unauthorized');
    assertError(await api('GET', '/api/notifications', x), 401, 'unauthorized');
    assertError(await request('POST', '/api/auth/refresh', { body: { refresh_token: x.refresh } }), 401);
    await assert.rejects(connect(x), (e) => e.refused === true, 'MQTT reconnect refused');
    assertError(await api('DELETE', '/api/auth/me', token2.access_token, { password: x.password }), 401, 'unauthorized');
    const login = await request('POST', '/api/auth/login', {
      body: { login: x.username, password: x.password }, localAddress: freshAddr(),
    });
    assertError(login, 401, 'unauthorized');

    // others' views: the post, comment and messages stay with author null and empty bodies
    const p = assertStatus(await api('GET', `/api/posts/${ids.post}`, b), 200, 'post:').json;
    assert.equal(p.author, null, show({ json: p }));
    assert.equal(p.title, '');
    assert.equal(p.body, '');
    const cm = assertStatus(await api('GET', `/api/posts/${ids.bpost}/comments`, b), 200, 'comments:').json;
    const xc = cm.items.find((i) => i.id === ids.comment);
    assert.ok(xc, 'the comment stays');
    assert.equal(xc.author, null);
    assert.equal(xc.body, '');
    assert.deepEqual((await api('GET', `/api/posts/${ids.bpost}`, b)).json.reactions, {}, 'the reaction went');
    const feed = assertStatus(await api('GET', `/api/communities/${theirs.id}/posts`, c), 200, 'feed:').json;
    const fp = feed.items.find((i) => i.id === ids.post);
    assert.ok(fp && fp.author === null && fp.body === '', `feed shows the erased post: ${JSON.stringify(fp)}`);
    const hist = assertStatus(await api('GET', `/api/channels/${theirs.channel}/messages`, b), 200, 'history:').json;
    for (const mid of [ids.m1, ids.m2]) {
      const m = hist.items.find((i) => i.id === mid);
      assert.ok(m, `message ${mid} stays`);
      assert.equal(m.sender, null);
      assert.equal(m.body, '');
    }
    const ph = assertStatus(await api('GET', `/api/posts/${ids.post}/history`, b), 200, 'post history:').json;
    assert.deepEqual(ph.items, [], 'no earlier version of the post');
    const mh = assertStatus(await api('GET', `/api/messages/${ids.m1}/history`, b), 200, 'message history:').json;
    assert.deepEqual(mh.items, [], 'no earlier version of the message');
    const dms = assertStatus(await api('GET', '/api/dms', b), 200, 'dms:').json;
    const dm = dms.items.find((d) => d.id === ids.dm);
    assert.ok(dm, 'the DM stays for b');
    assert.deepEqual(dm.members.map((u) => u.id), [b.id]);
    const dh = assertStatus(await api('GET', `/api/channels/${ids.dm}/messages`, b), 200, 'dm history:').json;
    assert.equal(dh.items.find((i) => i.id === ids.m3)?.sender, null);
    const notes = assertStatus(await api('GET', '/api/notifications', b), 200, 'notifications:').json;
    const told = notes.items.find((n) => n.comment_id === ids.comment);
    assert.ok(told, `b's notification stays: ${JSON.stringify(notes.items)}`);
    assert.equal(told.actor, null);
    // the owned community went to the admin; member counts are right
    const k = assertStatus(await api('GET', `/api/communities/${ids.own}`, b), 200, 'own community:').json;
    assert.equal(k.owner_id ?? k.owner?.id, b.id, JSON.stringify(k));
    assert.equal(k.member_count, 2);
    assert.equal((await api('GET', `/api/communities/${theirs.id}`, b)).json.member_count, 2);
    // the broker's mirror: x is gone from the communities and DMs, b owns, c is no longer muted
    assert.equal(await redis('HGET', `th:members:${ids.own}`, String(x.id)), '');
    assert.equal(await redis('HGET', `th:members:${ids.own}`, String(b.id)), 'owner');
    assert.equal(await redis('HGET', `th:members:${theirs.id}`, String(x.id)), '');
    assert.equal(await redis('HGET', `th:dm:${ids.group}`, String(x.id)), '');
    assert.equal(await redis('HGET', `th:dm:${ids.group}`, String(c.id)), 'member');
    // the moderation log keeps its entries, without x; the ownership passed to b is logged
    // too (its actor, x, erased)
    assert.deepEqual(await sql(`SELECT community_id, action, coalesce(actor_id::text, '-'), coalesce(target_id, '-') FROM modlog
      WHERE community_id IN (${Number(own.id)}, ${Number(theirs.id)}) ORDER BY id`),
    [`${own.id}|set_role_admin|-|${b.id}`, `${own.id}|warn|-|${c.id}`, `${theirs.id}|warn|${b.id}|-`,
      `${own.id}|ban|-|${ids.d}`, `${own.id}|set_role_owner|-|${b.id}`]);
    // the solo community went with x, b's comment in it too
    assertError(await api('GET', `/api/communities/${ids.solo}`, b), 404, 'not_found');
    // the username is free again
    const again = await request('POST', '/api/auth/register', {
      body: { email: `again-${x.email}`, username: x.username, password: 'another-password-1' }, localAddress: freshAddr(),
    });
    assertStatus(again, 201, 'the username registers again:');
    const newId = again.json.user.id;
    assertStatus(await api('DELETE', '/api/auth/me', again.json.access_token, { password: 'another-password-1' }), 202,
      'and that account goes too:');
    assert.notEqual(newId, x.id);

    // the bytes: th-media-gc --erased (every minute in production) removes them
    const gc = await run('scripts/media-gc', ['--erased'], { timeoutMs: 120000 });
    assert.equal(gc.code, 0, `media-gc --erased: ${gc.stdout}${gc.stderr}`);
    assert.match(gc.stdout, /erased accounts' media: removed [1-9]\d* of/, gc.stdout);
    for (const k2 of [media.sha256, `${media.sha256}.thumb`, `${media.sha256}.medium`]) {
      assert.ok(!existsSync(localPath(k2)), `${k2} removed from the store`);
    }
    // the proof: nothing of the user in any column of any table
    const hits = await traces({ id: x.id, strings: [x.email, x.username, marker, media.sha256] });
    assert.deepEqual(hits, [], `traces of the erased user:\n${hits.join('\n')}`);
  });
});

// The media pool on S3 (s3rver in this process: the erasure deletes by key, it never lists,
// so the child process media_gc.test.mjs needs for long listings is not needed here).
describe('DELETE /api/auth/me: media bytes in S3', { skip: LOCAL_ONLY }, () => {
  let s3;
  let env;
  before(async () => {
    s3 = await startS3({ bucket: 'th-erase' });
    env = mediaS3Env(s3);
    await restartMedia(env);
  });
  after(async () => {
    try { await restartMedia({}); } finally { await s3?.stop(); }
  });

  test('an erased account\'s objects leave the bucket with th-media-gc --erased; shared bytes stay', async () => {
    const y = await newUser('ers');
    const z = await newUser('ert');
    const up = (who, png) => request('POST', '/api/media?filename=s.png', {
      headers: { authorization: `Bearer ${who.token}`, 'content-type': 'image/png' }, body: png, timeoutMs: 60000,
    });
    const own = assertStatus(await up(y, whitePng(500, 9, 1 + (crypto.randomBytes(1)[0] % 127))), 201, 'upload:').json;
    const sharedPng = whitePng(700, 9, 1 + (crypto.randomBytes(1)[0] % 127));
    const shared = assertStatus(await up(y, sharedPng), 201, 'upload shared:').json;
    assertStatus(await up(z, sharedPng), 201, 'the same bytes by z:');
    const keysOf = (m) => [m.sha256, `${m.sha256}.thumb`, `${m.sha256}.medium`];
    let keys = new Set(s3.listKeys());
    for (const k of [...keysOf(own), ...keysOf(shared)]) assert.ok(keys.has(k), `${k} in the bucket`);
    assertStatus(await api('DELETE', '/api/auth/me', y, { password: y.password }), 202, 'erase:');
    const gc = await run('scripts/media-gc', ['--erased'], { env, timeoutMs: 120000 });
    assert.equal(gc.code, 0, `media-gc --erased: ${gc.stdout}${gc.stderr}`);
    assert.match(gc.stdout, /^media-gc: s3 store: erased accounts' media: removed [1-9]/m, gc.stdout);
    keys = new Set(s3.listKeys());
    for (const k of keysOf(own)) assert.ok(!keys.has(k), `${k} deleted from the bucket`);
    for (const k of keysOf(shared)) assert.ok(keys.has(k), `${k} kept: z's medium names it`);
    assert.deepEqual(await sql(`SELECT sha256 FROM media_erasures`), [], 'the queue is empty');
  });
});

describe('GET /api/auth/me/export', { skip: LOCAL_ONLY }, () => {
  test('a user with thousands of rows: valid JSON with every item; an empty one: empty lists; then 429', async (t) => {
    const u = await newUser('exp');
    const k = await community(u, 'public');
    const N = 1500;
    // rows written straight into the tables (the API's rate limits would take minutes)
    await sql(`INSERT INTO posts (community_id, author_id, title, body)
      SELECT ${Number(k.id)}, ${Number(u.id)}, 't' || g, 'body ' || g FROM generate_series(1, ${N}) g`);
    await sql(`WITH p AS (SELECT min(id) AS id FROM posts WHERE author_id = ${Number(u.id)})
      INSERT INTO comments (post_id, author_id, body) SELECT p.id, ${Number(u.id)}, 'c ' || g
      FROM p, generate_series(1, ${N}) g`);
    await sql(`WITH s AS (UPDATE channels SET last_seq = last_seq + ${N} WHERE id = ${Number(k.channel)}
      RETURNING last_seq - ${N} AS base)
      INSERT INTO messages (id, channel_id, seq, sender_id, body)
      SELECT gen_random_uuid(), ${Number(k.channel)}, s.base + g, ${Number(u.id)}, 'm ' || g
      FROM s, generate_series(1, ${N}) g`);
    // what else it wrote: 600 reactions (two emoji on 300 posts: pages of 500 end between the
    // two of one post), earlier versions of its posts and messages, a report with its note
    const R = 600;
    await sql(`INSERT INTO reactions (post_id, user_id, emoji)
      SELECT p.id, ${Number(u.id)}, e.emoji FROM (SELECT id FROM posts WHERE author_id = ${Number(u.id)}
      ORDER BY id LIMIT ${R / 2}) p, (VALUES ('\u{1F44D}'), ('\u{1F389}')) e(emoji)`);
    await sql(`INSERT INTO post_edits (post_id, title, body, written_at)
      SELECT id, 'old title', 'old body ' || id, now() FROM posts WHERE author_id = ${Number(u.id)}
      ORDER BY id LIMIT 3`);
    await sql(`INSERT INTO message_edits (message_id, body, written_at)
      SELECT id, 'old words', now() FROM messages WHERE sender_id = ${Number(u.id)} ORDER BY id LIMIT 2`);
    const other = await newUser('exp_other');
    await sql(`INSERT INTO reports (community_id, reporter_id, target_type, target_id, reason, note)
      VALUES (${Number(k.id)}, ${Number(u.id)}, 'user', '${Number(other.id)}', 'spam', 'my own note')`);
    const res = await api('GET', '/api/auth/me/export', u, undefined, { timeoutMs: 120000 });
    assertStatus(res, 200, 'export:');
    assert.match(res.headers['content-type'], /^application\/json/);
    assert.equal(res.headers['content-length'], undefined, 'streamed: no length');
    const doc = JSON.parse(res.text);
    assert.equal(doc.profile.id, u.id);
    assert.equal(doc.profile.email, u.email);
    assert.equal(doc.posts.length, N);
    assert.equal(doc.comments.length, N);
    assert.equal(doc.messages.length, N);
    assert.equal(new Set(doc.posts.map((p) => p.id)).size, N, 'every post once');
    assert.equal(new Set(doc.messages.map((m) => m.id)).size, N, 'every message once');
    assert.deepEqual(doc.memberships.map((m) => [m.community_id, m.role]), [[k.id, 'owner']]);
    assert.equal(doc.reactions.length, R, 'every reaction');
    assert.equal(new Set(doc.reactions.map((r) => `${r.post_id} ${r.emoji}`)).size, R, 'every reaction once');
    assert.deepEqual(new Set(doc.reactions.map((r) => r.emoji)), new Set(['\u{1F44D}', '\u{1F389}']));
    assert.equal(doc.post_edits.length, 3);
    assert.ok(doc.post_edits.every((e) => e.title === 'old title' && e.body.startsWith('old body ')),
      JSON.stringify(doc.post_edits[0]));
    assert.deepEqual(doc.message_edits.map((e) => e.body), ['old words', 'old words']);
    assert.equal(doc.reports.length, 1);
    assert.equal(doc.reports[0].note, 'my own note');
    assert.equal(doc.reports[0].target_id, String(other.id));
    assert.equal(doc.reports[0].status, 'open');
    // erasing it: one transaction over its 4500 rows, well within the minute
    const t0 = Date.now();
    assertStatus(await api('DELETE', '/api/auth/me', u, { password: u.password }, { timeoutMs: 70000 }), 202, 'erase:');
    t.diagnostic(`export of ${3 * N} rows: ${res.text.length} bytes; erasing them: ${Date.now() - t0} ms`);
    assert.equal((await sql(`SELECT count(*) FROM posts WHERE author_id IS NULL AND body = '' AND community_id = ${Number(k.id)}`))[0], '0',
      'the community went with its only member (and its posts with it)');

    const e = await newUser('exe');
    const png = whitePng(300, 7, 1 + (crypto.randomBytes(1)[0] % 127));
    const up = await request('POST', '/api/media?filename=e.png', {
      headers: { authorization: `Bearer ${e.token}`, 'content-type': 'image/png' }, body: png,
    });
    const md = assertStatus(up, 201, 'upload:').json;
    const r2 = assertStatus(await api('GET', '/api/auth/me/export', e), 200, 'empty export:');
    const d2 = JSON.parse(r2.text);
    for (const key of ['posts', 'comments', 'messages', 'memberships', 'dms', 'blocks', 'reactions',
      'post_edits', 'message_edits', 'reports', 'push_subscriptions']) {
      assert.deepEqual(d2[key], [], key);
    }
    assert.equal(d2.media.length, 1);
    assert.equal(d2.media[0].id, md.id);
    const link = d2.media[0].variants.original;
    assert.ok(link, JSON.stringify(d2.media[0]));
    assertStatus(await request('GET', link), 200, 'the export\'s media link works:');
    // 2 an hour: the third is refused
    assertStatus(await api('GET', '/api/auth/me/export', e), 200, 'second:');
    const third = await api('GET', '/api/auth/me/export', e);
    assertError(third, 429, 'rate_limited');
    assert.ok(Number(third.headers['retry-after']) > 0, show(third));
    assertError(await api('GET', '/api/auth/me/export', null), 401, 'unauthorized');
  });
});

// Loose ends of issue 22: registration mails the first verification link; the mailer purges
// failed rows after TH_MAIL_FAILED_KEEP_S (7 days; lib/outbox.c, every 10 s at most 1000).
describe('account mail: the registration link, failed rows purged', { skip: LOCAL_ONLY }, () => {
  test('a new account gets a verification mail whose link verifies it', async () => {
    const { newestMail, linkToken } = await import('./lib/mail.mjs');
    const u = await newUser('erm');
    const m = await newestMail(u.email, { filter: (x) => /Confirm/.test(x.subject) });
    assert.ok(m, 'no verification mail after registration');
    const token = linkToken(m, '/verify-email');
    const v = await request('POST', '/api/auth/verify-email', { body: { token } });
    assertStatus(v, 200, 'verify:');
    assert.equal(v.json.user.email_verified, true);
  });

  test('failed mails older than 7 days go; younger ones stay for the operator', async () => {
    const tag = rnd(6);
    await sql(`INSERT INTO mail_outbox (kind, to_addr, failed_at, next_at, last_error) VALUES
      ('none', 'old-${tag}@example.test', now() - interval '8 days', now() + interval '1 day', 'x'),
      ('none', 'new-${tag}@example.test', now() - interval '1 day', now() + interval '1 day', 'x')`);
    const gone = await until(async () => (await sql(`SELECT count(*) FROM mail_outbox WHERE to_addr = 'old-${tag}@example.test'`))[0] === '0' || null,
      { timeoutMs: 25000, intervalMs: 500 });
    assert.ok(gone, 'the old failed row was purged');
    assert.deepEqual(await sql(`SELECT count(*) FROM mail_outbox WHERE to_addr = 'new-${tag}@example.test'`), ['1']);
    await sql(`DELETE FROM mail_outbox WHERE to_addr = 'new-${tag}@example.test'`);
  });
});
