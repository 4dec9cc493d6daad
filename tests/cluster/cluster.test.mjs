// Townhall on several hosts: one failure after another under steady load (issue 19, "What
// must be true" 2). Runs inside th-client (tests/cluster/run starts it there); everything
// goes through HAProxy on th-lb, like a browser's requests. Faults are made with
// tests/cluster/lib/ctl. Each step asserts what must hold and adds a row to the results
// table printed at the end (docs/scaling.md, "Running on several hosts (namespaces)").
//
// Timing bounds are generous on purpose (a shared 2-core machine); the numbers to compare
// are the measured ones in the table.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request, sleep } from '../integration/lib/http.mjs';
import { uuid, uniqName } from '../integration/lib/fixtures.mjs';
import { connect, closeClients } from '../integration/lib/mqtt.mjs';
import { ChatSender } from '../integration/lib/sender.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CTL = path.join(HERE, 'lib/ctl');
const LB = '10.77.0.2';
const PORT = Number(process.env.CL_BASE || 8080);
const SHORT = process.env.TH_CLUSTER_SHORT === '1';
const WS = `ws://${LB}:${process.env.CL_BASE || 8080}/mqtt`;
const VAR = process.env.CL_VAR;

const results = [];

// ctl(cmd, ...args) -> stdout trimmed (rejects on a non-zero exit)
function ctl(...args) {
  return new Promise((resolve, reject) => {
    execFile(CTL, args, { timeout: 120000, env: process.env }, (err, out, errOut) => {
      if (err) reject(new Error(`ctl ${args.join(' ')}: ${err.message} ${errOut}`));
      else resolve(out.trim());
    });
  });
}

async function waitFor(what, fn, timeoutMs, intervalMs = 500) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try { if (await fn()) return; } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}

// api(method, path, token, body, {server}) through the lb; server pins the app host
// (HAProxy's use-server on X-Cluster-Host, test only). Network errors and timeouts come
// back as status 0.
async function api(method, p, token, body, o = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (o.server) headers['x-cluster-host'] = o.server;
  const t0 = Date.now();
  try {
    const res = await request(method, p, {
      host: LB, port: PORT, headers, body, timeoutMs: o.timeoutMs ?? 20000,
    });
    res.ms = Date.now() - t0;
    return res;
  } catch (e) {
    return { status: 0, error: e.message, ms: Date.now() - t0 };
  }
}

async function newUser(o = {}) {
  const username = uniqName('cl');
  const body = { email: `${username}@example.test`, username, password: `pw-${username}-S3cret` };
  const res = await api('POST', '/api/auth/register', null, body, o);
  assert.equal(res.status, 201, `register: ${res.status} ${res.text || res.error}`);
  return { ...body, id: res.json.user.id, token: res.json.access_token };
}

// --- the steady load ----------------------------------------------------------------
// USERS virtual users, each in a loop: write a post, read the community's posts, send a chat
// message (REST, a client id: a message that got no 201 is sent again with the same id, as
// API.md's clients do, until it is stored), read /me. PAUSE_MS between requests: bounded,
// about USERS × 1000 / (PAUSE_MS + latency) requests a second.
const USERS = 3;
const PAUSE_MS = 60;

class Load {
  constructor(world) {
    this.world = world;
    this.samples = []; // {t, end, kind, status}
    this.pending = new Map(); // chat id -> body (not yet stored)
    this.stored = new Set(); // chat ids answered 201
    this.running = false;
  }

  async user(u) {
    const { community, channel } = this.world;
    let i = 0;
    while (this.running) {
      i += 1;
      const kind = ['post', 'read', 'chat', 'me'][i % 4];
      let res;
      const t = Date.now();
      if (kind === 'post') {
        res = await api('POST', `/api/communities/${community}/posts`, u.token, { body: `load ${i}` });
      } else if (kind === 'read') {
        res = await api('GET', `/api/communities/${community}/posts`, u.token);
      } else if (kind === 'chat') {
        // first whatever was not stored yet (same id), else a new message
        let id = [...this.pending.keys()].find((k) => this.pending.get(k).user === u.id);
        if (!id) {
          id = uuid();
          this.pending.set(id, { user: u.id, body: `chat ${i}` });
        }
        res = await api('POST', `/api/channels/${channel}/messages`, u.token, { id, body: this.pending.get(id).body });
        if (res.status === 201 || res.status === 200) {
          this.pending.delete(id);
          this.stored.add(id);
        }
      } else {
        res = await api('GET', '/api/auth/me', u.token);
      }
      this.samples.push({
        t, end: Date.now(), kind, status: res.status,
      });
      await sleep(PAUSE_MS);
    }
  }

  start() {
    this.running = true;
    this.done = Promise.all(this.world.users.map((u) => this.user(u)));
  }

  async stop() {
    this.running = false;
    await this.done;
  }

  // what happened from `from` (ms) on
  summary(from = 0) {
    const s = this.samples.filter((x) => x.t >= from);
    const bad = s.filter((x) => x.status === 0 || x.status >= 500);
    const by = {};
    for (const x of s) by[x.status] = (by[x.status] || 0) + 1;
    return {
      total: s.length,
      bad: bad.length,
      s500: s.filter((x) => x.status === 500).length,
      s503: s.filter((x) => x.status === 503).length,
      s504: s.filter((x) => x.status === 504 || x.status === 502).length,
      neterr: s.filter((x) => x.status === 0).length,
      firstBad: bad.length ? Math.min(...bad.map((x) => x.t)) : null,
      lastBad: bad.length ? Math.max(...bad.map((x) => x.end)) : null,
      maxMs: s.length ? Math.max(...s.map((x) => x.end - x.t)) : 0,
      by,
    };
  }

