// FastCGI over TCP (issue 19): with TH_FCGI_BIND every pool listens on <bind>:<BASE+26..30>
// instead of its unix socket, nginx passes to it through its upstream blocks, `scripts/stack
// status` says where each pool listens, a caller that is not in TH_FCGI_ALLOWED is refused by
// the pool itself, the API works end to end, and `scripts/fcgi-pool restart|scale` on TCP
// lose no request (the new group takes over the listening socket: th-fdtake).
// The file moves the pools to TCP first and back to unix sockets at the end.
// Client addresses: registrations from 127.60.x.y (lib/fixtures.mjs).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  BASE_URL, VAR_DIR, run, readPid, childrenOf, until, sleep, get, wrk, assertWrkClean,
} from './lib/http.mjs';
import { show, assertStatus } from './lib/assert.mjs';
import { api, fixtures } from './lib/fixtures.mjs';
import { poolsOn, POOLS, POOL_PORT } from './lib/lbstack.mjs';
import { fcgiRequest, getParams } from './lib/fcgi.mjs';

const { newUser, community } = fixtures({ net: 60, slug: 'lbt', name: 'LbTcp' });

// every command of a stack gets the same settings (as scripts/stack up did)
const TCP = { TH_FCGI_BIND: '127.0.0.1', TH_FCGI_ALLOWED: '' };
before(() => poolsOn(TCP.TH_FCGI_BIND, TCP), { timeout: 180000 });
after(() => poolsOn(''), { timeout: 180000 });

