// HAProxy in front of the pools (issue 19): conf/haproxy/townhall.cfg.in rendered by
// render_haproxy (scripts/lib/common.sh) with a throwaway CA's certificate, HAProxy on
// loopback ports of its own (BASE+40 HTTP, BASE+41 HTTPS), the pools on TCP. Checked:
// HTTP redirects to HTTPS; the API works over HTTPS (FastCGI straight to the pools, the
// bearer token passed, the client address kept); wss:// MQTT connects, subscribes,
// publishes and receives through it; TLS 1.1 and a weak cipher are refused while TLS 1.2
// ECDHE-GCM and 1.3 are accepted; HSTS; the API's JSON for HAProxy's own errors; a pool
// server is marked DOWN when its ready check fails (Redis down while the pool still
// listens; the pool stopped) and UP again when it passes, read from HAProxy's stats socket.
// The file moves the pools to TCP first and back to unix sockets at the end.
// Client addresses: registrations from 127.61.x.y (lib/fixtures.mjs).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import mqtt from 'mqtt';
import {
  PORT_BASE, VAR_DIR, ROOT, request, run, runProgram, until, sleep, readPid, waitGone,
} from './lib/http.mjs';
import { show } from './lib/assert.mjs';
import { uuid, uniqName } from './lib/fixtures.mjs';
import { poolsOn } from './lib/lbstack.mjs';
import { fcgiRequest, getParams } from './lib/fcgi.mjs';
import { psql } from './lib/stack.mjs';
import {
  CONNECT_MS, DELIVER_MS, subscribe, publish, waitFor, hasPayload,
} from './lib/mqtt.mjs';

const HTTP_PORT = PORT_BASE + 40;
const HTTPS_PORT = PORT_BASE + 41;
const DIR = path.join(VAR_DIR, 'lb-test');
const CFG = path.join(DIR, 'haproxy.cfg');
const STATS = path.join(DIR, 'haproxy.sock');
// nginx (media, web/) believes HAProxy's X-Real-IP: HAProxy connects from 127.0.0.1
const TCP = { TH_FCGI_BIND: '127.0.0.1', TH_FCGI_ALLOWED: '', TH_HTTP_TRUSTED_PROXIES: '127.0.0.1' };
let haproxy;
let haproxyOut = '';
let ca;
let addrN = 0;
const freshAddr = () => { addrN += 1; return `127.61.${(addrN >> 8) & 255}.${addrN & 255}`; };

async function openssl(args, what) {
  const r = await runProgram('openssl', args, { timeoutMs: 30000 });
  assert.equal(r.code, 0, `openssl ${what}: ${r.stderr}`);
  return r;
}

// A CA and a server certificate for 127.0.0.1 / localhost signed by it (P-256)
async function makeCerts() {
  const f = (n) => path.join(DIR, n);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl(['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2',
    '-subj', '/CN=townhall test CA'], 'CA');
  await openssl(['req', ...ec, '-keyout', f('srv.key'), '-out', f('srv.csr'), '-subj', '/CN=localhost'], 'CSR');
  writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n'
    + 'keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n');
  await openssl(['x509', '-req', '-in', f('srv.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'),
    '-CAcreateserial', '-out', f('srv.crt'), '-days', '2', '-extfile', f('ext.cnf')], 'sign');
  writeFileSync(f('srv.pem'), readFileSync(f('srv.crt'), 'utf8') + readFileSync(f('srv.key'), 'utf8'), { mode: 0o600 });
  return readFileSync(f('ca.crt'));
}