  // the first successful write (post or chat) that started at or after `from`
  firstWriteOk(from) {
    const w = this.samples.filter((x) => x.t >= from && (x.kind === 'post' || x.kind === 'chat')
      && (x.status === 201 || x.status === 200));
    return w.length ? Math.min(...w.map((x) => x.end)) : null;
  }
}

// every chat message that got its 201 is stored exactly once (on the current primary)
async function chatStoredOnce(load) {
  const ids = [...load.stored];
  if (!ids.length) return { receipted: 0, missing: 0, duplicated: 0 };
  const list = ids.map((x) => `'${x}'`).join(','); // uuids we generated: no quoting issue
  const out = await ctl('psql', `SELECT id, count(*) FROM messages WHERE id IN (${list}) GROUP BY id`);
  const counts = new Map(out.split('\n').filter(Boolean).map((l) => {
    const [id, n] = l.split('|');
    return [id, Number(n)];
  }));
  const missing = ids.filter((id) => !counts.has(id)).length;
  const duplicated = [...counts.values()].filter((n) => n > 1).length;
  return { receipted: ids.length, missing, duplicated };
}

function row(step, fields) {
  results.push({ step, ...fields });
  process.stdout.write(`${step}: ${JSON.stringify(fields)}\n`);
}

let world;

async function setupWorld() {
  const owner = await newUser();
  const c = await api('POST', '/api/communities', owner.token, { slug: `cl-${uuid().slice(0, 8)}`, name: 'Cluster', visibility: 'public' });
  assert.equal(c.status, 201, `community: ${c.status} ${c.text}`);
  const ch = await api('GET', `/api/communities/${c.json.id}/channels`, owner.token);
  const general = ch.json.items.find((x) => x.name === 'general');
  const users = [owner];
  for (let i = 1; i < USERS; i += 1) {
    const u = await newUser();
    const j = await api('POST', `/api/communities/${c.json.id}/join`, u.token);
    assert.equal(j.status, 200, `join: ${j.status} ${j.text}`);
    users.push(u);
  }
  return { community: c.json.id, channel: general.id, users };
}

// run the load for ms, with fault() at `at` ms in; returns {load, t0}
async function underLoad(ms, at, fault) {
  const load = new Load(world);
  load.start();
  await sleep(at);
  const start = Date.now();
  if (fault) await fault();
  // the fault is in place once ctl returned: measure from there
  const t0 = Date.now();
  await sleep(Math.max(0, ms - at - (t0 - start)));
  await load.stop();
  return { load, t0 };
}

const pgHealthy = async () => {
  try { await ctl('pg-healthy'); return true; } catch { return false; }
};

// every step starts from a whole cluster: a primary and its standby, every app host in
const HEALTHY_MS = 150000;
async function ensureHealthy() {
  await waitFor('PostgreSQL primary + standby', pgHealthy, HEALTHY_MS, 2000);
  await waitFor('every app healthy through the lb', healthAll, 60000);
}

// when the service was whole again after a fault at t0: the end of the last failed request
// (t0 when none failed), in seconds after t0
const recoveredS = (s, t0) => (s.lastBad ? (s.lastBad - t0) / 1000 : 0);

const healthAll = async () => {
  // the apps HAProxy sends to the pools (media goes to nginx on the app hosts)
  for (const app of ['auth', 'community', 'realtime']) {
    const r = await api('GET', `/api/${app}/health/ready`);
    if (r.status !== 200) return false;
  }
  return true;
};

after(() => {
  closeClients();
  const lines = ['| step | result |', '|---|---|'];
  for (const r of results) {
    const { step, ...rest } = r;
    lines.push(`| ${step} | ${Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ')} |`);
  }
  const table = lines.join('\n');
  process.stdout.write(`\nresults\n${table}\n`);
  if (VAR) writeFileSync(path.join(VAR, 'results.md'), `${table}\n`);
});

// The black-box integration files, run through the lb from here (TH_TEST_BASE_URL,
// tests/integration/lib/http.mjs): every request and the MQTT WebSocket go to HAProxy; a test
// that reads the local stack (files, pids, psql, Redis) or needs tests/integration/run's
// settings skips itself (each such test says why in a `// LOCAL_ONLY:` line). One node
// process, bounded in time. The full run takes every file that has tests which can run
// through a balancer; the others are about one host's own processes:
//   auth_limits, limits: restart the stack's pools with their own limits, read /metrics;
//   call_bans: every test reads the call's participant set in the stack's Redis;
//   presence, tier: MQTT over TCP to the stack's edge brokers by port;
//   wsfront: the stack's own front on its port, and a second one it starts;
//   security: inspects the local servers (PostgreSQL, Redis, sockets, files) directly;
//   mail, push: read the stack's SMTP sink's files / run a push service on the test's host;
//   bridge, hubstandby, lb_*, media_gc, ops_conf, pg_*, pool, redis_*, unresolvable: start,
//   kill or reconfigure the stack's own processes (the one-host versions of these steps).
const IT_FILES = SHORT ? ['foundation', 'community', 'realtime']
  : ['foundation', 'auth', 'community', 'realtime', 'mqtt', 'mqtt_limits', 'message_ids', 'media', 'media_limits',
    'dm', 'unread', 'notifications', 'history', 'msearch', 'sessions', 'totp'];
