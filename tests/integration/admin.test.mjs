// Site admins (issue 23 point 5), black-box against ../shared/API.md "v1.1 additions":
// Moderation.
//
// - scripts/admin grant|revoke USER (a username or an id) sets users.is_admin and writes a
//   site-wide modlog entry (actor null: an operator at a shell); an unknown user fails.
// - An admin acts in any community as its owner (community_access(), the one policy): reads
//   a private community, removes a post there (logged with the admin as actor), resolves its
//   reports; sees every open report (GET /api/admin/reports: the site queue, where reports of
//   users go, and every community's); GET /api/admin/modlog is the site log.  A report of
//   an account erased since (target null) resolves alone, logged, its reporter told.
// - POST /api/admin/users/:id/suspend: every session revoked (tokens refused, refresh
//   refused), the MQTT socket closed within 5 s, login 403 `suspended`; …/unsuspend lets
//   the account sign in again.  Each is a site-wide modlog entry.
// - Non-admins: 403 on every admin route; an admin cannot be suspended (403); a second
//   suspension 409; an unknown user 404.
// - Client addresses: registrations from 127.77.64+.y (lib/fixtures.mjs, net 77, shared
//   with modlog.test.mjs and reports.test.mjs, from its own offset).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { assertError, assertStatus } from './lib/assert.mjs';
import { api, fixtures, uuid } from './lib/fixtures.mjs';
import { run, until } from './lib/http.mjs';
import { psql } from './lib/stack.mjs';
import {
  closeClients, connect, end, publish, subscribe, waitFor,
} from './lib/mqtt.mjs';

const { newUser, community } = fixtures({ net: 77, slug: 'ad', name: 'Admin', general: true, first: 0x8000 });
after(closeClients);

const admin = (...args) => run('scripts/admin', args, { timeoutMs: 30000 });
const siteLog = async (who) => assertStatus(await api('GET', '/api/admin/modlog?limit=100', who), 200, 'site modlog:').json.items;
const report = (who, type, id) => api('POST', '/api/reports', who, { target: { type, id }, reason: 'spam' });
const login = (u) => api('POST', '/api/auth/login', null, { login: u.username, password: u.password });