// HTTPS request through HAProxy, trusting the test CA
// A body over HAProxy's limit, sent as a browser would (headers, then the body), over a raw
// TLS socket: HAProxy answers 413 once its buffer is full and closes while the client is
// still writing, so a write may fail (EPIPE, reset) — what counts is the answer read before.
// The body goes in 16 KiB pieces, each after the one before was flushed, and stops at the
// first byte of an answer; resolves with {status, json, text}.
function bigPost(urlPath, size) {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port: HTTPS_PORT, ca, servername: 'localhost' });
    const got = [];
    let sent = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const text = Buffer.concat(got).toString('utf8');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (!m) { reject(new Error(`no HTTP answer to a ${size}-byte body: ${JSON.stringify(text.slice(0, 200))}`)); return; }
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      let json;
      try { json = JSON.parse(body); } catch { json = undefined; }
      resolve({ status: Number(m[1]), json, text });
    };
    const timer = setTimeout(finish, 10000);
    const piece = Buffer.alloc(16384, 'x');
    const more = () => {
      if (done || got.length || sent >= size) return;
      const n = Math.min(piece.length, size - sent);
      sent += n;
      sock.write(piece.subarray(0, n), (err) => { if (!err) setTimeout(more, 5); });
    };
    sock.on('secureConnect', () => {
      sock.write(`POST ${urlPath} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n`
        + `Content-Length: ${size}\r\nConnection: close\r\n\r\n`, (err) => { if (!err) more(); });
    });
    sock.on('data', (d) => {
      // an interim 100 Continue is not the answer
      if (!got.length && /^HTTP\/1\.1 100 /.test(d.toString('latin1'))) {
        const rest = d.toString('latin1').split('\r\n\r\n').slice(1).join('\r\n\r\n');
        if (rest) got.push(Buffer.from(rest, 'latin1'));
        more();
        return;
      }
      got.push(d);
    });
    sock.on('end', finish);
    sock.on('close', finish);
    sock.on('error', () => { if (got.length) finish(); });
  });
}

function sreq(method, urlPath, { headers = {}, body, localAddress, servername = 'localhost' } = {}) {
  const hdrs = { ...headers };
  let b = body;
  if (b !== undefined && typeof b !== 'string' && !Buffer.isBuffer(b)) {
    b = JSON.stringify(b);
    hdrs['content-type'] ??= 'application/json';
  }
  if (b !== undefined) hdrs['content-length'] ??= Buffer.byteLength(b);
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port: HTTPS_PORT, method, path: urlPath, headers: hdrs, ca, servername, localAddress, agent: false, timeout: 10000,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${method} ${urlPath}`)));
    req.on('error', reject);
    if (b !== undefined) req.write(b);
    req.end();
  });
}

// HAProxy's admin socket: `show stat` -> {"backend/server": status}
function showStat() {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path: STATS });
    let out = '';
    s.on('connect', () => s.write('show stat\n'));
    s.on('data', (d) => { out += d; });
    s.on('error', reject);
    s.on('close', () => {
      const lines = out.split('\n').filter(Boolean);
      if (!lines.length) { reject(new Error(`show stat: no output`)); return; }
      const head = lines.shift().replace(/^# /, '').split(',');
      const iStatus = head.indexOf('status');
      const st = {};
      for (const l of lines) {
        const c = l.split(',');
        st[`${c[0]}/${c[1]}`] = c[iStatus];
      }
      resolve(st);
    });
  });
}

// openssl s_client against the HTTPS port -> {code, out}
function sClient(args) {
  return runProgram('sh', ['-c', `openssl s_client -connect 127.0.0.1:${HTTPS_PORT} -servername localhost ${args} </dev/null 2>&1`],
    { timeoutMs: 15000 }).then((r) => ({ code: r.code, out: r.stdout + r.stderr }));
}

// An MQTT client over wss:// through HAProxy, in the shape lib/mqtt.mjs's helpers take
function wssConnect(u) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`wss://localhost:${HTTPS_PORT}/mqtt`, {
      protocolVersion: 5, clientId: `u${u.id}-${uuid().slice(0, 8)}`, username: 'ignored', password: u.token,
      reconnectPeriod: 0, connectTimeout: CONNECT_MS, clean: true, keepalive: 30, ca,
    });
    const conn = { client, messages: [] };
    client.on('message', (topic, payload) => conn.messages.push({ topic, payload: payload.toString('utf8') }));
    client.on('connect', () => resolve(conn));
    client.on('error', (e) => { client.end(true); reject(e); });
    client.on('close', () => reject(new Error('closed before CONNACK')));
  });
}