const IT_TIMEOUT_MS = SHORT ? 240000 : 480000;
function integrationThroughLb() {
  const files = IT_FILES.map((f) => path.join(HERE, '..', 'integration', `${f}.test.mjs`));
  // a runner of its own: without NODE_TEST_CONTEXT, which would make it report to ours
  const env = { ...process.env, TH_TEST_BASE_URL: `http://${LB}:${PORT}` };
  delete env.NODE_TEST_CONTEXT;
  const t = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, ['--test', '--test-reporter=tap', '--test-concurrency=1', ...files], {
      timeout: IT_TIMEOUT_MS,
      maxBuffer: 64 << 20,
      cwd: path.join(HERE, '..', '..'),
      env,
    }, (err, out, errOut) => {
      const n = (k) => Number((new RegExp(`^# ${k} (\\d+)$`, 'm').exec(out) || [])[1] ?? NaN);
      const failed = out.split('\n').filter((l) => /^\s*not ok /.test(l)).join('\n');
      resolve({
        code: err ? (err.code ?? err.signal) : 0, pass: n('pass'), fail: n('fail'), skipped: n('skipped'), s: ((Date.now() - t) / 1000).toFixed(1), failed, tail: `${out.slice(-3000)}${errOut.slice(-1000)}`,
      });
    });
  });
}

test('baseline: every app answers through the lb, the integration subset passes through it, steady load without an error', async () => {
  await ensureHealthy();
  world = await setupWorld();
  // register on one app host, log in on the other
  const u = await newUser({ server: 'app1' });
  const login = await api('POST', '/api/auth/login', null, { login: u.username, password: u.password }, { server: 'app2' });
  assert.equal(login.status, 200, `login on app2: ${login.status} ${login.text}`);
  // the steady load runs while the integration files do
  const load = new Load(world);
  load.start();
  const t = Date.now();
  const it = await integrationThroughLb();
  await sleep(Math.max(0, (SHORT ? 6000 : 10000) - (Date.now() - t)));
  await load.stop();
  const s = load.summary();
  const chat = await chatStoredOnce(load);
  row('baseline', {
    requests: s.total, errors: s.bad, max_ms: s.maxMs, chat_receipted: chat.receipted, chat_missing: chat.missing, chat_dup: chat.duplicated,
  });
  row('integration files through the lb', {
    files: IT_FILES.join(' '), pass: it.pass, fail: it.fail, skipped: it.skipped, seconds: it.s,
  });
  assert.equal(it.code, 0, `integration files through the lb (exit ${it.code}):\n${it.failed}\n${it.tail}`);
  assert.ok(it.pass > 0 && it.fail === 0, `integration files: ${it.pass} passed, ${it.fail} failed`);
  assert.ok(s.total > 20, `too few requests: ${s.total}`);
  assert.equal(s.bad, 0, `errors at baseline: ${JSON.stringify(s.by)}`);
  assert.equal(chat.missing + chat.duplicated, 0);
});

// the size of a log now, and whether a pattern appeared in it after that size
const logSize = (f) => { try { return statSync(f).size; } catch { return 0; } };
const logSince = (f, from) => { try { return readFileSync(f, 'utf8').slice(from); } catch { return ''; } };
const hostLog = (h, name) => path.join(VAR, h, 'log', name);

// A minimal valid PDF of about `size` bytes, unique per call (a medium kind the media app
// accepts without a converter; as tests/integration/media.test.mjs makes it)
function makePdf(size) {
  const head = Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1');
  const objs = ['<< /Type /Catalog /Pages 2 0 R >>', '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 72 72] >>'];
  let pdf = head;
  const offsets = [];
  objs.forEach((o, i) => {
    offsets.push(pdf.length);
    pdf = Buffer.concat([pdf, Buffer.from(`${i + 1} 0 obj\n${o}\nendobj\n`, 'latin1')]);
  });
  const pad = Buffer.from(`% ${uuid()} ${'x'.repeat(Math.max(0, size - pdf.length - 250))}\n`, 'latin1');
  const xref = `xref\n0 4\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`
    + `trailer\n<< /Size 4 /Root 1 0 R >>\nstartxref\n${pdf.length + pad.length}\n%%EOF\n`;
  return Buffer.concat([pdf, pad, Buffer.from(xref, 'latin1')]);
}

// GET through the lb pinned to `server`; a redirect (the presigned URL of the object on the
// s3 host) is followed once
async function download(p, token, server) {
  const res = await api('GET', p, token, undefined, { server, timeoutMs: 30000 });
  if (![301, 302, 303, 307, 308].includes(res.status) || !res.headers?.location) return res;
  const loc = new URL(res.headers.location, `http://${LB}:${PORT}`);
  const r2 = await request('GET', loc.pathname + loc.search, {
    host: loc.hostname, port: Number(loc.port || 80), headers: { host: loc.host }, timeoutMs: 30000,
  });
  r2.redirectedTo = loc.host;
  return r2;
}

