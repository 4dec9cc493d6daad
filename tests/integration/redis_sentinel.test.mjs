// The services behind Redis Sentinel (issue 19), run by tests/integration/run with
// TH_TEST_REDIS_SENTINEL=1 (skipped otherwise): the stack's Redis is the first master, a
// replica and three sentinels watch it (tests/integration/lib/redis-sentinel), and the apps,
// the broker plugin and th-bridge find the master through the sentinels.
//   - SENTINEL failover, then kill -9 of the new master: while Redis changes hands, requests
//     get 200 or 503 (Retry-After), never a 500 or a hang; service returns within a bound
//     (measured and printed);
//   - after each, a logout revokes on the new master: the token is refused by every auth
//     worker and by the broker; a live token still connects.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { request, sleep, until, PORT_BASE, VAR_DIR } from './lib/http.mjs';
import { show } from './lib/assert.mjs';
import { bearer, fixtures } from './lib/fixtures.mjs';
import { sentinel, sentinelMaster } from './lib/stack.mjs';
import { connect, closeClients } from './lib/mqtt.mjs';

const ON = !!process.env.TH_REDIS_SENTINELS;
const { newUser, freshAddr } = fixtures({ net: 52, slug: 'rs', name: 'Sentinel' });
const SPREAD = 3 * Number(process.env.TH_WORKERS_AUTH || 4);
const BOUND_MS = 30000; // back to service within this (generous: a shared machine)
const REPLICA = PORT_BASE + 58;

after(() => closeClients());

const me = (token) => request('GET', '/api/auth/me', { headers: bearer(token), timeoutMs: 10000 });
const login = (u) => request('POST', '/api/auth/login', {
  body: { login: u.username, password: u.password }, localAddress: freshAddr(), timeoutMs: 10000,
});

async function mqttAccepted(u, token) {
  try {
    (await connect({ ...u, token })).client.end(true);
    return true;
  } catch (e) {
    if (e.refused) return false;
    throw e;
  }
}

// Requests while fn() makes Redis change hands: statuses counted; then the time until a login
// (its rate limit lives in Redis: 503 while no master answers) succeeds again.
async function duringFailover(u, fn) {
  const statuses = {};
  const logins = {};
  let stop = false;
  const load = (async () => {
    let lastLogin = 0;
    while (!stop) {
      const r = await me(u.token);
      statuses[r.status] = (statuses[r.status] || 0) + 1;
      if (r.status === 503) assert.ok(r.headers['retry-after'], `503 without Retry-After: ${show(r)}`);
      if (Date.now() - lastLogin >= 1000) { // under the per-account login limit
        lastLogin = Date.now();
        const l = await login(u);
        logins[l.status] = (logins[l.status] || 0) + 1;
        assert.ok([200, 503, 429].includes(l.status), `login during failover: ${show(l)}`);
        if (l.status === 503) assert.ok(l.headers['retry-after'], `503 without Retry-After: ${show(l)}`);
      }
      await sleep(20);
    }
  })();
  const t0 = Date.now();
  await fn();
  const promoted = Date.now() - t0;
  let back = null;
  while (Date.now() - t0 < BOUND_MS) {
    const r = await login(u);
    assert.ok(r.status === 200 || r.status === 503 || r.status === 429, `login during failover: ${show(r)}`);
    if (r.status === 200) { back = Date.now() - t0; break; }
    await sleep(r.status === 429 ? 1000 : 100);
  }
  stop = true;
  await load;
  assert.ok(back !== null, `no successful login within ${BOUND_MS} ms of the failover: ${JSON.stringify(logins)}`);
  assert.ok(!statuses[500], `500s during the failover: ${JSON.stringify(statuses)}`);
  return { back, promoted, statuses, logins };
}

// A second session, logged out on the new master: refused everywhere; the first still works.
async function revokedEverywhere(u, what) {
  // one login back does not mean every worker is: one still backing off from the dead
  // master answers 503 a little longer (bounded here)
  let s;
  assert.ok(await until(async () => (s = await login(u)).status === 200, { timeoutMs: 10000 }),
    `${what}: no login within 10 s: ${show(s)}`);
  const tok = s.json.access_token;
  const out = await request('POST', '/api/auth/logout', { body: { refresh_token: s.json.refresh_token }, headers: bearer(tok) });
  assert.equal(out.status, 204, show(out));
  for (let i = 0; i < SPREAD; i++) {
    const r = await me(tok);
    assert.equal(r.status, 401, `${what}: revoked token accepted: ${show(r)}`);
  }
  assert.ok(await until(async () => !(await mqttAccepted(u, tok)), { timeoutMs: 10000 }),
    `${what}: the broker accepts the revoked token`);
  assert.ok(await until(async () => (await me(u.token)).status === 200, { timeoutMs: 10000 }),
    `${what}: the live session was refused`);
  assert.ok(await mqttAccepted(u, u.token), `${what}: the broker refuses a live token`);
}

describe('Redis Sentinel', { skip: !ON && 'TH_TEST_REDIS_SENTINEL=1 only' }, () => {
  test('SENTINEL failover, then kill -9 of the master: bounded 503s, no 500, revocations hold', async () => {
    const u = await newUser('rs');
    const first = await sentinelMaster();
    assert.equal(first, PORT_BASE + 2, 'the stack\'s Redis is not the first master');
    assert.ok(await until(async () => (await me(u.token)).status === 200), 'no service before the failover');

    const a = await duringFailover(u, async () => {
      const r = await sentinel('SENTINEL', 'failover', 'townhall');
      assert.equal(r.stdout.trim(), 'OK', r.stdout + r.stderr);
      assert.ok(await until(async () => (await sentinelMaster()) === REPLICA, { timeoutMs: BOUND_MS }), 'no promotion');
    });
    console.log(`# SENTINEL failover: promoted after ${a.promoted} ms, login back after ${a.back} ms; `
      + `/me ${JSON.stringify(a.statuses)}, logins ${JSON.stringify(a.logins)}`);
    await revokedEverywhere(u, 'after SENTINEL failover');

    // the old master must have rejoined as a replica before the new one can be killed
    const pid = Number(readFileSync(path.join(VAR_DIR, 'rsentinel', `${REPLICA}.pid`), 'utf8'));
    const ok = await until(async () => {
      const r = await sentinel('SENTINEL', 'replicas', 'townhall');
      return /master-link-status\nok/.test(r.stdout);
    }, { timeoutMs: BOUND_MS });
    assert.ok(ok, 'the old master did not rejoin as a replica');
    const b = await duringFailover(u, async () => {
      process.kill(pid, 'SIGKILL');
      assert.ok(await until(async () => (await sentinelMaster()) === first, { timeoutMs: BOUND_MS }), 'no promotion after kill -9');
    });
    console.log(`# kill -9 of the master: promoted after ${b.promoted} ms, login back after ${b.back} ms; `
      + `/me ${JSON.stringify(b.statuses)}, logins ${JSON.stringify(b.logins)}`);
    await revokedEverywhere(u, 'after kill -9');
  });
});
