// Sessions a user sees and ends (issue 22 point 3), black-box against ../shared/API.md
// "v1.1 additions": Account lifecycle — GET /api/auth/sessions, DELETE /api/auth/sessions/:id.
//
// - The list: the caller's live sessions, most recently used first, each with its device
//   (User-Agent, cleaned and cut to 256 bytes), address, times, and which one is the caller's.
// - Ending another device's session: 204; its access token is refused, its refresh token too,
//   and its MQTT socket closes within 5 s; the caller's own session goes on.
// - Another user's session, a malformed or unknown id: 404, nothing ended.
// - Client addresses: registrations and logins from 127.73.x.y (lib/fixtures.mjs).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request, sleep, LOCAL_ONLY } from './lib/http.mjs';
import { assertError, assertStatus } from './lib/assert.mjs';
import { api, fixtures } from './lib/fixtures.mjs';
import { closeClients, connect, waitFor } from './lib/mqtt.mjs';

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