test('media on the s3 host: an upload on app1 through the lb downloads as the same bytes via app2', async () => {
  await ensureHealthy();
  const u = world.users[0];
  const bytes = makePdf(200 * 1024);
  const t = Date.now();
  const up = await request('POST', '/api/media?filename=cluster.pdf', {
    host: LB,
    port: PORT,
    headers: { authorization: `Bearer ${u.token}`, 'content-type': 'application/pdf', 'x-cluster-host': 'app1' },
    body: bytes,
    timeoutMs: 60000,
  }).catch((e) => ({ status: 0, text: e.message }));
  const upMs = Date.now() - t;
  assert.equal(up.status, 201, `upload on app1: ${up.status} ${up.text}`);
  const orig = new URL(up.json.variants.original, `http://${LB}:${PORT}`);
  const t2 = Date.now();
  const meta = await api('GET', `/api/media/${up.json.id}`, u.token, undefined, { server: 'app2' });
  const d = await download(orig.pathname + orig.search, u.token, 'app2');
  const downMs = Date.now() - t2;
  row('media on s3 (upload app1, download app2)', {
    bytes: bytes.length, upload: up.status, upload_ms: upMs, meta_app2: meta.status, download_app2: d.status, download_ms: downMs, via: d.redirectedTo ? `redirect to ${d.redirectedTo}` : 'app2',
  });
  // the pinning held: app1's nginx took the upload, app2's the download
  assert.match(logSince(hostLog('app1', 'nginx-access.log'), 0), /POST \/api\/media\?filename=cluster\.pdf/, 'the upload went to app1');
  assert.ok(logSince(hostLog('app2', 'nginx-access.log'), 0).includes(orig.pathname), 'the download went to app2');
  assert.equal(meta.status, 200, `metadata on app2: ${meta.status} ${meta.text}`);
  assert.equal(meta.json.sha256, up.json.sha256);
  assert.equal(d.status, 200, `download via app2: ${d.status} ${d.text?.slice(0, 300)}`);
  assert.ok(Buffer.compare(d.body, bytes) === 0, `app2 served ${d.body.length} bytes, not the ${bytes.length} uploaded on app1`);
});

// HAProxy checks every second, 3 failures take a host out: ~3-4 s. A request in flight on
// app1 when its link went fails after `timeout server` (10 s) unless it was still connecting
// (then it is retried on app2). So: failures only for requests that started within the
// detection window.
const DETECT_MS = 6000;

test('app1 link down: requests move to app2 within the health-check interval', { skip: SHORT }, async () => {
  await ensureHealthy();
  let r;
  try {
    r = await underLoad(16000, 2000, () => ctl('cut', 'app1'));
  } finally {
    await ctl('uncut', 'app1');
  }
  const { load, t0 } = r;
  const s = load.summary(t0);
  const late = load.summary(t0 + DETECT_MS);
  row('app1 link down', {
    requests: s.total, failed: s.bad, started_after_detect_failed: late.bad, s500: s.s500, s504: s.s504, max_ms: s.maxMs,
  });
  assert.equal(s.s500, 0, 'no 500');
  assert.equal(late.bad, 0, `failures of requests started ${DETECT_MS} ms after the cut: ${JSON.stringify(late.by)}`);
});

// a fault at t0; the service must be whole (no failed request) RECOVER_BOUND_S after it at
// the latest, and stay so
async function pgFault(name, fault, undo, { ms, boundS }) {
  await ensureHealthy();
  const primary = await ctl('pg-primary');
  assert.ok(['pg1', 'pg2'].includes(primary), `primary: ${primary}`);
  let r;
  try {
    r = await underLoad(ms, 3000, () => fault(primary));
  } finally {
    await undo(primary);
  }
  const { load, t0 } = r;
  const s = load.summary(t0);
  // the first write that succeeded after writes had started failing
  const firstOk = load.firstWriteOk((s.firstBad ?? t0) + 1);
  const newPrimary = await ctl('pg-primary');
  const chat = await chatStoredOnce(load);
  const rec = recoveredS(s, t0);
  const tail = load.summary(t0 + boundS * 1000);
  row(name, {
    old_primary: primary,
    new_primary: newPrimary || '-',
    first_write_ok_s: firstOk ? ((firstOk - t0) / 1000).toFixed(1) : 'never',
    all_ok_after_s: rec.toFixed(1),
    requests: s.total,
    s503: s.s503,
    s500: s.s500,
    s502_504: s.s504,
    neterr: s.neterr,
    max_request_ms: s.maxMs,
    chat_receipted: chat.receipted,
    chat_missing: chat.missing,
    chat_dup: chat.duplicated,
  });
  assert.equal(s.s500, 0, 'no 500');
  assert.ok(newPrimary && newPrimary !== primary, `the standby became the primary (${newPrimary})`);
  assert.ok(firstOk, 'writes succeed again');
  assert.equal(tail.bad, 0, `failures ${boundS} s after the fault: ${JSON.stringify(tail.by)}`);
  assert.equal(chat.missing, 0, 'every receipted chat message is stored');
  assert.equal(chat.duplicated, 0, 'and stored once');
  return s;
}

test('kill -9 the PostgreSQL primary host: the standby is promoted, 503s for a bounded time, no 500, chat stored once', async () => {
  await pgFault('kill -9 PG primary host', (h) => ctl('crash', h), (h) => ctl('pg-rejoin', h), { ms: 45000, boundS: 35 });
});

