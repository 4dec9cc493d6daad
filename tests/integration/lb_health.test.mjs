// Health for a balancer (issue 19): GET /api/<app>/health/live answers whenever the worker
// loop runs (no database or Redis call); GET /api/<app>/health/ready answers 200 when the
// primary PostgreSQL and Redis answer, and 503 unavailable (with checks and Retry-After)
// otherwise. A read replica down shows in checks but leaves ready at 200, while the strict
// GET /api/<app>/health (unchanged) answers 503 for it.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  APPS, VAR_DIR, get, post, run, waitGone,
} from './lib/http.mjs';
import { show, assertError } from './lib/assert.mjs';
import { stackUp, appsBack, healthyRun } from './lib/stack.mjs';

const WORKERS = 3; // TH_WORKERS_* in tests/integration/run
// a read conninfo nothing listens on: port 1 of loopback refuses at once
const BAD_READ = 'host=127.0.0.1 port=1 dbname=townhall user=townhall connect_timeout=1';

async function restartPool(pool, env) {
  const r = await run('scripts/fcgi-pool', ['restart', pool], { env, timeoutMs: 60000 });
  assert.equal(r.code, 0, `scripts/fcgi-pool restart ${pool}:\n${r.stdout}\n${r.stderr}`);
}

describe('health live / ready', () => {
  for (const app of APPS) {
    test(`${app}: live 200 {"status":"ok"}, ready 200 with checks`, async () => {
      const live = await get(`/api/${app}/health/live`);
      assert.equal(live.status, 200, show(live));
      assert.deepEqual(live.json, { status: 'ok' });
      const ready = await get(`/api/${app}/health/ready`);
      assert.equal(ready.status, 200, show(ready));
      assert.equal(ready.json.status, 'ok');
      assert.deepEqual(ready.json.checks, { postgres: 'ok', postgres_read: 'ok', redis: 'ok' });
    });
  }

  test('POST to live or ready -> 405 with Allow: GET', async () => {
    for (const p of ['live', 'ready']) {
      const bad = await post(`/api/auth/health/${p}`, {});
      assertError(bad, 405, 'method_not_allowed');
      assert.match(bad.headers.allow ?? '', /GET/);
    }
  });
});

describe('a read replica down', () => {
  after(async () => {
    // back to the suite's settings: no replica
    await restartPool('community', { TH_DB_READ_CONNINFO: '' });
    const { ok, last } = await healthyRun('community', { statusOk: true });
    assert.ok(ok, `community not healthy after the restart: ${last && show(last)}`);
  }, { timeout: 90000 });

  test('ready stays 200 (postgres_read down in checks); the strict /health is 503', async () => {
    await restartPool('community', { TH_DB_READ_CONNINFO: BAD_READ });
    // every worker: more requests in a row than workers
    for (let i = 0; i < 3 * WORKERS; i++) {
      const ready = await get('/api/community/health/ready');
      assert.equal(ready.status, 200, `ready with the replica down: ${show(ready)}`);
      assert.equal(ready.json.status, 'ok');
      assert.equal(ready.json.checks.postgres, 'ok');
      assert.equal(ready.json.checks.postgres_read, 'down', show(ready));
      assert.equal(ready.json.checks.redis, 'ok');
      const strict = await get('/api/community/health');
      assertError(strict, 503, 'unavailable');
      assert.match(strict.json.error.message, /postgres_read/);
      const live = await get('/api/community/health/live');
      assert.equal(live.status, 200, show(live));
    }
  });
});

describe('the primary PostgreSQL down', () => {
  test('ready 503 unavailable naming postgres, live stays 200; back after scripts/stack up', { timeout: 120000 }, async (t) => {
    const pidFile = path.join(VAR_DIR, 'pg/data/postmaster.pid');
    if (!existsSync(pidFile)) { t.skip(`no ${pidFile}`); return; }
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    // SIGINT to the postmaster = "fast" shutdown
    process.kill(pid, 'SIGINT');
    try {
      assert.ok(await waitGone(pid, 30000), `postgres (pid ${pid}) did not stop`);
      for (const app of ['auth', 'community']) {
        for (let i = 0; i < 2 * WORKERS; i++) {
          const ready = await get(`/api/${app}/health/ready`);
          assertError(ready, 503, 'unavailable');
          assert.equal(ready.json.status, 'unavailable');
          assert.equal(ready.json.checks.postgres, 'down', show(ready));
          assert.equal(ready.json.checks.redis, 'ok', show(ready));
          assert.match(ready.headers['retry-after'] ?? '', /^\d+$/, `Retry-After: ${show(ready)}`);
          const t0 = Date.now();
          const live = await get(`/api/${app}/health/live`);
          assert.equal(live.status, 200, `live with PostgreSQL down: ${show(live)}`);
          assert.deepEqual(live.json, { status: 'ok' });
          // no database call: no connect timeout in it (generous bound, noisy machine)
          assert.ok(Date.now() - t0 < 1500, `live took ${Date.now() - t0} ms`);
        }
      }
    } finally {
      await stackUp();
    }
    await appsBack('after PostgreSQL came back', { statusOk: true });
    for (const app of APPS) {
      const ready = await get(`/api/${app}/health/ready`);
      assert.equal(ready.status, 200, show(ready));
    }
  });
});
