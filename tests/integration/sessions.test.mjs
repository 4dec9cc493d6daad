// Sessions a user sees and ends (issue 22 point 3), black-box against ../shared/API.md
// "v1.1 additions": Account lifecycle — GET /api/auth/sessions, DELETE /api/auth/sessions/:id.
//
// - The list: the caller's live sessions, most recently used first, each with its device
//   (User-Agent, cleaned and cut to 256 bytes), address, times, and which one is the caller's.
// - Ending another device's session: 204; its access token is refused, its refresh token too,
//   and its MQTT socket closes within 5 s; the caller's own session goes on.
// - Another user's session, a malformed or unknown id: 404, nothing ended.
// - Client addresses: registrations and logins from 127.73.x.y (lib/fixtures.mjs).
//
// A session starts only from credentials that are still the account's (migration 0045): a
// sign-in that checked the password before a reset, a password change or a suspension and
// would start its session after it gets none (401, 403 suspended). The race is made
// deterministic rather than hoped for: a transaction of the test holds refresh_tokens
// (holdSessionStarts, lib/stack.mjs), so the login has checked the password and waits with
// its session's one statement; the reset (change, suspension) runs to its end meanwhile; then
// the lock goes and the statement runs. The old code inserted the session regardless, and
// the revocation, already done, never saw it.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request, run, sleep, LOCAL_ONLY } from './lib/http.mjs';
import { assertError, assertStatus } from './lib/assert.mjs';
import { api, fixtures } from './lib/fixtures.mjs';
import { closeClients, connect, waitFor } from './lib/mqtt.mjs';
import { newestMail, linkToken } from './lib/mail.mjs';
import { holdSessionStarts, psql } from './lib/stack.mjs';

const { newUser, freshAddr } = fixtures({ net: 73, slug: 'ses', name: 'Sessions' });
after(closeClients);

const login = async (u, ua) => {
  const addr = freshAddr();
  const r = assertStatus(await request('POST', '/api/auth/login', {
    body: { login: u.username, password: u.password }, headers: { 'user-agent': ua }, localAddress: addr,
  }), 200, 'login:');
  return { ...r.json, token: r.json.access_token, addr, id: u.id };
};
const sessions = async (who) => assertStatus(await api('GET', '/api/auth/sessions', who), 200, 'sessions:').json;

describe('sessions', () => {
  let u, other;
  before(async () => {
    [u, other] = await Promise.all([newUser('sl'), newUser('so')]);
  });

  test('the list shows each device, the current one marked, most recently used first', async () => {
    const phone = await login(u, 'TestPhone/1.0');
    await sleep(20);
    const laptop = await login(u, `TestLaptop/2.0\t\u00e9 ${'x'.repeat(400)}`);
    const list = await sessions(laptop);
    assert.equal(list.next_cursor, null);
    const mine = list.items.filter((s) => s.user_agent.startsWith('Test'));
    assert.equal(mine.length, 2, JSON.stringify(list));
    assert.deepEqual(mine.map((s) => [s.user_agent.slice(0, 12), s.current]), [['TestLaptop/2', true], ['TestPhone/1.', false]]);
    // printable ASCII only, at most 256 bytes
    assert.equal(mine[0].user_agent.length, 256);
    assert.match(mine[0].user_agent, /^TestLaptop\/2\.0 x+$/, 'tab and non-ASCII dropped');
    // the client's own address (through a balancer the address is the client host's)
    if (!LOCAL_ONLY) assert.equal(mine[1].ip, phone.addr);
    for (const s of mine) {
      assert.match(s.created_at, /^\d{4}-\d\d-\d\dT/);
      assert.match(s.last_used_at, /^\d{4}-\d\d-\d\dT/);
    }
    // the phone's own view marks the phone as current
    const fromPhone = await sessions(phone);
    assert.equal(fromPhone.items.find((s) => s.current).user_agent, 'TestPhone/1.0');
    // paged: one at a time, each once
    const p1 = assertStatus(await api('GET', '/api/auth/sessions?limit=1', laptop), 200, 'page:').json;
    assert.equal(p1.items.length, 1);
    const p2 = assertStatus(await api('GET', `/api/auth/sessions?limit=1&cursor=${encodeURIComponent(p1.next_cursor)}`, laptop), 200, 'page 2:').json;
    assert.notEqual(p2.items[0].id, p1.items[0].id);
  });

  test('ending another device: its tokens are refused and its socket closes within 5 s', async () => {
    const phone = await login(u, 'EndPhone/1.0');
    const laptop = await login(u, 'EndLaptop/1.0');
    const sock = await connect({ token: phone.token, id: u.id });
    const phoneId = (await sessions(laptop)).items.find((s) => s.user_agent === 'EndPhone/1.0').id;
    const t0 = Date.now();
    assertStatus(await api('DELETE', `/api/auth/sessions/${phoneId}`, laptop), 204, 'end:');
    await waitFor(() => sock.closed, 5000, 'the ended session\'s socket closed');
    assert.ok(sock.closedAt() - t0 <= 5000);
    await waitFor(async () => (await api('GET', '/api/auth/me', phone.token)).status === 401, 3000, 'the access token refused');
    assertError(await request('POST', '/api/auth/refresh', { body: { refresh_token: phone.refresh_token } }), 401, 'unauthorized');
    // the laptop goes on, and the phone is gone from its list
    assertStatus(await api('GET', '/api/auth/me', laptop), 200, 'laptop me:');
    assert.ok(!(await sessions(laptop)).items.some((s) => s.id === phoneId));
    // ending it again: there is nothing to end
    assertError(await api('DELETE', `/api/auth/sessions/${phoneId}`, laptop), 404, 'not_found');
  });

  test('another user\'s session, a malformed or unknown id: 404, nothing ended', async () => {
    const theirs = await login(other, 'TheirPhone/1.0');
    const mine = await login(u, 'MyPhone/1.0');
    const theirId = (await sessions(theirs)).items.find((s) => s.current).id;
    assertError(await api('DELETE', `/api/auth/sessions/${theirId}`, mine), 404, 'not_found');
    assertStatus(await api('GET', '/api/auth/me', theirs), 200, 'their session lives:');
    assertError(await api('DELETE', '/api/auth/sessions/abc', mine), 404, 'not_found');
    assertError(await api('DELETE', '/api/auth/sessions/999999999', mine), 404, 'not_found');
    assertError(await api('GET', '/api/auth/sessions', null), 401, 'unauthorized');
    assertError(await api('GET', '/api/auth/sessions?cursor=bad', mine), 400, 'validation_failed');
  });
});