test('blackhole the PostgreSQL primary: no request hangs past its timeouts, writes come back on the standby', { skip: SHORT }, async () => {
  const s = await pgFault('blackhole PG primary', (h) => ctl('blackhole', h), async (h) => {
    await sleep(2000);
    await ctl('unblackhole', h);
  }, { ms: 45000, boundS: 35 });
  // libpq: connect_timeout 2 s a host, tcp_user_timeout 5 s (tests/cluster/lib/pg.sh);
  // HAProxy's timeout server 10 s caps what a client sees
  assert.ok(s.maxMs < 12000, `a request took ${s.maxMs} ms`);
});

test('a lagging replica: register on app1 then log in on app2; a writer sees its own post at once', { skip: SHORT }, async () => {
  await ensureHealthy();
  const standby = (await ctl('pg-primary')) === 'pg1' ? 'pg2' : 'pg1';
  await ctl('pg-replay', standby, 'pause');
  try {
    const u = await newUser({ server: 'app1' });
    const login = await api('POST', '/api/auth/login', null, { login: u.username, password: u.password }, { server: 'app2' });
    const c = await api('POST', `/api/communities/${world.community}/join`, u.token, undefined, { server: 'app1' });
    const p = await api('POST', `/api/communities/${world.community}/posts`, u.token, { body: 'mine' }, { server: 'app1' });
    const get = await api('GET', `/api/posts/${p.json?.id}`, u.token, undefined, { server: 'app2' });
    const list = await api('GET', `/api/communities/${world.community}/posts`, u.token, undefined, { server: 'app2' });
    row('lagging replica (replay paused)', {
      login_on_app2: login.status, join: c.status, post: p.status, get_own_post_app2: get.status, own_post_in_feed_app2: Boolean(list.json?.items?.some((x) => x.id === p.json?.id)),
    });
    assert.equal(login.status, 200, `login on app2 while the replica lags: ${login.status} ${login.text}`);
    assert.equal(p.status, 201);
    assert.equal(get.status, 200, `own post on app2: ${get.status} ${get.text}`);
    assert.ok(list.json?.items?.some((x) => x.id === p.json.id), 'own post in the feed at once');
  } finally {
    await ctl('pg-replay', standby, 'resume');
  }
});

test('take all of app2 down: the service keeps answering', { skip: SHORT }, async () => {
  await ensureHealthy();
  let r;
  try {
    r = await underLoad(16000, 2000, () => ctl('crash', 'app2'));
  } finally {
    await ctl('app-up', 'app2');
  }
  const { load, t0 } = r;
  const s = load.summary(t0);
  const late = load.summary(t0 + DETECT_MS);
  const chat = await chatStoredOnce(load);
  row('all of app2 down', {
    requests: s.total, failed: s.bad, started_after_detect_failed: late.bad, s500: s.s500, chat_missing: chat.missing, chat_dup: chat.duplicated,
  });
  assert.equal(s.s500, 0, 'no 500');
  assert.equal(late.bad, 0, `failures of requests started ${DETECT_MS} ms after app2 died: ${JSON.stringify(late.by)}`);
  assert.equal(chat.missing + chat.duplicated, 0, 'chat stored once');
});

test('kill -9 the Redis master host: Sentinel promotes the replica, bounded 503s, then service; a logout on app1 closes the socket on any edge within 5 s', { skip: SHORT }, async () => {
  await ensureHealthy();
  const before = await ctl('redis-master');
  assert.equal(before.split(' ')[0], '10.77.0.31', `master at start: ${before}`);
  let r;
  try {
    r = await underLoad(25000, 3000, () => ctl('crash', 'r1'));
  } finally {
    await ctl('redis-rejoin', 'r1');
  }
  const { load, t0 } = r;
  const afterMaster = await ctl('redis-master');
  const s = load.summary(t0);
  const tail = load.summary(t0 + 15000);
  row('Redis master host killed (Sentinel)', {
    old_master: before, new_master: afterMaster, requests: s.total, s503: s.s503, s500: s.s500, s502_504: s.s504, all_ok_after_s: recoveredS(s, t0).toFixed(1), max_request_ms: s.maxMs,
  });
  assert.notEqual(afterMaster, before, 'the replica was promoted');
  assert.equal(s.s500, 0, 'no 500');
  assert.equal(tail.bad, 0, `failures 15 s after the master went: ${JSON.stringify(tail.by)}`);
  await ensureHealthy();
  // four users on the edges (the fronts pick the edge from the user id), each logged out
  // through app1: every socket closes within 5 s, whichever edge holds it
  const users = [];
  for (let i = 0; i < 4; i += 1) users.push(await newUser({ server: 'app1' }));
  const conns = [];
  for (const u of users) conns.push(await connect(u, { url: WS }));
  const edges = { app1: await ctl('edge-conns', 'app1'), app2: await ctl('edge-conns', 'app2') };
  const closeMs = [];
  await Promise.all(users.map(async (u, i) => {
    const t = Date.now();
    const out = await api('POST', '/api/auth/logout', u.token, {}, { server: 'app1' });
    assert.equal(out.status, 204, `logout: ${out.status} ${out.text}`);
    await waitFor('socket closed after logout', () => conns[i].closed, 8000, 100);
    closeMs.push(conns[i].closedAt() - t);
  }));
  row('logout on app1 closes sockets (after the failover)', { edge_conns_before: JSON.stringify(edges), max_close_ms: Math.max(...closeMs) });
  assert.ok(Math.max(...closeMs) <= 5000, `a socket closed ${Math.max(...closeMs)} ms after its logout`);
});