async function newUser() {
  const username = uniqName('lbh');
  const body = { email: `${username}@example.test`, username, password: `pw-${username}-S3cret` };
  const res = await sreq('POST', '/api/auth/register', { body, localAddress: freshAddr() });
  assert.equal(res.status, 201, `register over HTTPS: ${show(res)}`);
  return { ...body, id: res.json.user.id, token: res.json.access_token };
}

before(async () => {
  await poolsOn(TCP.TH_FCGI_BIND, TCP);
  mkdirSync(DIR, { recursive: true });
  ca = await makeCerts();
  const r = await runProgram('bash', ['-c', '. scripts/lib/common.sh && th_init && render_haproxy "$1"', 'render', CFG], {
    env: {
      ...TCP, TH_LB_CERT: path.join(DIR, 'srv.pem'), TH_LB_STATS_SOCKET: STATS, TH_LB_CHECK_INTER_MS: '500',
    },
  });
  assert.equal(r.code, 0, `render_haproxy: ${r.stdout}\n${r.stderr}`);
  haproxy = spawn('haproxy', ['-db', '-f', CFG], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  haproxy.stdout.on('data', (d) => { haproxyOut += d; });
  haproxy.stderr.on('data', (d) => { haproxyOut += d; });
  const up = await until(async () => {
    const st = await showStat();
    return ['th_auth/app1', 'th_community/app1', 'th_realtime/app1', 'th_mqtt/front1', 'th_web/web1']
      .every((k) => st[k] === 'UP');
  }, { timeoutMs: 20000, intervalMs: 250 });
  assert.ok(up, `HAProxy's servers not all UP: ${JSON.stringify(await showStat().catch((e) => e.message))}\n${haproxyOut}`);
}, { timeout: 240000 });

after(async () => {
  if (haproxy && haproxy.exitCode === null) {
    haproxy.kill('SIGTERM');
    await until(() => haproxy.exitCode !== null || haproxy.signalCode !== null, { timeoutMs: 10000, intervalMs: 100 });
  }
  await poolsOn('');
}, { timeout: 180000 });

describe('HAProxy: TLS termination', () => {
  test('HTTP -> 301 to https, the same path', async () => {
    const r = await request('GET', '/api/auth/health/ready?x=1', { port: HTTP_PORT });
    assert.equal(r.status, 301, show(r));
    assert.match(r.headers.location ?? '', /^https:\/\/[^/]+\/api\/auth\/health\/ready\?x=1$/);
  });

  test('HTTPS with the CA: ready of each pool, HSTS, the static page through nginx', async () => {
    for (const app of ['auth', 'community', 'realtime']) {
      const r = await sreq('GET', `/api/${app}/health/ready`);
      assert.equal(r.status, 200, show(r));
      assert.equal(r.json.status, 'ok');
      assert.match(r.headers['strict-transport-security'] ?? '', /max-age=\d{7,}/, JSON.stringify(r.headers));
    }
    const from = freshAddr();
    const page = await sreq('GET', `/?from=${from}`, { localAddress: from });
    assert.equal(page.status, 200);
    assert.match(page.text, /<html/i);
    // nginx logs the client's address (X-Real-IP from a trusted balancer), not HAProxy's
    const logged = await until(() => readFileSync(path.join(VAR_DIR, 'log/nginx-access.log'), 'utf8')
      .split('\n').find((l) => l.includes(`/?from=${from} `)), { timeoutMs: 5000, intervalMs: 100 });
    assert.ok(logged, 'request not in the nginx access log');
    assert.ok(logged.startsWith(`${from} `), `nginx saw ${logged.split(' ')[0]}, not ${from}`);
  });

  test('register, bearer token, login over HTTPS; the client address reaches the app', async () => {
    const u = await newUser();
    const me = await sreq('GET', '/api/auth/me', { headers: { authorization: `Bearer ${u.token}` } });
    assert.equal(me.status, 200, `me (Authorization passed to FastCGI): ${show(me)}`);
    assert.equal(me.json.id ?? me.json.user?.id, u.id);
    const from = freshAddr();
    const login = await sreq('POST', '/api/auth/login', { body: { login: u.username, password: u.password }, localAddress: from });
    assert.equal(login.status, 200, show(login));
    // REMOTE_ADDR from HAProxy is the client's address, not the balancer's
    const addr = await psql(`SELECT client_addr FROM sessions WHERE user_id = ${Number(u.id)} ORDER BY id DESC LIMIT 1`);
    assert.equal(addr.code, 0, addr.stderr);
    assert.equal(addr.stdout.trim(), from);
    const c = await sreq('POST', '/api/communities', {
      headers: { authorization: `Bearer ${login.json.access_token}` },
      body: { slug: `lbh-${uuid().slice(0, 8)}`, name: 'Through HAProxy', visibility: 'public' },
    });
    assert.equal(c.status, 201, show(c));
    const p = await sreq('POST', `/api/communities/${c.json.id}/posts`, {
      headers: { authorization: `Bearer ${u.token}` }, body: { title: 'via TLS', body: 'through HAProxy' },
    });
    assert.equal(p.status, 201, show(p));
    const read = await sreq('GET', `/api/posts/${p.json.id}`, { headers: { authorization: `Bearer ${u.token}` } });
    assert.equal(read.status, 200, show(read));
  });

  test("HAProxy's own answers are the API's JSON: 404 unknown route, 403 metrics, 413 large body", async () => {
    const nf = await sreq('GET', '/api/nope');
    assert.equal(nf.status, 404);
    assert.equal(nf.json?.error?.code, 'not_found', nf.text);
    const m = await sreq('GET', '/metrics/auth');
    assert.equal(m.status, 403);
    assert.equal(m.json?.error?.code, 'forbidden', m.text);
    const big = await bigPost('/api/auth/login', 1048577);
    assert.equal(big.status, 413);
    assert.equal(big.json?.error?.code, 'too_large', big.text);
  });

  test('TLS 1.1 and a weak cipher are refused; TLS 1.2 ECDHE-GCM and TLS 1.3 accepted', async () => {
    const ok12 = await sClient('-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256');
    assert.match(ok12.out, /Protocol\s*:\s*TLSv1\.2/, ok12.out);
    assert.match(ok12.out, /Cipher\s*:\s*ECDHE-ECDSA-AES128-GCM-SHA256/, ok12.out);
    const ok13 = await sClient('-tls1_3');
    assert.match(ok13.out, /TLSv1\.3/, ok13.out);
    // the client is willing (security level 0), the server refuses
    const v11 = await sClient("-tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'");
    assert.notEqual(v11.code, 0, v11.out);
    assert.match(v11.out, /alert protocol version|unsupported protocol|wrong version/i, v11.out);
    const weak = await sClient("-tls1_2 -cipher 'ECDHE-ECDSA-AES128-SHA:AES128-SHA:@SECLEVEL=0'");
    assert.notEqual(weak.code, 0, weak.out);
    assert.match(weak.out, /handshake failure|no shared cipher/i, weak.out);
  });

  test('wss:// MQTT through HAProxy: connect, subscribe, publish, receive', { timeout: 60000 }, async () => {
    const a = await newUser();
    const b = await newUser();
    const c = await sreq('POST', '/api/communities', {
      headers: { authorization: `Bearer ${a.token}` },
      body: { slug: `lbm-${uuid().slice(0, 8)}`, name: 'MQTT via HAProxy', visibility: 'public' },
    });
    assert.equal(c.status, 201, show(c));
    const join = await sreq('POST', `/api/communities/${c.json.id}/join`, { headers: { authorization: `Bearer ${b.token}` } });
    assert.equal(join.status, 200, show(join));
    const ch = await sreq('GET', `/api/communities/${c.json.id}/channels`, { headers: { authorization: `Bearer ${a.token}` } });
    const general = ch.json.items.find((x) => x.name === 'general');
    assert.ok(general, ch.text);
    const ca1 = await wssConnect(a);
    const cb = await wssConnect(b);
    try {
      const code = await subscribe(cb, `chat/${general.id}/+`);
      assert.ok(code < 0x80, `SUBACK ${code}`);
      const payload = JSON.stringify({ id: uuid(), body: 'over wss through HAProxy' });
      assert.equal(await publish(ca1, `chat/${general.id}/${a.id}`, payload), 0);
      await waitFor(() => hasPayload(cb, payload), DELIVER_MS, 'the message over wss');
    } finally {
      ca1.client.end(true);
      cb.client.end(true);
    }
  });
});

describe('HAProxy: health checks on /api/<app>/health/ready', () => {
  // the pools keep listening: only a check that asks /health/ready over FastCGI sees this
  test('Redis down: every pool server DOWN though its port still accepts; UP again after it is back', { timeout: 120000 }, async () => {
    const pid = readPid('run/redis.pid');
    process.kill(pid, 'SIGTERM');
    try {
      assert.ok(await waitGone(pid, 15000), 'redis did not stop');
      const down = await until(async () => {
        const st = await showStat();
        return ['th_auth/app1', 'th_community/app1', 'th_realtime/app1'].every((k) => st[k]?.startsWith('DOWN'));
      }, { timeoutMs: 15000, intervalMs: 200 });
      assert.ok(down, `pool servers not DOWN with Redis down: ${JSON.stringify(await showStat())}`);
      const live = await fcgiRequest({ port: PORT_BASE + 26, params: getParams('/api/auth/health/live') });
      assert.equal(live.status, 200, `the auth pool itself answers: ${live.stdout}`);
    } finally {
      const up = await run('scripts/stack', ['up'], { env: TCP, timeoutMs: 120000 });
      assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
    }
    // workers reconnect with a backoff (up to 5 s), then two passing checks
    const up = await until(async () => {
      const st = await showStat();
      return ['th_auth/app1', 'th_community/app1', 'th_realtime/app1'].every((k) => st[k] === 'UP');
    }, { timeoutMs: 30000, intervalMs: 250 });
    assert.ok(up, `pool servers not UP after Redis came back: ${JSON.stringify(await showStat())}`);
  });

  test('a stopped pool is marked DOWN (503 JSON meanwhile), started again it is UP', { timeout: 120000 }, async () => {
    const stop = await run('scripts/fcgi-pool', ['stop', 'community'], { env: TCP, timeoutMs: 60000 });
    assert.equal(stop.code, 0, stop.stderr);
    try {
      const down = await until(async () => (await showStat())['th_community/app1']?.startsWith('DOWN'), { timeoutMs: 15000, intervalMs: 200 });
      assert.ok(down, `th_community/app1 not DOWN: ${JSON.stringify(await showStat())}`);
      const r = await sreq('GET', '/api/communities');
      assert.equal(r.status, 503, show(r));
      assert.equal(r.json?.error?.code, 'unavailable', r.text);
      assert.ok(r.headers['retry-after'], JSON.stringify(r.headers));
      // the other backends are untouched
      assert.equal((await showStat())['th_auth/app1'], 'UP');
    } finally {
      const start = await run('scripts/fcgi-pool', ['start', 'community'], { env: TCP, timeoutMs: 60000 });
      assert.equal(start.code, 0, start.stderr);
    }
    const up = await until(async () => (await showStat())['th_community/app1'] === 'UP', { timeoutMs: 15000, intervalMs: 200 });
    assert.ok(up, `th_community/app1 not UP again: ${JSON.stringify(await showStat())}`);
    await sleep(100);
    const r = await sreq('GET', '/api/community/health/ready');
    assert.equal(r.status, 200, show(r));
  });
});
