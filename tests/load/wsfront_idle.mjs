// Memory of the WebSocket front per idle connection, the front alone: starts build/bin/th-wsfront
// on its own port in front of a stand-in edge (a TCP server in this process that answers
// every CONNECT with a CONNACK and then holds the connection), opens N WebSocket clients
// (handshake, MQTT CONNECT with keepalive 0) from several 127.x addresses, and reports the
// front's RSS (master + workers, /proc) before and after, per connection.
//
//   node tests/load/wsfront_idle.mjs [N=4000] [port=29400] [addresses=16]
//
// addresses: how many distinct source addresses (each distinct address takes a slot of the
// front's shared per-address table, whose pages then count in every worker's RSS).
//
// Bounded: N ≤ 9000 (this process holds 2 descriptors per client under the 20,000 cap), a
// 60 s deadline for the connects; loopback only; everything it started is stopped at the end.
import net from 'node:net';
import crypto from 'node:crypto';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

const N = Math.min(Number(process.argv[2] || 4000), 9000);
const PORT = Number(process.argv[3] || 29400);
const ADDRS = Math.max(1, Math.min(Number(process.argv[4] || 16), 9000));
const EDGE = PORT + 1;
const BIN = process.env.TH_BIN_DIR || path.join(path.dirname(new URL(import.meta.url).pathname), '../../build/bin');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function rssOf(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}
function children(ppid) {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    try { return Number(readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1].split(' ')[1]) === ppid; } catch { return false; }
  }).map(Number);
}
const frontRss = (pid) => [pid, ...children(pid)].reduce((s, p) => s + rssOf(p), 0);

// the stand-in edge: a CONNACK for each CONNECT, then silence
const edgeSocks = new Set();
const edge = net.createServer((s) => {
  edgeSocks.add(s);
  s.once('data', () => s.write(Buffer.from([0x20, 0x02, 0x00, 0x00])));
  s.on('error', () => {});
  s.on('close', () => edgeSocks.delete(s));
});
await new Promise((r) => edge.listen(EDGE, '127.0.0.1', r));

const front = spawn(path.join(BIN, 'th-wsfront'), [], {
  env: {
    ...process.env, TH_WS_PORT: String(PORT), TH_WS_EDGES: `127.0.0.1:${EDGE}`, TH_WS_FRONTS: '2',
    TH_WS_MAX_PER_ADDR: '10000', TH_WS_HANDSHAKE_S: '60', TH_LOG_LEVEL: 'warn',
  },
  stdio: ['ignore', 'inherit', 'inherit'],
});
await sleep(500);

function connectPacket(clientId) {
  const str = (b) => Buffer.concat([Buffer.from([b.length >> 8, b.length & 255]), b]);
  const body = Buffer.concat([str(Buffer.from('MQTT')), Buffer.from([4, 0x02, 0, 0]), str(Buffer.from(clientId))]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}
function maskedFrame(payload) {
  const key = crypto.randomBytes(4);
  const b = Buffer.from(payload);
  for (let i = 0; i < b.length; i += 1) b[i] ^= key[i & 3];
  return Buffer.concat([Buffer.from([0x82, 0x80 | b.length]), key, b]);
}

function client(i) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port: PORT, host: '127.0.0.1', localAddress: `127.77.${((i % ADDRS) >> 8) & 255}.${((i % ADDRS) & 255) + 1}` });
    let got = Buffer.alloc(0);
    s.on('error', reject);
    s.on('connect', () => s.write(`GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n`));
    s.on('data', (d) => {
      got = Buffer.concat([got, d]);
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!got.subarray(0, 12).toString().includes('101')) { reject(new Error(got.toString())); return; }
      const rest = got.subarray(end + 4);
      if (!s.sentConnect) { s.sentConnect = true; s.write(maskedFrame(connectPacket(`u${i + 1}-idle`))); }
      if (rest.length >= 6) { s.removeAllListeners('data'); resolve(s); } // 2-byte frame head + CONNACK
    });
  });
}

const rss0 = frontRss(front.pid);
const t0 = Date.now();
const socks = [];
for (let i = 0; i < N && Date.now() - t0 < 60000; i += 100) {
  socks.push(...await Promise.all(Array.from({ length: Math.min(100, N - i) }, (_, k) => client(i + k))));
}
const tConnect = Date.now() - t0;
await sleep(1000);
const rss1 = frontRss(front.pid);
console.log(JSON.stringify({
  connections: socks.length, addresses: ADDRS, edge_connections: edgeSocks.size, connect_ms: tConnect,
  front_rss_kib_before: rss0, front_rss_kib_after: rss1,
  bytes_per_connection: Math.round(((rss1 - rss0) * 1024) / socks.length),
}));
for (const s of socks) s.destroy();
front.kill('SIGTERM');
await new Promise((r) => front.on('exit', r));
edge.close();
for (const s of edgeSocks) s.destroy();