const APP_HOSTS = ['app1', 'app2'];
const EDGE_OF = { app1: 'e0', app2: 'e1' };
// an edge's bridge retries after 1..5 s and goes down its address list (hub A, hub B);
// th-bridge moves after its own failed connects (realtime-bridge/bridge/hubs.c)
const MOVE_MS = 25000;

// every edge's bridge and every th-bridge attached to hub A (wait, 'back') or to hub B
// ('standby') since the logs had the sizes in `from`; resolves with the ms it took from t
async function hubMoved(to, from, t) {
  const hubLog = to === 'standby' ? hostLog('hubb', 'mosquitto-hub-b.log') : hostLog('huba', 'mosquitto-hub.log');
  const bridgeRe = to === 'standby' ? /connected \(session \w+\) to the standby hub/ : /connected \(session \w+\) to the hub /;
  for (const h of APP_HOSTS) {
    await waitFor(`edge ${EDGE_OF[h]} on hub ${to === 'standby' ? 'B' : 'A'}`,
      () => logSince(hubLog, from[hubLog]).includes(` as edge-${EDGE_OF[h]} (`), MOVE_MS, 100);
    const bl = hostLog(h, 'bridge.log');
    await waitFor(`th-bridge of ${h} on hub ${to === 'standby' ? 'B' : 'A'}`,
      () => bridgeRe.test(logSince(bl, from[bl])), MOVE_MS, 100);
  }
  return Date.now() - t;
}

function logMarks() {
  const m = {};
  for (const f of [hostLog('huba', 'mosquitto-hub.log'), hostLog('hubb', 'mosquitto-hub-b.log'),
    ...APP_HOSTS.map((h) => hostLog(h, 'bridge.log'))]) m[f] = logSize(f);
  return m;
}

test('kill an edge, then hub A (hub B takes over), then a bridge: no receipted chat message lost or stored twice', { skip: SHORT }, async () => {
  await ensureHealthy();
  const senders = world.users.slice(0, 2).map((u) => new ChatSender(u, world.channel, { urls: [WS], resendMs: 5000 }));
  await Promise.all(senders.map((x) => x.start()));
  // steady chat, RATE messages a second from each sender, until the faults are done
  const RATE = 4;
  const iv = setInterval(() => { for (const x of senders) x.send(); }, 1000 / RATE);
  const events = [];
  const mark = (what) => events.push(`${what}@${((Date.now() - t0) / 1000).toFixed(1)}s`);
  const t0 = Date.now();
  let hubDown = false;
  let moveMs;
  let backMs;
  let duringB = [];
  try {
    await sleep(3000);
    await ctl('kill-broker', 'app1', 'e0'); mark('edge e0 killed');
    await sleep(3000);
    await ctl('broker-up', 'app1', 'e0'); mark('e0 back');
    await sleep(5000);
    // hub A dies and stays down: every edge and th-bridge moves to hub B, chat keeps
    // flowing (crossing edges, stored, receipted) through hub B alone
    let from = logMarks();
    await ctl('kill-broker', 'huba', 'hub'); hubDown = true; mark('hub A killed');
    const killedAt = Date.now();
    moveMs = await hubMoved('standby', from, killedAt); mark('all on hub B');
    const mark0 = senders.map((x) => x.sent.length);
    await sleep(4000);
    duringB = senders.flatMap((x, i) => x.sent.slice(mark0[i]));
    // receipted while hub A is still down: they went through hub B alone
    await waitFor('receipts through hub B', () => duringB.every((id) => senders.some((x) => x.stored.has(id))), 20000, 100);
    mark('receipted on hub B');
    from = logMarks();
    await ctl('broker-up', 'huba', 'hub'); hubDown = false; mark('hub A back');
    backMs = await hubMoved('back', from, Date.now()); mark('all back on hub A');
    await sleep(3000);
    await ctl('kill-bridge', 'app1'); mark('th-bridge app1 killed');
    await sleep(3000);
    await ctl('bridge-up', 'app1'); mark('th-bridge app1 back');
    await sleep(3000);
  } finally {
    clearInterval(iv);
    if (hubDown) await ctl('broker-up', 'huba', 'hub');
  }
  const end = Date.now() + 40000;
  while (Date.now() < end && !senders.every((x) => x.pending.size === 0)) await sleep(200);
  const sent = senders.flatMap((x) => x.sent);
  const pending = senders.reduce((n, x) => n + x.pending.size, 0);
  const resent = senders.reduce((n, x) => n + x.resent.size, 0);
  for (const x of senders) x.stop();
  const list = sent.map((id) => `'${id}'`).join(',');
  const out = await ctl('psql', `SELECT count(*), count(DISTINCT id) FROM messages WHERE id IN (${list})`);
  const [rows, distinct] = out.split('|').map(Number);
  row('edge, hub A (to hub B), bridge killed (MQTT chat)', {
    sent: sent.length,
    receipted: sent.length - pending,
    resent,
    rows,
    distinct,
    moved_to_hub_b_ms: moveMs,
    receipted_via_hub_b: duringB.length,
    back_to_hub_a_ms: backMs,
    events: events.join(' '),
  });
  assert.equal(pending, 0, `not receipted: ${senders.map((x) => x.diag()).join(' / ')}`);
  assert.equal(distinct, sent.length, 'every message stored');
  assert.equal(rows, sent.length, 'and stored once');
});

