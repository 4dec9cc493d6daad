// A primary that stops answering without closing anything (issue 19, "PostgreSQL"): the
// community pool reaches PostgreSQL through a TCP proxy (lib/tcpproxy.mjs) that the test
// switches to silent — connections stay open, bytes are swallowed, the kernel still acks, so
// neither the server's statement_timeout nor TCP's timeouts can end the wait. Each request on
// a worker must end with 503 unavailable and Retry-After within lib/db.c's client-side bound
// (TH_DB_STATEMENT_TIMEOUT_MS + 1 s; connect_timeout for a new connection), never hang and
// never 500; once the proxy forwards again, every worker serves again by itself.
//
// The pool is restarted with TH_WORKER_DB_CONNINFO (scripts/lib/common.sh worker_env) pointing
// at the proxy on BASE+41, and back with the suite's settings at the end.
// Client addresses: registrations from 127.51.x.y (lib/fixtures.mjs).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { PORT_BASE, VAR_DIR, run } from './lib/http.mjs';
import { show, assertError, assertStatus } from './lib/assert.mjs';
import { api, fixtures } from './lib/fixtures.mjs';
import { healthyRun, psql } from './lib/stack.mjs';
import { tcpProxy } from './lib/tcpproxy.mjs';

const { newUser, community } = fixtures({ net: 51, slug: 'pgto', name: 'Timeouts' });

const PROXY_PORT = PORT_BASE + 41;
const STMT_TIMEOUT_MS = 1500;
// what lib/db.c waits at most for one call: the statement timeout + 1 s, or connect_timeout
// (2 s) for a new connection; a call that gives up then asks for a new connection (within
// connect_timeout, which a silent server does not complete) and the handle backs off, so a
// request's other calls fail at once
const CLIENT_BOUND_MS = STMT_TIMEOUT_MS + 1000;
// generous: a request may queue behind another one on its worker, nginx, a busy machine
const REQUEST_BOUND_MS = 2 * CLIENT_BOUND_MS + 4000;

async function restartCommunity(env) {
  const r = await run('scripts/fcgi-pool', ['restart', 'community'], { env, timeoutMs: 60000 });
  assert.equal(r.code, 0, `scripts/fcgi-pool restart community:\n${r.stdout}\n${r.stderr}`);
  const { ok, last } = await healthyRun('community');
  assert.ok(ok, `community not healthy after the restart: ${last && show(last)}`);
}

let proxy;
before(async () => {
  proxy = await tcpProxy({ listenPort: PROXY_PORT, targetPort: PORT_BASE + 1 });
  await restartCommunity({
    TH_WORKER_DB_CONNINFO: `host=127.0.0.1 port=${PROXY_PORT} dbname=townhall user=townhall `
      + `passfile=${path.join(VAR_DIR, 'keys', 'pgpass')}`,
    TH_DB_STATEMENT_TIMEOUT_MS: String(STMT_TIMEOUT_MS),
  });
}, { timeout: 120000 });
after(async () => {
  proxy?.forward();
  await restartCommunity({});
  await proxy?.close();
}, { timeout: 120000 });

// A request that may meet the silent database: {res, ms}
async function timed(fn) {
  const t0 = Date.now();
  const res = await fn();
  return { res, ms: Date.now() - t0 };
}

