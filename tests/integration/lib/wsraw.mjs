// A WebSocket client by hand, for the tests of the WebSocket front (wsfront.test.mjs): the
// upgrade request with any headers from any local address, masked frames of any size and
// opcode (including ones a real client would never send), the server's frames parsed as
// they come, and raw MQTT packets to put in them. Every wait has a deadline.
import net from 'node:net';
import crypto from 'node:crypto';

export const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };

// A masked client frame. len: the length announced (defaults to the payload's), so a test
// can announce more than it sends.
export function frame(op, payload = Buffer.alloc(0), { fin = true, len = payload.length, mask = true } = {}) {
  const head = [(fin ? 0x80 : 0) | op];
  const m = mask ? 0x80 : 0;
  if (len < 126) head.push(m | len);
  else if (len < 65536) head.push(m | 126, len >> 8, len & 255);
  else {
    head.push(m | 127);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(len));
    head.push(...b);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = crypto.randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i += 1) body[i] ^= key[i & 3];
  return Buffer.concat([Buffer.from(head), key, body]);
}

// parses the server's (unmasked) frames from buf -> {frames: [{op, payload}], rest}
function parseFrames(buf) {
  const frames = [];
  let i = 0;
  for (;;) {
    if (buf.length - i < 2) break;
    const op = buf[i] & 15;
    let len = buf[i + 1] & 127;
    let h = 2;
    if (len === 126) { if (buf.length - i < 4) break; len = buf.readUInt16BE(i + 2); h = 4; }
    else if (len === 127) { if (buf.length - i < 10) break; len = Number(buf.readBigUInt64BE(i + 2)); h = 10; }
    if (buf.length - i < h + len) break;
    frames.push({ op, payload: buf.subarray(i + h, i + h + len) });
    i += h + len;
  }
  return { frames, rest: buf.subarray(i) };
}