// A DNS server that does not answer (not a name that does not resolve): app3 is an app host
// (its auth pool and nginx) whose resolver is th-dns, which takes every query and never
// replies, and whose PostgreSQL hosts and sentinels are given by name. Every connection then
// starts with a lookup that gets no answer. lib/cache resolves Redis and sentinel names
// itself within its timeout, and lib/dbhost the database's within connect_timeout (both
// lib/resolve.c), so glibc's defaults (5 s x 2 a name) hold nothing longer than
// `options timeout:1 attempts:1`: asserted with both, the same bounds: 503 with Retry-After
// in bounded time, never a hang, never a 500; /health/live still 200.
const APP3 = '10.77.0.13';
async function app3(method, p, o = {}) {
  const t = Date.now();
  try {
    const res = await request(method, p, {
      host: APP3, port: PORT, headers: o.headers || {}, body: o.body, timeoutMs: o.timeoutMs ?? 90000,
    });
    res.ms = Date.now() - t;
    return res;
  } catch (e) {
    return { status: 0, error: e.message, ms: Date.now() - t, headers: {} };
  }
}

test('a DNS server that does not answer: database and Redis names give a bounded wait and a 503 with Retry-After, never a hang', { skip: SHORT }, async () => {
  await ctl('dns-up');
  const dnsLog = path.join(VAR, 'dns', 'log', 'dns.log');
  const u = world.users[0];
  const login = { login: u.username, password: u.password };
  const cols = {};
  for (const [setting, options] of [['defaults', undefined], ['timeout1', 'timeout:1 attempts:1']]) {
    if (options) await ctl('app3-up', options);
    else await ctl('app3-up');
    const q0 = logSize(dnsLog);
    const res = {};
    for (const [name, method, p, o] of [
      ['ready', 'GET', '/api/auth/health/ready', {}],
      ['login', 'POST', '/api/auth/login', { body: login }],
      ['me', 'GET', '/api/auth/me', { headers: { authorization: `Bearer ${u.token}` } }],
      ['login_again', 'POST', '/api/auth/login', { body: login }],
      ['live', 'GET', '/api/auth/health/live', {}],
    ]) res[name] = await app3(method, p, o);
    for (const [k, v] of Object.entries(res)) {
      cols[`${setting}_${k}`] = `${v.status} in ${v.ms} ms${v.headers?.['retry-after'] ? `, Retry-After ${v.headers['retry-after']}` : ''}`;
    }
    assert.match(logSince(dnsLog, q0), /udp query pg[12]\.th-cluster\.test/, `${setting}: the database names were asked of the silent DNS server`);
    for (const k of ['ready', 'login', 'me', 'login_again']) {
      const r = res[k];
      assert.ok([503].includes(r.status) || (k === 'me' && r.status === 200), `${setting} ${k}: ${r.status} ${r.text || r.error}`);
      if (r.status === 503) assert.ok(Number(r.headers['retry-after']) > 0, `${setting} ${k}: Retry-After`);
      // names: 2 database hosts within connect_timeout (2 s) per handle; the Redis sentinels
      // 0.5 s in all
      assert.ok(r.ms < (k === 'ready' ? 12000 : 6000), `${setting} ${k} took ${r.ms} ms`);
    }
    assert.equal(res.live.status, 200, `${setting} live`);
    assert.ok(res.live.ms < 2000, `${setting} live took ${res.live.ms} ms`);
  }
  row('DNS server that does not answer (app3)', cols);
  assert.match(logSince(dnsLog, 0), /udp query r[123]\.th-cluster\.test/, 'and the sentinel names');
});

// The 3-master Redis Cluster (each master with a replica on another Redis host: r1, r2, r3
// run one node of each) instead of the sentinel pair: every Redis user (both hubs, then each
// app host's pools, edge, front and th-bridge) is started again with TH_REDIS_CLUSTER. Mixed
// load (REST writes and reads, chat over REST) and chat over MQTT (plugin and th-bridge on the
// cluster), then kill -9 of one master: only its slots fail until the cluster promotes its
// replica (cluster-node-timeout 2 s; cluster-require-full-coverage no), bounded 503s, then
// service; no 500; every receipted chat message stored once. Last step: the processes stay
// on the cluster afterwards.
const RC_PORT = PORT + 57;
const RC_HOST = { '10.77.0.31': 'r1', '10.77.0.32': 'r2', '10.77.0.33': 'r3' };
const rcMasters = async () => (await ctl('rc-masters')).split('\n').filter(Boolean);

