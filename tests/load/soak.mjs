// Soak: mixed load on a running stack for a set time, the resident memory and open
// descriptors of every process of the stack sampled at a fixed interval, and a verdict.
//
//   node tests/load/soak.mjs            (scripts/soak starts the stack and runs this)
//   SOAK_TIME      seconds of load (default 3600)
//   SOAK_SAMPLE    seconds between samples (default 60)
//   SOAK_WARMUP    seconds before the baseline sample (default: a fifth of SOAK_TIME, >= 1 sample)
//   SOAK_USERS     users taking part (default 24)
//   SOAK_OUT       where the JSON result goes (default $TH_VAR_DIR/soak.json)
//
// The load, paced to stay under every per-user limit of API.md (a soak measures growth, not
// throughput, and a refused request exercises less code):
//   REST reads   feed, one post, channel history, /api/auth/me       ~20/s
//   REST writes  posts, comments, messages, reactions                 ~4/s
//   MQTT chat    every user connected, subscribed to the channel, publishing ~1 per 3 s
//   uploads      a small PNG                                          ~1 per 2 s
//   logins       the right password                                   ~1/s
// Tokens are renewed by login every 10 minutes and MQTT clients reconnect when the broker
// closes them (an access token lives 15 minutes).
//
// Verdict, per process (its pid file's role, or the parent's for children), between the first
// and the last quarter of the time after the warm-up (verdict() says why two windows): its
// anonymous resident memory (RssAnon: the heap, where a leak shows; RSS also counts shared
// memory a PostgreSQL backend merely touches) may not grow by more than max(RSS_BOUND_MIB MiB,
// RSS_BOUND_PCT % of its RSS), its descriptor count by more than max(FD_BOUND, 10 %) — a leak
// of one a request would show thousands — and no process of the stack but PostgreSQL's own
// (backends, autovacuum workers come and go) may die or be replaced (a worker crash restarts
// it under multiwatch). Failed requests (5xx, no answer) beyond 0.1 % fail it too. Exit 0 when
// it holds, 1 when not; the table is printed either way. `--verdict FILE` judges a saved
// result (SOAK_OUT) again.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import mqtt from 'mqtt';
import {
  request, PORT_BASE, VAR_DIR, sleep,
} from '../integration/lib/http.mjs';

const env = (k, d) => (process.env[k] ? Number(process.env[k]) : d);
const SAVED = process.argv[2] === '--verdict' ? JSON.parse(readFileSync(process.argv[3], 'utf8')) : null;
const SOAK_TIME = SAVED ? SAVED.SOAK_TIME : env('SOAK_TIME', 3600);
const SAMPLE = SAVED ? SAVED.SAMPLE : env('SOAK_SAMPLE', 60);
const WARMUP = SAVED ? SAVED.WARMUP : env('SOAK_WARMUP', Math.max(SAMPLE, Math.round(SOAK_TIME / 5)));
const USERS = SAVED ? SAVED.USERS : env('SOAK_USERS', 24);
const OUT = process.env.SOAK_OUT || path.join(VAR_DIR, 'soak.json');
const RSS_BOUND_MIB = 8;
const RSS_BOUND_PCT = 10;
const FD_BOUND = 8;
const WS_URL = `ws://127.0.0.1:${PORT_BASE}/mqtt`;

const t0 = Date.now();
const elapsed = () => (Date.now() - t0) / 1000;
const log = (...a) => console.log(`[soak ${elapsed().toFixed(0).padStart(5)}s]`, ...a);

// ---- processes of the stack ---------------------------------------------------------