// open({port, host, localAddress, path, headers, protocol, request}) -> conn:
//   conn.status (HTTP status), conn.head (the response head), conn.body (bytes after it when
//   no upgrade), conn.frames (server frames so far), conn.data() (the binary payloads
//   joined), conn.closed (a promise of the time the socket closed), conn.send(buf),
//   conn.waitFrame(pred, ms), conn.closeCode() (the server's close frame code, or null),
//   conn.pause() (stop reading).
// protocol: the Sec-WebSocket-Protocol value (null: no header); request: raw bytes instead.
export function open({
  port, host = '127.0.0.1', localAddress, path = '/mqtt', headers = {}, protocol = 'mqtt', request, timeoutMs = 5000,
}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host, localAddress });
    const conn = {
      sock, status: null, head: '', body: Buffer.alloc(0), frames: [], buf: Buffer.alloc(0),
      closedAt: null,
    };
    conn.closed = new Promise((r) => sock.on('close', () => { conn.closedAt = Date.now(); r(conn.closedAt); }));
    sock.on('error', () => {});
    const waiters = new Set();
    const wake = () => { for (const w of waiters) w(); };
    conn.send = (b) => sock.write(b);
    conn.pause = () => sock.pause(); // a client that stops reading
    conn.data = () => Buffer.concat(conn.frames.filter((f) => f.op === OP.BINARY || f.op === OP.CONT).map((f) => f.payload));
    conn.closeCode = () => {
      const c = conn.frames.find((f) => f.op === OP.CLOSE);
      return c && c.payload.length >= 2 ? c.payload.readUInt16BE(0) : null;
    };
    conn.waitFrame = (pred, ms = 5000) => new Promise((res, rej) => {
      const check = () => {
        const f = conn.frames.find(pred);
        if (f) { clearTimeout(t); waiters.delete(check); res(f); return true; }
        if (conn.closedAt !== null) { clearTimeout(t); waiters.delete(check); rej(new Error('closed before the frame')); return true; }
        return false;
      };
      const t = setTimeout(() => { waiters.delete(check); rej(new Error(`no such frame within ${ms} ms`)); }, ms);
      if (!check()) waiters.add(check);
    });
    sock.on('close', wake);
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('no handshake answer')); }, timeoutMs);
    let pending = Buffer.alloc(0);
    const onData = (d) => {
      if (conn.status === null) {
        pending = Buffer.concat([pending, d]);
        const end = pending.indexOf('\r\n\r\n');
        if (end < 0) return;
        conn.head = pending.subarray(0, end).toString('latin1');
        conn.status = Number(conn.head.split(' ')[1]);
        d = pending.subarray(end + 4);
        clearTimeout(timer);
        resolve(conn);
        if (conn.status !== 101) { conn.body = Buffer.from(d); sock.on('data', (x) => { conn.body = Buffer.concat([conn.body, x]); }); sock.off('data', onData); return; }
      }
      conn.buf = Buffer.concat([conn.buf, d]);
      const { frames, rest } = parseFrames(conn.buf);
      conn.buf = rest;
      conn.frames.push(...frames);
      if (frames.length) wake();
    };
    sock.on('data', onData);
    sock.on('close', () => { clearTimeout(timer); if (conn.status === null) resolve(conn); });
    sock.on('connect', () => {
      if (request !== undefined) { if (request.length) sock.write(request); return; }
      const h = {
        Host: `${host}:${port}`, Upgrade: 'websocket', Connection: 'Upgrade',
        'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'), 'Sec-WebSocket-Version': '13',
        ...(protocol === null ? {} : { 'Sec-WebSocket-Protocol': protocol }), ...headers,
      };
      sock.write(`GET ${path} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
    });
  });
}

// --- MQTT packets ---------------------------------------------------------------------------

const str = (s) => { const b = Buffer.from(s); return Buffer.concat([Buffer.from([b.length >> 8, b.length & 255]), b]); };
export const varint = (n) => { const o = []; do { let d = n % 128; n = Math.floor(n / 128); if (n) d |= 128; o.push(d); } while (n); return Buffer.from(o); };
const packet = (type, body) => Buffer.concat([Buffer.from([type]), varint(body.length), body]);

// CONNECT: version 4 or 5; will {topic, payload, retain, qos}
export function connectPacket({ version = 5, clientId, password = 'x', will = null, keepalive = 30 }) {
  let flags = 0x02 | 0x40 | 0x80;
  if (will) flags |= 0x04 | ((will.qos ?? 1) << 3) | (will.retain ? 0x20 : 0);
  const vh = Buffer.concat([str('MQTT'), Buffer.from([version, flags, keepalive >> 8, keepalive & 255]),
    version === 5 ? Buffer.from([0]) : Buffer.alloc(0)]);
  const parts = [vh, str(clientId)];
  if (will) {
    if (version === 5) parts.push(Buffer.from([0]));
    parts.push(str(will.topic), str(will.payload));
  }
  parts.push(str('x'), str(password));
  return packet(0x10, Buffer.concat(parts));
}

export function subscribePacket({ version = 5, id = 1, topic, qos = 0 }) {
  return packet(0x82, Buffer.concat([Buffer.from([id >> 8, id & 255]), version === 5 ? Buffer.from([0]) : Buffer.alloc(0),
    str(topic), Buffer.from([qos])]));
}

// the CONNACK's return code (3.1.1) or reason code (5) in the data so far, or null
export function connackCode(data) {
  if (data.length < 4 || data[0] !== 0x20) return null;
  return data[3];
}

// --- the front's edge choice (realtime-bridge/front/edge.c), to know where a user lands ----

const M64 = (1n << 64n) - 1n;
function mix64(x) {
  x ^= x >> 30n; x = (x * 0xbf58476d1ce4e5b9n) & M64;
  x ^= x >> 27n; x = (x * 0x94d049bb133111ebn) & M64;
  return x ^ (x >> 31n);
}
function fnv1a(s) {
  let h = 1469598103934665603n;
  for (const b of Buffer.from(s)) h = ((h ^ BigInt(b)) * 1099511628211n) & M64;
  return h;
}
// the edge ("host:port" as configured) a user's connections go to while all are up
export function edgeFor(uid, edges) {
  let best = null;
  let bestW = -1n;
  for (const e of edges) {
    const w = mix64(fnv1a(e) ^ mix64(BigInt(uid)));
    if (w > bestW) { bestW = w; best = e; }
  }
  return best;
}
