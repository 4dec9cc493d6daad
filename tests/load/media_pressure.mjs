#!/usr/bin/env node
// tests/load/media_pressure.mjs: one user uploads many large-pixel PNGs at once; how long do
// another user's small uploads and GET /api/media/health take meanwhile? (issue 17, point 5:
// both within 1 s p99.)
//
//   TH_PORT_BASE=<a running stack's port base> node tests/load/media_pressure.mjs [SECONDS] [PARALLEL]
//
// SECONDS (default 60, at most 600): how long the pressure lasts. PARALLEL (default 8, at most
// 32): the heavy user's uploads in flight at once, each a 7000x7000 PNG (49 MP, under the
// 50 MP limit; a different file every time), sent again 100 ms after each answer (201, or
// 429 when the user's or the host's image budget is spent).
// Each user sends from an address of its own (two clients; nginx limits per address).
// Meanwhile the other user, one request at a time: a small PNG upload (64x64), then
// /api/media/health, then 100 ms of rest, over and over. Both users register from their own
// address (127.77.x.y) so no test's registration limit is touched.
// Prints, per kind of request: count, statuses, p50 / p95 / p99 / max in ms; exits 1 when the
// other user's p99 is over 1000 ms or any of its requests failed. Bounded: SECONDS of
// pressure, then the answers still in flight (each at most 300 s).
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { request } from '../integration/lib/http.mjs';
import { PNG_SIGNATURE, pngChunk } from '../integration/lib/media.mjs';

const SECONDS = Math.min(Math.max(Number(process.argv[2] || 60), 1), 600);
const PARALLEL = Math.min(Math.max(Number(process.argv[3] || 8), 1), 32);
const MAX_REQUESTS = 100000; // a bound besides the clock

// A 1-bit grey picture, w x h, with a few random bytes so that every file is new.
function png(w, h) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 1;
  const stride = Math.ceil(w / 8) + 1;
  const rows = Buffer.alloc(stride * h, 0xff);
  for (let y = 0; y < h; y++) rows[y * stride] = 0;
  crypto.randomBytes(Math.min(16, stride - 1)).copy(rows, stride * (h >> 1) + 1); // within one row
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', zlib.deflateSync(rows, { level: 9 })),
    pngChunk('IEND', Buffer.alloc(0))]);
}

async function register(prefix, addr) {
  const username = `${prefix}_${crypto.randomBytes(5).toString('hex')}`;
  const res = await request('POST', '/api/auth/register', {
    body: { email: `${username}@example.test`, username, password: `pw-${username}-S3cret` }, localAddress: addr,
  });
  if (res.status !== 201) throw new Error(`register: ${res.status} ${res.text}`);
  return res.json.access_token;
}

const stats = {};
function record(kind, status, ms) {
  stats[kind] ??= { n: 0, statuses: {}, ms: [] };
  const s = stats[kind];
  s.n += 1;
  s.statuses[status] = (s.statuses[status] || 0) + 1;
  s.ms.push(ms);
}
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

async function timed(kind, fn) {
  const t0 = performance.now();
  let status;
  try { status = (await fn()).status; } catch (e) { status = `error:${e.message.slice(0, 40)}`; }
  record(kind, status, performance.now() - t0);
  return status;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const n = crypto.randomInt(1, 250);
  // two clients: each user sends from its own address (nginx's limits are per address)
  const heavyAddr = `127.77.${n}.1`;
  const otherAddr = `127.77.${n}.2`;
  const heavy = await register('press_heavy', heavyAddr);
  const other = await register('press_other', otherAddr);
  const big = () => png(7000, 7000);
  const end = Date.now() + SECONDS * 1000;
  let requests = 0;
  const up = (token, bytes, name, localAddress) => request('POST', `/api/media?filename=${name}`, {
    headers: { authorization: `Bearer ${token}` }, body: bytes, timeoutMs: 300000, localAddress,
  });
  const heavyLoop = async () => {
    while (Date.now() < end && requests++ < MAX_REQUESTS) {
      await timed('heavy upload 49 MP', () => up(heavy, big(), 'big.png', heavyAddr));
      await sleep(100);
    }
  };
  const otherLoop = async () => {
    await sleep(2000); // the heavy uploads are under way
    while (Date.now() < end && requests++ < MAX_REQUESTS) {
      await timed('other user: small upload', () => up(other, png(64, 64), 'small.png', otherAddr));
      await timed('other user: /api/media/health', () => request('GET', '/api/media/health', { timeoutMs: 30000, localAddress: otherAddr }));
      await sleep(100);
    }
  };
  console.error(`media_pressure: ${SECONDS}s, ${PARALLEL} heavy uploads in flight`);
  await Promise.all([...Array.from({ length: PARALLEL }, heavyLoop), otherLoop()]);
  let fail = false;
  for (const [kind, s] of Object.entries(stats)) {
    const sorted = [...s.ms].sort((a, b) => a - b);
    const line = `${kind}: n=${s.n} statuses=${JSON.stringify(s.statuses)} p50=${pct(sorted, 50).toFixed(1)}ms `
      + `p95=${pct(sorted, 95).toFixed(1)}ms p99=${pct(sorted, 99).toFixed(1)}ms max=${sorted[sorted.length - 1].toFixed(1)}ms`;
    console.log(line);
    if (kind.startsWith('other')) {
      const ok = kind.endsWith('health') ? '200' : '201';
      if (pct(sorted, 99) > 1000 || Object.keys(s.statuses).some((k) => k !== ok)) fail = true;
    }
  }
  process.exit(fail ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(2); });