describe('a session starts only from credentials still current', { skip: LOCAL_ONLY }, () => {
  const isReset = (x) => /Reset/.test(x.subject);
  const loginReq = (u, password = u.password) => request('POST', '/api/auth/login', {
    body: { login: u.username, password }, headers: { 'user-agent': 'RacingLogin/1.0' }, localAddress: freshAddr(),
  });
  const refresh = (rt) => request('POST', '/api/auth/refresh', { body: { refresh_token: rt } });
  const live = async (u) => (await psql(`SELECT count(*) FROM sessions WHERE user_id = ${Number(u.id)} AND revoked_at IS NULL`)).stdout.trim();

  // The racing login's answer: on the old code a 200 whose session outlived the change.
  async function refused(res, status, code, what) {
    if (res.status === 200) {
      const again = await refresh(res.json.refresh_token);
      assert.fail(`${what}: the racing login got a session (its refresh afterwards: ${again.status})`);
    }
    assertError(res, status, code);
  }

  // login (the password checked, its session's statement waiting) | change | the statement runs
  async function race(u, change, { alsoRefresh } = {}) {
    const hold = await holdSessionStarts();
    let racing;
    let refreshing;
    let changed;
    try {
      racing = loginReq(u);
      await hold.waiting('INSERT INTO sessions');
      if (alsoRefresh) {
        refreshing = refresh(alsoRefresh);
        await hold.waiting('UPDATE refresh_tokens');
      }
      changed = await change();
    } finally {
      await hold.release();
    }
    return { changed, late: await racing, refreshed: refreshing && await refreshing };
  }

  test('a login racing a password reset gets 401 and no session; a refresh racing it neither', async () => {
    const u = await newUser('rr');
    const other = await login(u, 'Other/1.0');
    const r = await request('POST', '/api/auth/password/forgot', { body: { email: u.email }, localAddress: freshAddr() });
    assertStatus(r, 204, 'forgot:');
    const token = linkToken(await newestMail(u.email, { filter: isReset }), '/reset-password');
    assert.ok(token, 'no reset link');
    const { changed, late, refreshed } = await race(u, () => request('POST', '/api/auth/password/reset', {
      body: { token, password: 'after-the-Reset-1' }, localAddress: freshAddr(),
    }), { alsoRefresh: other.refresh_token });
    assertStatus(changed, 204, 'reset:');
    await refused(late, 401, 'unauthorized', 'reset');
    assert.equal(late.json.error.message, 'wrong login or password');
    // the refresh had its session row revoked under it
    assertError(refreshed, 401, 'unauthorized');
    assert.equal(await live(u), '0', 'a session of the account outlived the reset');
    assertStatus(await loginReq(u, 'after-the-Reset-1'), 200, 'the new password:');
  });

  test('a login racing a password change gets 401; the changing session goes on', async () => {
    const u = await newUser('rc');
    const { changed, late } = await race(u, () => api('POST', '/api/auth/password', u, {
      current_password: u.password, new_password: 'after-the-Change-1',
    }));
    assertStatus(changed, 204, 'change:');
    await refused(late, 401, 'unauthorized', 'password change');
    assert.equal(await live(u), '1', 'only the changing session lives');
    assertStatus(await api('GET', '/api/auth/me', u), 200, 'the changing session:');
  });

  test('a login racing a suspension gets 403 suspended', async () => {
    const [root, u] = await Promise.all([newUser('ra'), newUser('rs')]);
    const g = await run('scripts/admin', ['grant', root.username], { timeoutMs: 30000 });
    assert.equal(g.code, 0, g.stderr);
    const { changed, late } = await race(u, () => api('POST', `/api/admin/users/${u.id}/suspend`, root));
    assertStatus(changed, 200, 'suspend:');
    await refused(late, 403, 'suspended', 'suspension');
    assert.equal(await live(u), '0', 'a session of the suspended account lives');
  });
});
