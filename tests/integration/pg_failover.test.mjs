// PostgreSQL with a streaming replica (issue 19, "PostgreSQL"), against real servers: a hot
// standby of the stack's cluster made here with pg_basebackup (lib/pgreplica.mjs) on BASE+40.
//   - pools pointed at a standby with a plain single-host conninfo: writes 503 (SQLSTATE
//     25006) with Retry-After, reads 200, never 500;
//   - a replica that lags (replay paused): login right after register, a writer reading their
//     own post, a ban, a join: each seen at once, because they read the primary; a reader who
//     did not write reads the replica (proved: they do not see the new post yet);
//   - TH_DB_READ_CONNINFO multi-host with target_session_attrs=prefer-standby: the replica
//     stops, reads go on from the primary without an error;
//   - a failover: the primary stops, the replica is promoted; with a multi-host
//     TH_DB_CONNINFO (target_session_attrs=read-write) writes answer 503 for a bounded time,
//     then 201 again; no 500 at any point; every post answered 201 is on the new primary.
// The pools get their conninfo through TH_WORKER_DB_CONNINFO (scripts/lib/common.sh
// worker_env). At the end the promoted replica is removed, the stack's own cluster started
// again (what was written on the replica after the promotion goes with it: only this file's
// posts) and the pools restarted with the suite's settings.
// Client addresses: registrations from 127.52.x.y (lib/fixtures.mjs).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { PORT_BASE, VAR_DIR, run, get, sleep } from './lib/http.mjs';
import { show, assertError, assertStatus } from './lib/assert.mjs';
import { api, fixtures, uniq } from './lib/fixtures.mjs';
import { healthyRun, stackUp } from './lib/stack.mjs';
import {
  PRIMARY_PORT, PRIMARY_DATA, startReplica, startServer, stopServer, pgCtl, caughtUp, pauseReplay,
  resumeReplay, dropReplica, sqlAt,
} from './lib/pgreplica.mjs';

const { newUser, community } = fixtures({ net: 52, slug: 'pgfo', name: 'Failover' });

const REPLICA_PORT = PORT_BASE + 40;
const PASSFILE = path.join(VAR_DIR, 'keys', 'pgpass');
const conninfo = (hosts, ports, extra = '') => `host=${hosts} port=${ports} dbname=townhall user=townhall `
  + `passfile=${PASSFILE}${extra ? ` ${extra}` : ''}`;
const ONLY_REPLICA = conninfo('127.0.0.1', REPLICA_PORT);
const READ_REPLICA = conninfo('127.0.0.1', REPLICA_PORT);
const READ_PREFER_STANDBY = conninfo('127.0.0.1,127.0.0.1', `${REPLICA_PORT},${PRIMARY_PORT}`,
  'target_session_attrs=prefer-standby');
const PRIMARY_FIRST = conninfo('127.0.0.1,127.0.0.1', `${PRIMARY_PORT},${REPLICA_PORT}`,
  'target_session_attrs=read-write');

// Restart pools with env on top of the suite's environment ({}: the suite's settings).
async function restartPools(pools, env) {
  for (const pool of pools) {
    const r = await run('scripts/fcgi-pool', ['restart', pool], { env, timeoutMs: 60000 });
    assert.equal(r.code, 0, `scripts/fcgi-pool restart ${pool}:\n${r.stdout}\n${r.stderr}`);
    const { ok, last } = await healthyRun(pool);
    assert.ok(ok, `${pool} not healthy after the restart: ${last && show(last)}`);
  }
}

let replicaData;
let primaryDown = false;
before(async () => { replicaData = await startReplica(REPLICA_PORT); }, { timeout: 120000 });
after(async () => {
  if (replicaData) await dropReplica(replicaData);
  if (primaryDown) await stackUp(); // the stack's own cluster again
  await restartPools(['auth', 'community'], {});
}, { timeout: 240000 });

const login = (u) => api('POST', '/api/auth/login', null, { login: u.username, password: u.password });
const search = (c, who, q) => api('GET', `/api/communities/${c.id}/search?q=${encodeURIComponent(q)}`, who);
const newPost = (c, who, body) => api('POST', `/api/communities/${c.id}/posts`, who, { body });