describe('pools on TCP', () => {
  test('scripts/stack status and fcgi-pool status show each pool on its TCP port', async () => {
    const st = await run('scripts/stack', ['status']);
    assert.equal(st.code, 0, `${st.stdout}\n${st.stderr}`);
    for (const pool of POOLS) {
      assert.match(st.stdout, new RegExp(`^${pool}\\s+\\d+\\s+up\\s+tcp 127\\.0\\.0\\.1:${POOL_PORT[pool]}$`, 'm'), st.stdout);
    }
    const ps = await run('scripts/fcgi-pool', ['status', 'auth']);
    assert.equal(ps.code, 0, ps.stderr);
    assert.match(ps.stdout, new RegExp(`listening on 127\\.0\\.0\\.1:${POOL_PORT.auth}`), ps.stdout);
  });

  test('smoke through nginx over TCP: register, login, community, post, read', async () => {
    const u = await newUser('lbt');
    const login = await api('POST', '/api/auth/login', null, { login: u.username, password: u.password });
    assertStatus(login, 200, 'login:');
    const c = await community(u);
    const p = assertStatus(await api('POST', `/api/communities/${c.id}/posts`, login.json.access_token,
      { title: 'over TCP', body: 'hello through a TCP pool' }), 201, 'post:');
    const read = assertStatus(await api('GET', `/api/posts/${p.json.id}`, u), 200, 'read:');
    assert.equal(read.json.title, 'over TCP');
    const feed = assertStatus(await api('GET', `/api/communities/${c.id}/posts`, u), 200, 'feed:');
    assert.ok(feed.json.items.some((x) => x.id === p.json.id), `post not in the feed: ${feed.text}`);
    for (const app of ['auth', 'community', 'realtime', 'media']) {
      const r = await get(`/api/${app}/health/ready`);
      assert.equal(r.status, 200, show(r));
    }
  });

  test('a caller from an address not allowed is closed without an answer; an allowed one is served', async () => {
    const port = POOL_PORT.auth;
    const ok = await fcgiRequest({ port, localAddress: '127.0.0.1', params: getParams('/api/auth/health/live') });
    assert.equal(ok.closed, false, 'the allowed caller got nothing');
    assert.equal(ok.status, 200, ok.stdout);
    assert.match(ok.stdout, /"status":\s*"ok"/);
    for (let i = 0; i < 6; i++) { // every worker of the pool (3)
      const no = await fcgiRequest({ port, localAddress: '127.0.0.2', params: getParams('/api/auth/health/live') });
      assert.equal(no.closed, true, `a caller from 127.0.0.2 was answered: ${no.stdout}`);
    }
    // the pool still serves after refusing
    const again = await fcgiRequest({ port, localAddress: '127.0.0.1', params: getParams('/api/auth/health/live') });
    assert.equal(again.status, 200, again.stdout);
  });

  test('restart and scale on TCP under load: no failed request, every worker replaced', { timeout: 120000 }, async (t) => {
    const pool = 'auth';
    const mw0 = readPid(`run/${pool}.pid`);
    const before0 = childrenOf(mw0);
    const load = wrk(['-t2', '-c16', '-d16s', `${BASE_URL}/api/${pool}/health/live`]);
    await sleep(3000);
    const t0 = Date.now();
    const r1 = await run('scripts/fcgi-pool', ['restart', pool], { env: TCP, timeoutMs: 60000 });
    const restartMs = Date.now() - t0;
    assert.equal(r1.code, 0, `restart:\n${r1.stdout}\n${r1.stderr}`);
    await sleep(2000);
    const r2 = await run('scripts/fcgi-pool', ['scale', pool, '4'], { env: TCP, timeoutMs: 60000 });
    assert.equal(r2.code, 0, `scale 4:\n${r2.stdout}\n${r2.stderr}`);
    await sleep(2000);
    const r3 = await run('scripts/fcgi-pool', ['scale', pool, '3'], { env: TCP, timeoutMs: 60000 });
    assert.equal(r3.code, 0, `scale 3:\n${r3.stdout}\n${r3.stderr}`);
    const { requests, out } = assertWrkClean(await load);
    const mw1 = readPid(`run/${pool}.pid`);
    assert.notEqual(mw1, mw0, 'the multiwatch was not replaced');
    const after1 = await until(() => { const w = childrenOf(mw1); return w.length === 3 ? w : null; }, { timeoutMs: 15000 });
    assert.ok(after1, `workers after: ${JSON.stringify(childrenOf(mw1))}`);
    assert.ok(after1.every((p) => !before0.includes(p)), 'an old worker survived');
    const st = await run('scripts/fcgi-pool', ['status', pool], { env: TCP });
    assert.match(st.stdout, new RegExp(`listening on 127\\.0\\.0\\.1:${POOL_PORT[pool]}`), st.stdout);
    t.diagnostic(`wrk: ${requests} requests, ${/Requests\/sec:\s*(\S+)/.exec(out)?.[1]} req/s during restart + scale 4 + scale 3; restart took ${restartMs} ms`);
  });

  // nginx's upstream variant with two app hosts, one of them down (nothing listens on
  // 127.0.0.3): nginx OSS has no active checks, so the dead host is found by the requests
  // themselves; a refused connection is retried on the other host (also a POST: nothing of
  // it was sent), then the host is left out for fail_timeout.
  test('nginx upstreams with two app hosts, one down: every request answered', { timeout: 180000 }, async () => {
    const two = { ...TCP, TH_LB_APP_SERVERS: '127.0.0.1,127.0.0.3' };
    await poolsOn(two.TH_FCGI_BIND, two);
    const conf = readFileSync(path.join(VAR_DIR, 'nginx/upstreams.conf'), 'utf8');
    assert.match(conf, new RegExp(`server 127\\.0\\.0\\.1:${POOL_PORT.auth} max_fails=2 fail_timeout=5s; server 127\\.0\\.0\\.3:${POOL_PORT.auth} max_fails=2 fail_timeout=5s;`), conf);
    for (let i = 0; i < 12; i++) {
      const r = await get('/api/auth/health/live');
      assert.equal(r.status, 200, show(r));
    }
    const u = await newUser('lbt2');
    assert.ok(u.token);
    const log = readFileSync(path.join(VAR_DIR, 'log/nginx.log'), 'utf8');
    assert.match(log, /connect\(\) failed \(111: Connection refused\)[^\n]*127\.0\.0\.3/, 'nginx never tried the dead host');
    await poolsOn(TCP.TH_FCGI_BIND, TCP);
  });
});
