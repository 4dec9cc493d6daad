// Redis failover that lost writes (issue 19): revocations and the membership mirror are
// rebuilt from PostgreSQL before Redis is trusted again.
//
// A failover promotes a replica that may have missed the old master's last writes: a
// revocation's ZADD, a membership's HSET. The markers that say "complete" (th:{revoked}:epoch,
// th:mirror:epoch) were replicated earlier, so their presence proves nothing on the new
// master. What changes is the server's replication id (INFO master_replid): the markers name
// the id they were made on, and a marker of another id counts as missing.
//
// The failover is simulated on the stack's one Redis, as a promotion does it: the writes the
// replica missed are gone (a revocation made in PostgreSQL whose Redis write was lost; a
// mirror field deleted), REPLICAOF <nowhere> + REPLICAOF NO ONE gives the server a new
// replication id, and CLIENT KILL TYPE normal drops every client, as Sentinel does when it
// reconfigures a server. Then the revoked token must be refused by the apps and the broker,
// and the mirror must be whole again.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { request, sleep, until, PORT_BASE } from './lib/http.mjs';
import { show } from './lib/assert.mjs';
import { bearer, fixtures } from './lib/fixtures.mjs';
import { psql, redis } from './lib/stack.mjs';
import { decodeJwt } from './lib/jwt.mjs';
import { connect, closeClients } from './lib/mqtt.mjs';

const { newUser, community } = fixtures({ net: 51, slug: 'rf', name: 'Failover' });
const SPREAD = 3 * Number(process.env.TH_WORKERS_AUTH || 4); // requests that reach every worker (likely)
const NOWHERE = PORT_BASE + 59; // nothing listens there: the replica never syncs

after(() => closeClients());

const me = (token) => request('GET', '/api/auth/me', { headers: bearer(token) });

// redis(): exit 0 asserted, the output without its last newline
const ok = async (...args) => (await redis(...args)).trim();

async function replid() {
  const info = await ok('INFO', 'replication');
  const m = /master_replid:([0-9a-f]{40})/.exec(info);
  assert.ok(m, `no master_replid in: ${info}`);
  return m[1];
}

// What a promotion does to the server the clients use: a new replication id, the clients cut.
async function promote() {
  const before = await replid();
  assert.equal(await ok('REPLICAOF', '127.0.0.1', String(NOWHERE)), 'OK');
  assert.equal(await ok('REPLICAOF', 'NO', 'ONE'), 'OK');
  await ok('CLIENT', 'KILL', 'TYPE', 'normal');
  const now = await replid();
  assert.notEqual(now, before, 'the replication id did not change');
  return now;
}

async function mqttAccepted(u, token) {
  try {
    const conn = await connect({ ...u, token });
    conn.client.end(true);
    return true;
  } catch (e) {
    if (e.refused) return false;
    throw e;
  }
}

// the simulation works on one server: not on a Cluster (no REPLICAOF there), nor behind the
// sentinels of TH_TEST_REDIS_SENTINEL=1 (they would take it for a real failover)
const ONE_SERVER = !process.env.TH_REDIS_CLUSTER && !process.env.TH_REDIS_SENTINELS;

describe('a failover that lost writes', { skip: !ONE_SERVER && 'one Redis server only' }, () => {
  test('a revocation lost with the old master is refused again by the apps and the broker', async () => {
    const u = await newUser('rf');
    const sid = decodeJwt(u.token).payload.sid;
    assert.ok(sid, 'no sid in the token');
    assert.equal((await me(u.token)).status, 200);
    assert.ok(await mqttAccepted(u, u.token), 'broker refused a live token');

    // revoked in PostgreSQL; its Redis write was lost with the old master
    const r = await psql(`UPDATE sessions SET revoked_at = now(), revoked_reason = 'logout' WHERE id = ${Number(sid)}`);
    assert.equal(r.code, 0, r.stderr);
    await sleep(1500); // past every worker's once-a-second sync
    // the loss is real: nothing tells the workers (no failover yet)
    const still = await me(u.token);
    assert.equal(still.status, 200, `the revocation reached the workers without Redis: ${show(still)}`);

    const id = await promote();
    // rebuilt from PostgreSQL: refused by every worker, within a few seconds
    assert.ok(await until(async () => (await me(u.token)).status === 401, { timeoutMs: 15000 }),
      'the revoked token is still accepted after the failover');
    for (let i = 0; i < SPREAD; i++) {
      const res = await me(u.token);
      assert.equal(res.status, 401, `worker accepted the revoked token: ${show(res)}`);
    }
    assert.ok(await until(async () => !(await mqttAccepted(u, u.token)), { timeoutMs: 15000 }),
      'the broker still accepts the revoked token after the failover');
    const epoch = await ok('GET', 'th:{revoked}:epoch');
    assert.ok(epoch.startsWith(`${id}/`), `revocation marker not remade on the new data: ${epoch}`);
    const score = await ok('ZSCORE', 'th:{revoked}', String(sid));
    assert.ok(Number(score) > 0, 'the lost revocation is not back in Redis');
  });

  test('a membership lost with the old master is back in the mirror', async () => {
    const owner = await newUser('rfo');
    const member = await newUser('rfm');
    const c = await community(owner, 'public', [member]);
    const key = `th:members:${c.id}`;
    assert.ok(await until(async () => (await ok('HEXISTS', key, String(member.id))) === '1'),
      'the membership never reached the mirror');
    assert.ok(await until(async () => (await ok('GET', 'th:mirror:epoch')) !== ''), 'no mirror marker');

    await ok('HDEL', key, String(member.id)); // the write the replica missed
    const id = await promote();
    assert.ok(await until(async () => (await ok('GET', 'th:mirror:epoch')).startsWith(`${id}/`), { timeoutMs: 30000 }),
      'the broker did not rebuild the mirror on the new data');
    assert.equal(await ok('HEXISTS', key, String(member.id)), '1', 'the lost membership is not back');
  });
});