function readPid(file) {
  try {
    const n = Number(readFileSync(file, 'utf8').split('\n')[0].trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch { return null; }
}

// every pid of the stack: the pid files' processes and their descendants, each labelled
// role/comm (e.g. "media/th-media", "postgres/postgres")
function stackProcesses() {
  const roots = new Map();
  const run = path.join(VAR_DIR, 'run');
  for (const f of readdirSync(run)) {
    if (!f.endsWith('.pid')) continue;
    const pid = readPid(path.join(run, f));
    if (pid) roots.set(pid, f.slice(0, -4));
  }
  const pg = readPid(path.join(VAR_DIR, 'pg/data/postmaster.pid'));
  if (pg) roots.set(pg, 'postgres');
  const parent = new Map();
  const comm = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      comm.set(Number(d), stat.slice(stat.indexOf('(') + 1, close));
      parent.set(Number(d), Number(stat.slice(close + 2).split(' ')[1]));
    } catch { /* gone meanwhile */ }
  }
  const out = new Map();
  for (const [pid] of comm) {
    // nginx's cache loader exits by design a minute after start
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('cache loader')) continue;
    } catch { continue; }
    let p = pid;
    for (let depth = 0; p > 1 && depth < 8; depth += 1) {
      if (roots.has(p)) {
        out.set(pid, `${roots.get(p)}/${comm.get(pid)}`);
        break;
      }
      p = parent.get(p);
    }
  }
  return out;
}

function sampleOne(pid) {
  try {
    const st = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = Number(/VmRSS:\s+(\d+)/.exec(st)?.[1] || 0);
    const anon = Number(/RssAnon:\s+(\d+)/.exec(st)?.[1] || 0);
    const fds = readdirSync(`/proc/${pid}/fd`).length;
    return { rss_kib: rss, anon_kib: anon, fds };
  } catch { return null; }
}

function sample() {
  const s = { t: Math.round(elapsed()), procs: {} };
  for (const [pid, label] of stackProcesses()) {
    const v = sampleOne(pid);
    if (v) s.procs[pid] = { label, ...v };
  }
  return s;
}

// ---- the load -----------------------------------------------------------------------

const counts = { ok: 0, limited: 0, failed: 0, by: {} };
function note(kind, res) {
  const b = (counts.by[kind] ??= { ok: 0, limited: 0, failed: 0 });
  if (res && res.status < 400) { counts.ok += 1; b.ok += 1; return; }
  if (res && res.status === 429) { counts.limited += 1; b.limited += 1; return; }
  counts.failed += 1;
  b.failed += 1;
  if (b.failed <= 5) log(`${kind} failed: ${res ? `${res.status} ${res.text.slice(0, 160)}` : 'no answer'}`);
}

async function call(kind, method, p, user, body, o = {}) {
  const headers = { ...(o.headers || {}) };
  if (user) headers.authorization = `Bearer ${user.token}`;
  let res = null;
  try {
    res = await request(method, p, { ...o, headers, body, timeoutMs: 30000 });
  } catch (e) {
    if (counts.failed < 5) log(`${kind}: ${e.message}`);
  }
  note(kind, res);
  return res;
}

// a 64x48 PNG made once with ImageMagick (a media upload goes through MagickWand)
function smallPng() {
  return execFileSync('convert', ['-size', '64x48', 'gradient:blue-yellow', 'png:-']);
}

async function login(u) {
  const res = await call('login', 'POST', '/api/auth/login', null, { login: u.username, password: u.password });
  if (res && res.status === 200) u.token = res.json.access_token;
}

function connectMqtt(u, channel, stop) {
  const c = mqtt.connect(WS_URL, {
    protocolVersion: 5, clientId: `u${u.id}-soak`, username: 'x', password: u.token,
    reconnectPeriod: 2000, connectTimeout: 10000, keepalive: 30, clean: true,
  });
  // the broker closes a connection whose token expired: reconnect with the current one
  c.on('close', () => { c.options.password = u.token; });
  c.on('connect', () => c.subscribe(`chat/${channel}/+`, { qos: 1 }));
  c.on('message', () => { counts.delivered = (counts.delivered || 0) + 1; });
  c.on('error', () => {});
  stop.push(() => c.end(true));
  return c;
}

