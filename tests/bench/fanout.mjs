#!/usr/bin/env node
// Notification fan-out of one post: the service account listens on every inbox
// (user/+/inbox at the hub), one post is created in a community whose members have level
// `all`, and the time until the last member's `notification` event arrives is measured.
//
//   node tests/bench/fanout.mjs --base URL --hub mqtt://HOST:PORT --secret-file F
//        --token T --community ID --members N [--timeout-s 120]
//
// Prints one JSON line: {post_ms, last_ms, events, missing}. Bounded: it gives up after
// --timeout-s (missing then counts who got nothing).
import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';

function args(argv) {
  const a = { timeout: 120 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i], v = argv[i + 1];
    if (k === '--base') a.base = v;
    else if (k === '--hub') a.hub = v;
    else if (k === '--secret-file') a.secret = readFileSync(v, 'utf8').trim();
    else if (k === '--token') a.token = v;
    else if (k === '--community') a.community = Number(v);
    else if (k === '--members') a.members = Number(v);
    else if (k === '--timeout-s') a.timeout = Number(v);
    else throw new Error(`unknown argument ${k}`);
    i++;
  }
  if (!a.base || !a.hub || !a.secret || !a.token || !a.community || !a.members) {
    throw new Error('usage: fanout.mjs --base URL --hub URL --secret-file F --token T --community ID --members N');
  }
  return a;
}

async function main() {
  const a = args(process.argv.slice(2));
  const client = mqtt.connect(a.hub, {
    protocolVersion: 5, clientId: `th-bench-fanout-${process.pid}`, username: 'th-service', password: a.secret,
    reconnectPeriod: 0, connectTimeout: 10000, clean: true,
  });
  await new Promise((resolve, reject) => { client.once('connect', resolve); client.once('error', reject); });
  await client.subscribeAsync('user/+/inbox', { qos: 1 });
  const told = new Set();
  let postId = null, sent = 0, last = 0;
  const early = [];
  const count = (ev, at) => {
    if (ev.type !== 'notification' || ev.notification?.type !== 'post') return;
    if (ev.notification.post_id !== postId) return;
    if (!told.has(ev.user_id)) { told.add(ev.user_id); last = at; }
  };
  client.on('message', (topic, payload) => {
    let ev;
    try { ev = JSON.parse(payload.toString('utf8')); } catch { return; }
    const at = performance.now();
    if (postId === null) early.push([ev, at]); else count(ev, at);
  });
  sent = performance.now();
  const res = await fetch(`${a.base}/api/communities/${a.community}/posts`, {
    method: 'POST',
    headers: { authorization: `Bearer ${a.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ title: 'fan-out', body: 'a post every member hears of' }),
  });
  const postMs = performance.now() - sent;
  const body = await res.json();
  if (res.status !== 201) throw new Error(`POST answers ${res.status}: ${JSON.stringify(body)}`);
  postId = body.id;
  for (const [ev, at] of early.splice(0)) count(ev, at);
  const deadline = Date.now() + a.timeout * 1000;
  while (told.size < a.members && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  client.end(true);
  process.stdout.write(`${JSON.stringify({
    post_ms: postMs, last_ms: told.size ? last - sent : NaN, events: told.size, missing: a.members - told.size,
  })}\n`);
}

main().catch((e) => { process.stderr.write(`fanout.mjs: ${e.message}\n`); process.exit(2); });