describe('site admins', () => {
  let root, owner, a, victim, priv;
  before(async () => {
    [root, owner, a, victim] = await Promise.all(['aa', 'ao', 'am', 'av'].map((p) => newUser(p)));
    priv = await community(owner, 'private', [[a, 'member']]);
  });

  test('scripts/admin grant: by username or id, a site-wide entry; an unknown user fails', async () => {
    const r = await admin('grant', root.username);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${root.id}\\|${root.username}\\|t$`, 'm'));
    const again = await admin('grant', String(root.id));
    assert.equal(again.code, 0, again.stderr);
    const bad = await admin('grant', 'nobody_here_at_all');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /no such user/);
    const odd = await admin('grant', "x'; DROP TABLE users; --");
    assert.notEqual(odd.code, 0);
    const usage = await admin('promote', root.username);
    assert.equal(usage.code, 2);
    const log = await siteLog(root);
    const grants = log.filter((e) => e.action === 'grant_admin' && e.target.id === root.id);
    assert.equal(grants.length, 1, 'granted once (the second grant changed nothing)');
    assert.equal(grants[0].actor, null);
    assert.equal(grants[0].community_id, null);
  });

  test('non-admins: 403 on the admin routes', async () => {
    assertError(await api('GET', '/api/admin/reports', a), 403, 'forbidden');
    assertError(await api('GET', '/api/admin/modlog', a), 403, 'forbidden');
    assertError(await api('POST', `/api/admin/users/${victim.id}/suspend`, a), 403, 'forbidden');
    assertError(await api('POST', `/api/admin/users/${victim.id}/unsuspend`, owner), 403, 'forbidden');
    assertError(await api('GET', '/api/admin/reports', null), 401, 'unauthorized');
  });

  // community_access() gives a site admin the owner's role everywhere; joining and leaving go
  // by the membership row: join answered 404 "no such member" and made none, leave 409
  test('a site admin joins and leaves a public community as anyone does', async () => {
    const pub = await community(owner, 'public');
    const members = async () => assertStatus(await api('GET', `/api/communities/${pub.id}/members?limit=100`, owner), 200).json.items.map((m) => m.user.id);
    const count = async () => assertStatus(await api('GET', `/api/communities/${pub.id}`, owner), 200).json.member_count;
    const before = await count();
    assert.ok(!(await members()).includes(root.id));
    const j = assertStatus(await api('POST', `/api/communities/${pub.id}/join`, root), 200, 'join:').json;
    assert.equal(j.user.id, root.id);
    assert.equal(j.role, 'member');
    assert.ok((await members()).includes(root.id), 'the admin is a member now');
    assert.equal(await count(), before + 1);
    assertStatus(await api('POST', `/api/communities/${pub.id}/join`, root), 200, 'again (idempotent):');
    assert.equal(await count(), before + 1);
    assertStatus(await api('POST', `/api/communities/${pub.id}/leave`, root), 204, 'leave:');
    assert.ok(!(await members()).includes(root.id), 'the admin left');
    assert.equal(await count(), before);
    assertError(await api('POST', `/api/communities/${pub.id}/leave`, root), 404, 'not_found');
    assertError(await api('POST', `/api/communities/${pub.id}/leave`, owner), 409, 'conflict');
  });

  test('an admin acts in any community as its owner', async () => {
    const p = assertStatus(await api('POST', `/api/communities/${priv.id}/posts`, a, { title: 't', body: 'private words' }), 201, 'post:').json;
    assertStatus(await api('GET', `/api/posts/${p.id}`, root), 200, 'the admin reads a private community:');
    const q = assertStatus(await api('GET', `/api/communities/${priv.id}/reports`, root), 200, 'queue:').json;
    assert.ok(Array.isArray(q.items));
    const r = assertStatus(await report(owner, 'post', p.id), 201, 'report:').json;
    const all = assertStatus(await api('GET', '/api/admin/reports?limit=100', root), 200, 'admin reports:').json.items;
    assert.ok(all.some((x) => x.id === r.id), 'every open report');
    assertStatus(await api('POST', `/api/reports/${r.id}/resolve`, root, { action: 'remove' }), 200, 'resolve:');
    assertError(await api('GET', `/api/posts/${p.id}`, a), 404, 'not_found');
    const log = assertStatus(await api('GET', `/api/communities/${priv.id}/modlog`, root), 200, 'modlog:').json.items;
    assert.ok(log.some((e) => e.action === 'remove_post' && e.target.id === p.id && e.actor.id === root.id));
    const p2 = assertStatus(await api('POST', `/api/communities/${priv.id}/posts`, a, { title: 't', body: 'more' }), 201, 'post:').json;
    assertStatus(await api('DELETE', `/api/posts/${p2.id}`, root), 204, 'admin deletes:');
  });

  test('over MQTT too: an admin reads and writes a private community\'s chat, a non-member not', async () => {
    const topic = `chat/${priv.channel}/+`;
    const stranger = await connect(victim);
    assert.ok(await subscribe(stranger, topic) >= 0x80, 'a non-member is refused');
    const sock = await connect(root);
    assert.ok(await subscribe(sock, topic) < 0x80, 'the admin subscribes');
    const id = uuid();
    assert.ok(await publish(sock, `chat/${priv.channel}/${root.id}`, JSON.stringify({ id, body: 'admin here' })) < 0x80);
    await waitFor(async () => (await api('GET', `/api/messages/${id}`, a)).status === 200, 5000, 'the admin\'s message stored');
    await end(stranger, sock);
  });

  test('reports of users go to the site queue, which only admins see and resolve', async () => {
    const r = assertStatus(await report(a, 'user', victim.id), 201, 'report a user:').json;
    assert.equal(r.community_id, null);
    assert.equal(r.target.content.username, victim.username);
    const all = assertStatus(await api('GET', '/api/admin/reports?limit=100', root), 200, 'admin reports:').json.items;
    assert.ok(all.some((x) => x.id === r.id));
    assertError(await api('POST', `/api/reports/${r.id}/resolve`, owner, { action: 'dismiss' }), 404, 'not_found');
    assertError(await api('POST', `/api/reports/${r.id}/resolve`, root, { action: 'remove' }), 400, 'validation_failed', 'action');
    assertError(await api('POST', `/api/reports/${r.id}/resolve`, root, { action: 'ban' }), 400, 'validation_failed', 'action');
    const w = assertStatus(await api('POST', `/api/reports/${r.id}/resolve`, root, { action: 'warn', note: 'be nice' }), 200, 'warn:').json;
    assert.equal(w.resolution, 'warn');
    const n = assertStatus(await api('GET', '/api/notifications', victim), 200, 'notifications:').json.items;
    assert.ok(n.some((x) => x.type === 'warning' && x.actor?.id === root.id));
    const told = assertStatus(await api('GET', '/api/notifications', a), 200, 'notifications:').json.items;
    assert.ok(told.some((x) => x.type === 'report_resolved' && x.community_id === null));
    assert.ok((await siteLog(root)).some((e) => e.action === 'report_warn' && e.target.id === r.id));
  });

  test('a report of an account erased since (its target null): resolved alone, 200 only when resolved, logged, told', async () => {
    // the erasure sets the reports' target_id null (auth/erase.c): the resolution's "every open
    // report of the same target" matched nothing, not even the report itself (NULL = NULL),
    // and answered 200 with it still open, no entry, nobody told
    const [gone, r1, r2] = await Promise.all(['ae', 'a1', 'a2'].map((p) => newUser(p)));
    const first = assertStatus(await report(r1, 'user', gone.id), 201, 'r1 reports:').json;
    const second = assertStatus(await report(r2, 'user', gone.id), 201, 'r2 reports:').json;
    assertStatus(await api('DELETE', '/api/auth/me', gone, { password: gone.password }), 202, 'erase:');
    const w = assertStatus(await api('POST', `/api/reports/${first.id}/resolve`, root, { action: 'warn', note: 'erased' }), 200,
      'resolve:').json;
    assert.equal(w.status, 'resolved');
    assert.equal(w.resolution, 'warn');
    assert.equal(w.target.id, null, 'the target is gone');
    assertError(await api('POST', `/api/reports/${first.id}/resolve`, root, { action: 'dismiss' }), 409, 'conflict');
    const open = assertStatus(await api('GET', '/api/admin/reports?limit=100', root), 200, 'open:').json.items;
    assert.ok(!open.some((x) => x.id === first.id), 'no longer in the open queue');
    // an unknown target is no target two reports share: the other one stays open
    assert.ok(open.some((x) => x.id === second.id), 'the other report of it is still open');
    assert.ok((await siteLog(root)).some((e) => e.action === 'report_warn' && e.target.id === first.id), 'logged');
    const told = assertStatus(await api('GET', '/api/notifications', r1), 200, 'notifications:').json.items;
    assert.ok(told.some((x) => x.type === 'report_resolved' && x.actor?.id === root.id), 'the reporter is told');
    const notYet = assertStatus(await api('GET', '/api/notifications', r2), 200, 'notifications:').json.items;
    assert.ok(!notYet.some((x) => x.type === 'report_resolved'));
    assert.equal(assertStatus(await api('POST', `/api/reports/${second.id}/resolve`, root, { action: 'dismiss' }), 200,
      'resolve the other:').json.status, 'resolved');
    const resolved = assertStatus(await api('GET', '/api/admin/reports?status=resolved&limit=100', root), 200,
      'resolved:').json.items;
    assert.ok([first.id, second.id].every((id) => resolved.some((x) => x.id === id)));
  });

  test('a DM message reported goes to the site queue; an admin removes it (site-wide entry)', async () => {
    const dm = assertStatus(await api('POST', '/api/dms', a, { user_ids: [owner.id] }), 201, 'open a DM:').json;
    const m = assertStatus(await api('POST', `/api/channels/${dm.id}/messages`, owner, { id: uuid(), body: 'nasty' }), 201, 'send:').json;
    assertError(await report(victim, 'message', m.id), 404, 'not_found'); // not a member of the DM
    const r = assertStatus(await report(a, 'message', m.id), 201, 'report:').json;
    assert.equal(r.community_id, null);
    assertError(await api('POST', `/api/reports/${r.id}/resolve`, a, { action: 'remove' }), 404, 'not_found');
    assertStatus(await api('POST', `/api/reports/${r.id}/resolve`, root, { action: 'remove' }), 200, 'resolve:');
    const got = assertStatus(await api('GET', `/api/messages/${m.id}`, a), 200, 'message:').json;
    assert.equal(got.body, '');
    assert.ok(got.deleted_at);
    const log = await siteLog(root);
    assert.ok(log.some((e) => e.action === 'remove_message' && e.target.id === m.id && e.actor.id === root.id));
  });

  test('suspend: sessions revoked, socket closed within 5 s, login 403 suspended, refresh refused; unsuspend', async () => {
    const sock = await connect(victim);
    assertStatus(await api('GET', '/api/auth/me', victim), 200, 'me before:');
    const t0 = Date.now();
    const s = assertStatus(await api('POST', `/api/admin/users/${victim.id}/suspend`, root), 200, 'suspend:').json;
    assert.equal(s.user_id, victim.id);
    assert.ok(s.suspended_at);
    await waitFor(() => sock.closed, 5000, 'the suspended user\'s socket closed');
    assert.ok(sock.closedAt() - t0 <= 5000);
    await until(async () => (await api('GET', '/api/auth/me', victim)).status === 401, { timeoutMs: 5000 });
    assertError(await login(victim), 403, 'suspended');
    assertError(await api('POST', '/api/auth/refresh', null, { refresh_token: victim.refresh }), 401, 'unauthorized');
    // a wrong password learns nothing about the suspension
    assertError(await api('POST', '/api/auth/login', null, { login: victim.username, password: 'wrong-password-1' }), 401, 'unauthorized');
    assertError(await api('POST', `/api/admin/users/${victim.id}/suspend`, root), 409, 'conflict');
    assertError(await api('POST', `/api/admin/users/${root.id}/suspend`, root), 403, 'forbidden');
    assertError(await api('POST', '/api/admin/users/999999999/suspend', root), 404, 'not_found');
    const u = assertStatus(await api('POST', `/api/admin/users/${victim.id}/unsuspend`, root), 200, 'unsuspend:').json;
    assert.equal(u.suspended_at, null);
    assertError(await api('POST', `/api/admin/users/${victim.id}/unsuspend`, root), 409, 'conflict');
    assertStatus(await login(victim), 200, 'login after unsuspend:');
    const log = await siteLog(root);
    const mine = log.filter((e) => e.target.type === 'user' && e.target.id === victim.id && e.actor?.id === root.id)
      .map((e) => e.action);
    assert.deepEqual(mine, ['unsuspend', 'suspend']);
  });

  test('scripts/admin revoke: the admin routes close again', async () => {
    const r = await admin('revoke', root.username);
    assert.equal(r.code, 0, r.stderr);
    assertError(await api('GET', '/api/admin/reports', root), 403, 'forbidden');
    assertError(await api('GET', `/api/communities/${priv.id}/reports`, root), 404, 'not_found');
    const last = await psql(`SELECT action, actor_id IS NULL, community_id IS NULL FROM modlog
      WHERE target_type = 'user' AND target_id = '${root.id}' ORDER BY id DESC LIMIT 1`);
    assert.equal(last.stdout.trim(), 'revoke_admin|t|t', last.stderr);
  });
});