describe('a silent primary (network swallows, never closes)', { timeout: 180000 }, () => {
  test('every worker answers 503 with Retry-After within the bound, then serves again', async (t) => {
    const owner = await newUser('pgto');
    const c = await community(owner);
    assertStatus(await api('POST', `/api/communities/${c.id}/posts`, owner, { body: 'before' }), 201, 'post before:');

    proxy.silence();
    // Three workers: concurrent requests reach each of them (their held connections are
    // silent now), then more requests in turn (backoff, new connections that never finish
    // their start-up). A read and a write each.
    const first = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => timed(() => (i % 2
      ? api('GET', `/api/communities/${c.id}/posts`, owner, undefined, { timeoutMs: 30000 })
      : api('POST', `/api/communities/${c.id}/posts`, owner, { body: `silent ${i}` }, { timeoutMs: 30000 })))));
    const later = [];
    for (let i = 0; i < 6; i++) {
      later.push(await timed(() => api('GET', `/api/communities/${c.id}`, owner, undefined, { timeoutMs: 30000 })));
    }
    const all = [...first, ...later];
    t.diagnostic(`silent: ${all.map(({ res, ms }) => `${res.status}/${ms}ms`).join(' ')}`);
    for (const { res, ms } of all) {
      assertError(res, 503, 'unavailable');
      assert.ok(Number(res.headers['retry-after']) >= 1, `no Retry-After: ${show(res)}`);
      assert.ok(ms < REQUEST_BOUND_MS, `a request took ${ms} ms (bound ${REQUEST_BOUND_MS}): ${show(res)}`);
    }
    // the first ones waited for the database (not refused at once): the bound was the deadline
    assert.ok(first.some(({ ms }) => ms >= STMT_TIMEOUT_MS), 'no request waited for the silent database');

    proxy.forward();
    // each worker backs off at most 5 s, then connects anew: a run of 200s from all of them
    const { ok, last } = await healthyRun('community');
    assert.ok(ok, `community not back after the network came back: ${last && show(last)}`);
    assertStatus(await api('POST', `/api/communities/${c.id}/posts`, owner, { body: 'after' }), 201, 'post after:');
    const list = assertStatus(await api('GET', `/api/communities/${c.id}/posts`, owner), 200, 'list after:');
    assert.ok(list.json.items.some((p) => p.body === 'after'), `the post after is not listed: ${list.text.slice(0, 300)}`);
  });
});

// A statement that waits for a row another transaction holds past the statement timeout
// (issue 19, lib/db.h "Conflicts and timeouts"): the server cancels it (57014) and the
// request's transaction is gone, so the request answers 503 with Retry-After (never 500) and
// the client sends it again; once the row is free the same request succeeds.
describe('a row locked past the statement timeout', { timeout: 120000 }, () => {
  test('503 unavailable with Retry-After, then served once the lock goes', async (t) => {
    const owner = await newUser('pgto');
    const c = await community(owner);
    const HOLD_S = 5;
    const hold = psql(`BEGIN; SELECT 1 FROM communities WHERE id = ${c.id} FOR UPDATE; `
      + `SELECT pg_sleep(${HOLD_S}) /* th-pgto-hold */; COMMIT`, { timeoutMs: 30000 });
    // wait (bounded) until the holder sleeps with the row locked
    let held = false;
    for (let i = 0; i < 100 && !held; i++) {
      const r = await psql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
        + "AND query LIKE '%th-pgto-hold%' AND pid <> pg_backend_pid()");
      held = r.code === 0 && Number(r.stdout.trim()) > 0;
      if (!held) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(held, 'the holder never took the lock');
    const { res, ms } = await timed(() => api('PATCH', `/api/communities/${c.id}`, owner,
      { description: 'while locked' }, { timeoutMs: 30000 }));
    t.diagnostic(`locked: ${res.status} after ${ms} ms`);
    assertError(res, 503, 'unavailable');
    assert.ok(Number(res.headers['retry-after']) >= 1, `no Retry-After: ${show(res)}`);
    // it waited for the lock until the statement timeout, not longer than the client bound
    assert.ok(ms >= STMT_TIMEOUT_MS - 100, `answered after ${ms} ms, before the statement timeout`);
    assert.ok(ms < REQUEST_BOUND_MS, `a request took ${ms} ms (bound ${REQUEST_BOUND_MS})`);
    const done = await hold;
    assert.equal(done.code, 0, `the holder failed: ${done.stderr}`);
    assertStatus(await api('PATCH', `/api/communities/${c.id}`, owner, { description: 'after' }), 200,
      'patch after the lock:');
    const got = assertStatus(await api('GET', `/api/communities/${c.id}`, owner), 200, 'get after:');
    assert.equal(got.json.description, 'after');
  });
});