describe('PostgreSQL replica and failover', { timeout: 600000 }, () => {
  test('pools on a standby (single-host conninfo): writes 503 with Retry-After, reads 200, no 500', async () => {
    const owner = await newUser('pgfo');
    const c = await community(owner);
    const p = assertStatus(await newPost(c, owner, 'on the primary'), 201, 'post:').json;
    assert.ok(await caughtUp(REPLICA_PORT), 'the replica did not catch up');
    await restartPools(['community'], { TH_WORKER_DB_CONNINFO: ONLY_REPLICA });
    try {
      for (let i = 0; i < 6; i++) {
        const w = await newPost(c, owner, `on a standby ${i}`);
        assertError(w, 503, 'unavailable');
        assert.ok(Number(w.headers['retry-after']) >= 1, `no Retry-After: ${show(w)}`);
        const cm = await api('POST', `/api/posts/${p.id}/comments`, owner, { body: 'a comment' });
        assertError(cm, 503, 'unavailable');
        assertStatus(await api('GET', `/api/communities/${c.id}`, owner), 200, 'read on a standby:');
        assertStatus(await api('GET', `/api/posts/${p.id}`, owner), 200, 'post on a standby:');
      }
    } finally {
      await restartPools(['community'], {});
    }
  });

  test('a lagging replica: login after register, one\'s own post, a ban and a join are seen at once', async () => {
    const owner = await newUser('pgfo');
    const member = await newUser('pgfo');
    const reader = await newUser('pgfo');
    const c = await community(owner, 'public', [reader]);
    const priv = await community(owner, 'private', [[member, 'member']]);
    await restartPools(['auth', 'community'], { TH_DB_READ_CONNINFO: READ_REPLICA });
    assert.ok(await caughtUp(REPLICA_PORT), 'the replica did not catch up');
    await pauseReplay(REPLICA_PORT);
    try {
      // register then log in at once (the replica has not replayed the new account)
      for (let i = 0; i < 3; i++) {
        const u = await newUser('pgfo');
        assertStatus(await login(u), 200, `login ${i} right after register:`);
      }
      // a writer sees their own post at once; a reader who did not write reads the replica,
      // which has not got it yet (so the replica is really in use)
      const word = uniq('lagword').replace('-', '');
      const p = assertStatus(await newPost(c, owner, `fresh ${word}`), 201, 'post:').json;
      assertStatus(await api('GET', `/api/posts/${p.id}`, owner), 200, 'own post at once:');
      const mine = assertStatus(await search(c, owner, word), 200, 'own search:');
      assert.equal(mine.json.items.length, 1, `the writer does not find their post: ${mine.text.slice(0, 300)}`);
      const theirs = assertStatus(await search(c, reader, word), 200, 'reader search:');
      assert.equal(theirs.json.items.length, 0, `the reader reads the primary, not the lagging replica: ${theirs.text.slice(0, 300)}`);
      // a join shows at once in the members' list and the caller's communities
      const c2 = await community(owner);
      assertStatus(await api('POST', `/api/communities/${c2.id}/join`, reader), 200, 'join:');
      const members = assertStatus(await api('GET', `/api/communities/${c2.id}/members?limit=100`, reader), 200, 'members:');
      assert.ok(members.json.items.some((m) => String(m.user?.id) === String(reader.id)),
        `the joiner is not in the members' list: ${members.text.slice(0, 400)}`);
      // a ban takes effect at once: the member of the private community loses it
      const listed = async () => (assertStatus(await api('GET', '/api/communities?limit=100', member), 200, 'list:')
        .json.items.some((x) => x.id === priv.id));
      assert.ok(await listed(), 'the member does not see their private community');
      assertStatus(await api('POST', `/api/communities/${priv.id}/bans`, owner, { user_id: member.id }), 201, 'ban:');
      assert.ok(!(await listed()), 'a banned member still lists the private community');
      const r = await api('GET', `/api/communities/${priv.id}/posts`, member);
      assert.ok(r.status === 403 || r.status === 404, `a banned member still reads: ${show(r)}`);
      assert.ok([403, 404].includes((await newPost(priv, member, 'after the ban')).status), 'a banned member still posts');
    } finally {
      await resumeReplay(REPLICA_PORT);
      await restartPools(['auth', 'community'], {});
    }
  });

  test('multi-host read conninfo (prefer-standby): the replica stops, reads go on from the primary', async (t) => {
    const owner = await newUser('pgfo');
    const reader = await newUser('pgfo');
    const c = await community(owner, 'public', [reader]);
    await restartPools(['community'], { TH_DB_READ_CONNINFO: READ_PREFER_STANDBY });
    // reads go to the standby first: with replay paused, the reader misses a new post
    assert.ok(await caughtUp(REPLICA_PORT), 'the replica did not catch up');
    await pauseReplay(REPLICA_PORT);
    const word = uniq('psword').replace('-', '');
    assertStatus(await newPost(c, owner, `prefer ${word}`), 201, 'post:');
    const before = assertStatus(await search(c, reader, word), 200, 'search on the standby:');
    assert.equal(before.json.items.length, 0, 'prefer-standby read the primary while the standby was up');
    await resumeReplay(REPLICA_PORT);

    await stopServer(replicaData);
    const statuses = [];
    for (let i = 0; i < 20; i++) {
      const r = await search(c, reader, word);
      statuses.push(r.status);
      assert.equal(r.status, 200, `a read with the replica down: ${show(r)}`);
      assert.equal(r.json.items.length, 1, 'the read does not come from the primary');
    }
    const h = await get('/api/community/health');
    assert.equal(h.status, 200, `health with the replica down: ${show(h)}`);
    const ready = await get('/api/community/health/ready');
    if (ready.status !== 404) assert.equal(ready.status, 200, `health/ready with the replica down: ${show(ready)}`);
    t.diagnostic(`reads with the replica down: ${statuses.join(' ')}`);
    await startServer(replicaData, REPLICA_PORT, `replica-${REPLICA_PORT}`);
    await restartPools(['community'], {});
  });

  test('failover: primary stopped, replica promoted: writes 503 for a bounded time, then 201; never 500', async (t) => {
    const owner = await newUser('pgfo');
    const c = await community(owner);
    await restartPools(['auth', 'community'], { TH_WORKER_DB_CONNINFO: PRIMARY_FIRST });
    assert.ok(await caughtUp(REPLICA_PORT), 'the replica did not catch up');

    const log = []; // {t, status, id?}
    let promotedAt = 0;
    let okAfter = 0;
    const t0 = Date.now();
    const writer = (async () => {
      // bounded: 120 s or 3000 requests, ends after 20 writes in a row succeed past the promotion
      for (let i = 0; i < 3000 && Date.now() - t0 < 120000 && okAfter < 20; i++) {
        const r = await newPost(c, owner, `failover ${i}`);
        log.push({ t: Date.now() - t0, status: r.status, id: r.json?.id, ra: r.headers['retry-after'] });
        if (promotedAt && r.status === 201) okAfter++;
        else if (promotedAt) okAfter = 0;
        await sleep(20);
      }
    })();
    await sleep(1000);
    const stopAt = Date.now() - t0;
    primaryDown = true;
    await stopServer(PRIMARY_DATA, 'fast');
    const pr = await pgCtl(replicaData, 'promote', '-w', '-t', '30');
    assert.equal(pr.code, 0, `pg_ctl promote: ${pr.stderr}`);
    promotedAt = Date.now() - t0;
    await writer;

    const bad = log.filter((x) => x.status !== 201 && x.status !== 503);
    assert.deepEqual(bad, [], 'a write answered neither 201 nor 503');
    for (const x of log.filter((y) => y.status === 503)) assert.ok(Number(x.ra) >= 1, 'a 503 without Retry-After');
    assert.ok(okAfter >= 20, `writes did not come back after the promotion: ${log.slice(-10).map((x) => x.status).join(' ')}`);
    const failed = log.filter((x) => x.status === 503);
    const firstBad = failed.length ? failed[0].t : stopAt;
    const lastBad = failed.length ? failed[failed.length - 1].t : stopAt;
    const firstOkAfter = log.find((x) => x.t > promotedAt && x.status === 201)?.t;
    t.diagnostic(`primary stopped at ${stopAt} ms, promoted at ${promotedAt} ms; ${log.length} writes, `
      + `${failed.length} answered 503 (from ${firstBad} to ${lastBad} ms), first 201 after the promotion at ${firstOkAfter} ms; `
      + `503 window ${lastBad - firstBad} ms, promotion to first 201 ${firstOkAfter - promotedAt} ms`);
    assert.ok(firstOkAfter - promotedAt < 15000, `writes came back ${firstOkAfter - promotedAt} ms after the promotion`);

    // every post answered 201 is on the new primary (stopping the old one sent all its WAL)
    const ids = log.filter((x) => x.status === 201).map((x) => x.id);
    const q = await sqlAt(REPLICA_PORT, `SELECT count(*) FROM posts WHERE id IN (${ids.map(Number).join(',')})`);
    assert.equal(q.code, 0, q.stderr);
    assert.equal(Number(q.stdout.trim()), ids.length, 'a post answered 201 is not on the new primary');
    // the auth pool logs in on the new primary (an account made before the failover: one
    // made now would go with the replica when the stack's own cluster comes back)
    assertStatus(await login(owner), 200, 'login on the new primary:');
  });
});