// In the short run too: it costs ~35 s.
test('Redis Cluster: every process on 3 masters with replicas, kill -9 one master under load: its replica is promoted, bounded 503s, then service', async () => {
  await ensureHealthy();
  let t = Date.now();
  await ctl('rcluster-up');
  const upS = (Date.now() - t) / 1000;
  t = Date.now();
  await ctl('redis-to-cluster');
  await ensureHealthy();
  const switchS = (Date.now() - t) / 1000;
  // on the cluster from the start: register on app1, log in on app2
  const u = await newUser({ server: 'app1' });
  const login = await api('POST', '/api/auth/login', null, { login: u.username, password: u.password }, { server: 'app2' });
  assert.equal(login.status, 200, `login on app2 with Redis Cluster: ${login.status} ${login.text}`);
  const masters = await rcMasters();
  assert.equal(masters.length, 3, `masters: ${masters}`);
  // the master of the first load user's post budget (th:rl:post:<uid>, fcgi-apps/lib/userlimits.c):
  // every post of that user asks it
  const victim = await ctl('rc-master-of', `th:rl:post:${world.users[0].id}`);
  assert.ok(masters.includes(victim), `master of the user's post budget: ${victim} (masters ${masters})`);
  const [vAddr, vPort] = victim.split(':');
  const sender = new ChatSender(world.users[1], world.channel, { urls: [WS], resendMs: 5000 });
  await sender.start();
  const iv = setInterval(() => sender.send(), 250);
  // the Redis errors the processes log about the killed node: how often a call missed it
  const logs = APP_HOSTS.flatMap((h) => ['auth.log', 'community.log', 'realtime.log', 'media.log',
    `mosquitto-${EDGE_OF[h]}.log`, 'bridge.log'].map((f) => hostLog(h, f)));
  const from = Object.fromEntries(logs.map((f) => [f, logSize(f)]));
  let r;
  let killedAt;
  let promoted;
  try {
    r = await underLoad(25000, 4000, async () => {
      await ctl('rc-kill', RC_HOST[vAddr], vPort);
      killedAt = Date.now();
      // when the cluster lists three masters again, the killed one not among them
      promoted = (async () => {
        try {
          await waitFor('the replica promoted', async () => {
            const m = await rcMasters();
            return m.length === 3 && !m.includes(victim);
          }, 20000, 200);
          return Date.now();
        } catch { return null; }
      })();
    });
  } finally {
    clearInterval(iv);
  }
  const promotedAt = await promoted;
  const missedLines = logs.flatMap((f) => logSince(f, from[f]).split('\n').filter((l) => l.includes(`redis: ${victim}:`)));
  const missed = missedLines.length;
  // posts let through without their budget while its master was gone (limits fail open)
  const openLimits = logs.reduce((n, f) => n + logSince(f, from[f]).split('\n')
    .filter((l) => l.includes('limits: Redis unavailable')).length, 0);
  // the last such line of the apps (ISO timestamps; the brokers log whole seconds)
  const lastMiss = Math.max(0, ...missedLines.map((l) => Date.parse(l.slice(0, 24))).filter(Number.isFinite));
  const { load, t0 } = r;
  const mastersAfter = await rcMasters();
  // the killed node comes back (empty: no persistence) as a replica of its replacement
  await ctl('rc-up', RC_HOST[vAddr], vPort);
  await waitFor('every cluster node ok, each master with a replica', async () => {
    try { await ctl('rc-ok'); return true; } catch { return false; }
  }, 30000, 1000);
  const end = Date.now() + 40000;
  while (Date.now() < end && sender.pending.size) await sleep(200);
  const s = load.summary(t0);
  const tail = load.summary(t0 + 15000);
  const chat = await chatStoredOnce(load);
  const sent = sender.sent;
  const out = sent.length
    ? await ctl('psql', `SELECT count(*), count(DISTINCT id) FROM messages WHERE id IN (${sent.map((id) => `'${id}'`).join(',')})`)
    : '0|0';
  const [rows, distinct] = out.split('|').map(Number);
  const pending = sender.pending.size;
  sender.stop();
  row('Redis Cluster: one master killed (replica promoted)', {
    cluster_up_s: upS.toFixed(1),
    switch_to_cluster_s: switchS.toFixed(1),
    killed: victim,
    masters_after: mastersAfter.join(' '),
    replica_promoted_after_s: promotedAt ? ((promotedAt - killedAt) / 1000).toFixed(1) : 'no',
    redis_errors_logged: missed,
    last_error_logged_after_s: lastMiss ? ((lastMiss - killedAt) / 1000).toFixed(1) : '-',
    limits_failed_open: openLimits,
    requests: s.total,
    failed: s.bad,
    s503: s.s503,
    s500: s.s500,
    s502_504: s.s504,
    all_ok_after_s: recoveredS(s, t0).toFixed(1),
    max_request_ms: s.maxMs,
    chat_rest_receipted: chat.receipted,
    chat_rest_missing: chat.missing,
    chat_rest_dup: chat.duplicated,
    mqtt_sent: sent.length,
    mqtt_receipted: sent.length - pending,
    mqtt_rows: rows,
    mqtt_distinct: distinct,
  });
  assert.ok(missed > 0, 'the processes use the cluster: they logged the killed master');
  assert.equal(s.s500, 0, 'no 500');
  assert.equal(mastersAfter.length, 3, `three masters after the kill: ${mastersAfter}`);
  assert.ok(!mastersAfter.includes(victim), `the killed master's replica took over: ${mastersAfter}`);
  assert.equal(tail.bad, 0, `failures 15 s after the master went: ${JSON.stringify(tail.by)}`);
  assert.equal(chat.missing + chat.duplicated, 0, 'REST chat stored once');
  assert.equal(pending, 0, `MQTT chat not receipted: ${sender.diag()}`);
  assert.equal(distinct, sent.length, 'every MQTT message stored');
  assert.equal(rows, sent.length, 'and stored once');
});