// run fn every periodMs until the end, never two at once
async function every(periodMs, until, fn) {
  while (Date.now() < until) {
    const start = Date.now();
    await fn();
    await sleep(Math.max(0, periodMs - (Date.now() - start)));
  }
}

async function main() {
  log(`stack ${VAR_DIR} port ${PORT_BASE}: ${SOAK_TIME}s of load, a sample every ${SAMPLE}s, warm-up ${WARMUP}s, ${USERS} users`);
  const users = [];
  for (let i = 0; i < USERS; i += 1) {
    const username = `soak_${process.pid}_${i}`;
    const u = { username, password: `pw-${username}-S3cret` };
    const res = await request('POST', '/api/auth/register', {
      body: { email: `${username}@example.test`, username, password: u.password },
      localAddress: `127.77.${i >> 8}.${(i & 255) + 1}`,
    });
    if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${res.text}`);
    u.id = res.json.user.id;
    u.token = res.json.access_token;
    users.push(u);
  }
  const owner = users[0];
  const slug = `soak-${process.pid}`;
  const cres = await call('setup', 'POST', '/api/communities', owner, { slug, name: `Soak ${slug}`, visibility: 'public' });
  if (!cres || cres.status !== 201) throw new Error(`community: ${cres && cres.text}`);
  const cid = cres.json.id;
  for (const u of users.slice(1)) await call('setup', 'POST', `/api/communities/${cid}/join`, u);
  const chs = await call('setup', 'GET', `/api/communities/${cid}/channels`, owner);
  const channel = chs.json.items.find((x) => x.name === 'general').id;
  const png = smallPng();

  const end = t0 + SOAK_TIME * 1000;
  const stop = [];
  const clients = users.map((u) => connectMqtt(u, channel, stop));
  const posts = [];
  const samples = [];
  // Each loop turns through the users with its own counter, and the write loop through the
  // kinds of write once per round of users: every user writes each kind in turn, at a
  // quarter of the loop's rate divided among the users (posts: 2.5 a minute a user).
  let rr = 0;
  const turn = () => { const n = rr++; return { u: users[n % users.length], k: Math.floor(n / users.length) }; };
  let wr = 0;

  const loops = [
    // sampling
    every(SAMPLE * 1000, end - SAMPLE * 500, async () => {
      const s = sample();
      samples.push(s);
      const n = Object.keys(s.procs).length;
      log(`sample: ${n} processes, ok ${counts.ok}, limited ${counts.limited}, failed ${counts.failed}, chat delivered ${counts.delivered || 0}`);
    }),
    // REST reads
    every(50, end, async () => {
      const { u, k: round } = turn();
      const pick = (rr + round) % 4;
      if (pick === 0) await call('feed', 'GET', `/api/communities/${cid}/posts`, u);
      else if (pick === 1 && posts.length) await call('post', 'GET', `/api/posts/${posts[rr % posts.length]}`, u);
      else if (pick === 2) await call('history', 'GET', `/api/channels/${channel}/messages?limit=50`, u);
      else await call('me', 'GET', '/api/auth/me', u);
    }),
    // REST writes: each user writes at most once every USERS/4 s, under every per-user limit
    every(250, end, async () => {
      const n = wr++;
      const u = users[n % users.length];
      const pick = Math.floor(n / users.length) % 4;
      if (pick === 0 || !posts.length) {
        const r = await call('post_create', 'POST', `/api/communities/${cid}/posts`, u, { title: 'soak', body: `soak post ${rr}` });
        if (r && r.status === 201) { posts.push(r.json.id); if (posts.length > 200) posts.shift(); }
      } else if (pick === 1) {
        await call('comment', 'POST', `/api/posts/${posts[rr % posts.length]}/comments`, u, { body: `soak comment ${rr}` });
      } else if (pick === 2) {
        await call('message', 'POST', `/api/channels/${channel}/messages`, u, { id: crypto.randomUUID(), body: `soak message ${rr}` });
      } else {
        const e = ['👍', '🎉', '🔥'][rr % 3];
        await call('reaction', 'PUT', `/api/posts/${posts[rr % posts.length]}/reactions/${encodeURIComponent(e)}`, u);
      }
    }),
    // MQTT chat
    every(3000 / USERS, end, async () => {
      const i = (rr++) % users.length; // one user after the other: 1 per 3 s each
      const c = clients[i];
      if (!c.connected) return;
      const u = users[i];
      c.publish(`chat/${channel}/${u.id}`, JSON.stringify({ id: crypto.randomUUID(), body: `soak chat ${rr}` }), { qos: 1 });
      counts.published = (counts.published || 0) + 1;
    }),
    // uploads
    every(2000, end, async () => {
      await call('upload', 'POST', `/api/media?community_id=${cid}&filename=soak.png`, turn().u, png, { headers: { 'content-type': 'image/png' } });
    }),
    // logins, and every user's token renewed every 10 minutes
    every(1000, end, async () => { await login(turn().u); }),
  ];
  await Promise.all(loops);
  await sleep(2000); // what was in flight settles
  samples.push(sample());
  log(`last sample: ok ${counts.ok}, limited ${counts.limited}, failed ${counts.failed}`);
  for (const f of stop) f();
  return samples;
}

// Growth is judged between two windows after the warm-up, its first and its last quarter (at
// least one sample each): a process grew when the least it held in the last window exceeds
// the most it held in the first by more than the bound. A leak grows steadily and shows; a
// value that comes and goes does not: PostgreSQL's checkpointer opens a file per segment
// while it writes (8 -> 321 -> 9 in one hour-long run), nginx's descriptors follow the
// connections open at the moment of the sample.
function verdict(samples, counts) {
  const after = samples.filter((s) => s.t >= WARMUP);
  const post = after.length >= 2 ? after : samples.slice(-2);
  const q = Math.max(1, Math.floor(post.length / 4));
  const first = post.slice(0, q);
  const lastW = post.slice(-q);
  const base = first[0];
  const last = post[post.length - 1];
  const rows = [];
  let bad = 0;
  const span = (w, pid, k, f) => w.map((s) => s.procs[pid]?.[k]).filter((v) => v !== undefined).reduce((a, v) => f(a, v));
  for (const [pid, b] of Object.entries(base.procs)) {
    const l = last.procs[pid];
    const row = { pid, label: b.label, rss0: b.rss_kib, anon0: b.anon_kib, fds0: b.fds };
    const pgOwn = /\/postgres$/.test(b.label);
    if ((!l || l.label !== b.label) && pgOwn) continue;
    if (!l || l.label !== b.label) {
      row.problem = 'gone (died or was replaced)';
      bad += 1;
      rows.push(row);
      continue;
    }
    Object.assign(row, { rss1: l.rss_kib, anon1: l.anon_kib, fds1: l.fds });
    const rssBound = Math.max(RSS_BOUND_MIB * 1024, (b.rss_kib * RSS_BOUND_PCT) / 100);
    const fdBound = Math.max(FD_BOUND, b.fds / 10);
    const anonGrowth = span(lastW, pid, 'anon_kib', Math.min) - span(first, pid, 'anon_kib', Math.max);
    const fdGrowth = span(lastW, pid, 'fds', Math.min) - span(first, pid, 'fds', Math.max);
    if (anonGrowth > rssBound) row.problem = `anonymous RSS +${(anonGrowth / 1024).toFixed(1)} MiB > ${(rssBound / 1024).toFixed(1)}`;
    else if (fdGrowth > fdBound) row.problem = `fds +${fdGrowth} > ${fdBound.toFixed(0)}`;
    if (row.problem) bad += 1;
    rows.push(row);
  }
  for (const [pid, l] of Object.entries(last.procs)) {
    if (!base.procs[pid] && !/\/postgres$/.test(l.label)) {
      // a new process after warm-up: a worker restarted (PostgreSQL forks backends as it likes)
      rows.push({ pid, label: l.label, rss1: l.rss_kib, fds1: l.fds, problem: 'new after warm-up (a restart?)' });
      bad += 1;
    }
  }
  const total = counts.ok + counts.limited + counts.failed;
  const failRate = total ? counts.failed / total : 1;
  return {
    ok: bad === 0 && failRate <= 0.001, rows, bad, failRate, baseT: base.t, lastT: last.t, windows: q,
  };
}

// per role: processes, summed RSS and fds at the baseline and at the end
function summary(v) {
  const roles = new Map();
  for (const r of v.rows) {
    const k = r.label;
    const a = roles.get(k) || {
      n: 0, rss0: 0, rss1: 0, anon0: 0, anon1: 0, fds0: 0, fds1: 0, problems: 0,
    };
    a.n += 1; a.rss0 += r.rss0 || 0; a.rss1 += r.rss1 || 0; a.fds0 += r.fds0 || 0; a.fds1 += r.fds1 || 0;
    a.anon0 += r.anon0 || 0; a.anon1 += r.anon1 || 0;
    if (r.problem) a.problems += 1;
    roles.set(k, a);
  }
  const mib = (k) => `${(k / 1024).toFixed(1)}`;
  const lines = ['| process (role/name) | n | RSS MiB warm-up → end | anon MiB warm-up → end | fds warm-up → end | over bound |', '|---|---|---|---|---|---|'];
  for (const [k, a] of [...roles].sort()) {
    lines.push(`| ${k} | ${a.n} | ${mib(a.rss0)} → ${mib(a.rss1)} | ${mib(a.anon0)} → ${mib(a.anon1)} | ${a.fds0} → ${a.fds1} | ${a.problems} |`);
  }
  return lines.join('\n');
}

function report(samples, counts, out) {
  const v = verdict(samples, counts);
  if (out) writeFileSync(out, JSON.stringify({ SOAK_TIME, SAMPLE, WARMUP, USERS, counts, samples, verdict: v }, null, 1));
  console.log(`\nsoak: ${SOAK_TIME}s, samples ${samples.length}, after warm-up from ${v.baseT}s to ${v.lastT}s (windows of ${v.windows}); requests ok ${counts.ok}, rate-limited ${counts.limited}, failed ${counts.failed}; chat published ${counts.published || 0}, delivered ${counts.delivered || 0}`);
  console.log(`bounds: least in the last window - most in the first: anonymous RSS <= max(${RSS_BOUND_MIB} MiB, ${RSS_BOUND_PCT} % of RSS), fds <= max(${FD_BOUND}, 10 %); no process gone or new; failed requests <= 0.1 %\n`);
  console.log(summary(v));
  for (const r of v.rows.filter((x) => x.problem)) console.log(`over bound: ${r.label} pid ${r.pid}: ${r.problem}`);
  for (const [k, b] of Object.entries(counts.by)) if (b.failed || b.limited) console.log(`  ${k}: ok ${b.ok}, limited ${b.limited}, failed ${b.failed}`);
  console.log(`\nsoak: ${v.ok ? 'PASSED' : 'FAILED'}${out ? ` (result in ${out})` : ''}`);
  return v.ok;
}

// node tests/load/soak.mjs --verdict FILE: judge the samples of an earlier run again
if (process.argv[2] === '--verdict') {
  process.exit(report(SAVED.samples, SAVED.counts, null) ? 0 : 1);
}
const samples = await main().catch((e) => { console.error(`soak: ${e.stack || e}`); process.exit(2); });
if (samples.length < 2) {
  console.error(`soak: ${samples.length} sample(s): SOAK_TIME must span at least two SOAK_SAMPLE periods`);
  process.exit(2);
}
process.exit(report(samples, counts, OUT) ? 0 : 1);
