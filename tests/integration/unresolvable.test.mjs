// A host name that does not resolve (issue 19, "Bad input"): in TH_REDIS_SENTINELS, in
// TH_REDIS_CLUSTER and in the PostgreSQL conninfo. The community pool is restarted with each in
// turn (the name th-unresolvable.invalid: .invalid never resolves, RFC 6761); every worker
// must start, answer 503 with Retry-After within a bound (never hang, never 500, never crash),
// and say in its log which name did not resolve. Then the pool is restarted with the suite's
// settings and serves again.
// Client addresses: registrations from 127.61.x.y (lib/fixtures.mjs).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { VAR_DIR, run } from './lib/http.mjs';
import { show, assertError, assertStatus } from './lib/assert.mjs';
import { api, fixtures } from './lib/fixtures.mjs';
import { healthyRun } from './lib/stack.mjs';

const { newUser, community } = fixtures({ net: 61, slug: 'unres', name: 'Unresolvable' });

const NAME = 'th-unresolvable.invalid';
const LOG = path.join(VAR_DIR, 'log', 'community.log');
// generous: a failed lookup answers at once here; a request may queue behind another one
const REQUEST_BOUND_MS = 8000;

async function restartCommunity(env) {
  const r = await run('scripts/fcgi-pool', ['restart', 'community'], { env, timeoutMs: 60000 });
  assert.equal(r.code, 0, `scripts/fcgi-pool restart community:\n${r.stdout}\n${r.stderr}`);
}

const logSize = () => { try { return statSync(LOG).size; } catch { return 0; } };
const logSince = (offset) => readFileSync(LOG, 'utf8').slice(offset);

let owner;
let c;
before(async () => {
  owner = await newUser('unres');
  c = await community(owner);
}, { timeout: 60000 });
after(async () => {
  await restartCommunity({});
  const { ok, last } = await healthyRun('community');
  assert.ok(ok, `community not healthy after the restart: ${last && show(last)}`);
}, { timeout: 120000 });

async function timed(fn) {
  const t0 = Date.now();
  const res = await fn();
  return { res, ms: Date.now() - t0 };
}

// Readiness and a write, a few times over (reaching several workers): readiness 503 with
// Retry-After within the bound; the write 503 too when it needs what is missing (writeOk: it
// may also succeed, as a post does without Redis: its rate limit and caches degrade), never
// 500; the log names the host.
async function expectUnavailable(t, what, env, logRe, { writeOk = false } = {}) {
  const mark = logSize();
  await restartCommunity(env);
  const all = [];
  for (let i = 0; i < 6; i++) {
    all.push(await timed(() => api('GET', '/api/community/health/ready', null, undefined, { timeoutMs: 30000 })));
    all.push(await timed(() => api('POST', `/api/communities/${c.id}/posts`, owner, { body: `unres ${i}` },
      { timeoutMs: 30000 })));
  }
  t.diagnostic(`${what}: ${all.map(({ res, ms }) => `${res.status}/${ms}ms`).join(' ')}`);
  for (const { res, ms } of all) {
    assert.ok(ms < REQUEST_BOUND_MS, `${what}: a request took ${ms} ms: ${show(res)}`);
    if (writeOk && res.status === 201) continue;
    assertError(res, 503, 'unavailable');
    assert.ok(Number(res.headers['retry-after']) >= 1, `${what}: no Retry-After: ${show(res)}`);
  }
  assert.ok(all.filter(({ res }) => res.status === 503).length >= 6, `${what}: readiness not 503`);
  const lines = logSince(mark).split('\n').filter((l) => l.includes(NAME));
  assert.ok(lines.some((l) => logRe.test(l)), `${what}: no log line names ${NAME}:\n${lines.slice(0, 5).join('\n')}`);
  assert.ok(!/Sanitizer|segfault|core dumped/.test(logSince(mark)), `${what}: a worker crashed`);
}

describe('a host name that does not resolve', { timeout: 240000 }, () => {
  test('TH_REDIS_SENTINELS', async (t) => {
    await expectUnavailable(t, 'sentinels', { TH_REDIS_SENTINELS: `${NAME}:26379` },
      /sentinel th-unresolvable\.invalid:26379: .*(not known|resolve|Temporary failure)/i, { writeOk: true });
  });
  test('TH_REDIS_CLUSTER', async (t) => {
    await expectUnavailable(t, 'cluster', { TH_REDIS_CLUSTER: `${NAME}:7000` },
      /th-unresolvable\.invalid:7000: .*(not known|resolve|Temporary failure)/i, { writeOk: true });
  });
  test('the PostgreSQL conninfo', async (t) => {
    await expectUnavailable(t, 'postgres', {
      TH_WORKER_DB_CONNINFO: `host=${NAME} port=5432 dbname=townhall user=townhall `
        + `passfile=${path.join(VAR_DIR, 'keys', 'pgpass')}`,
    }, /db primary: .*no database host name resolved: th-unresolvable\.invalid: /);
  });
  test('back with the suite settings', async () => {
    await restartCommunity({});
    const { ok, last } = await healthyRun('community');
    assert.ok(ok, `community not healthy after the restart: ${last && show(last)}`);
    assertStatus(await api('POST', `/api/communities/${c.id}/posts`, owner, { body: 'after' }), 201, 'post after:');
  });
});
