// Nothing reaches what it must not (issue 17, point 4): every server of the stack refuses a
// client without credentials, the FastCGI sockets and stored media are not for other users of
// the host, and coturn relays to no loopback or private address.
//
// - PostgreSQL: over TCP no role logs in without its scram password (psql with an empty
//   passfile), the superuser not at all; the apps' role is no superuser; pg_hba.conf trusts
//   nobody.
// - Redis: a client without AUTH, or with a wrong password, gets NOAUTH / WRONGPASS, over TCP
//   and over the pools' unix socket.
// - Mosquitto: a CONNECT without credentials is refused.
// - coturn: an allocation with valid credentials cannot CreatePermission to 127.0.0.1 or a
//   private address (403 Forbidden IP); a wrong credential, no allocation. A small TURN client
//   here (turnutils_uclient leaves a failed allocation holding relay ports for minutes).
// - FastCGI sockets 0660 (group: nginx's workers' as root), and a user outside it cannot
//   connect; stored media 0640.
// Registrations come from 127.41.x.y (lib/fixtures.mjs).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import {
  existsSync, readFileSync, statSync, writeFileSync, mkdtempSync, rmSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import {
  ROOT, PORT_BASE, VAR_DIR, runProgram, request,
} from './lib/http.mjs';
import { fixtures, api } from './lib/fixtures.mjs';
import { assertStatus } from './lib/assert.mjs';
import { PSQL_CONN, psql, redisPassword, edgePort } from './lib/stack.mjs';
import { localPath, urlPath } from './lib/media.mjs';

const { newUser } = fixtures({ net: 41, slug: 'sec', name: 'Security' });
const PG_PORT = PORT_BASE + 1;
const REDIS_PORT = PORT_BASE + 2;
const MQTT_PORT = edgePort(0); // users' raw MQTT: an edge broker
const TURN_PORT = PORT_BASE + 5;
const IS_ROOT = process.getuid() === 0;
const POOLS = ['auth', 'community', 'realtime', 'media', 'bench'];

let TMP;
let EMPTY_PASSFILE;
before(() => {
  TMP = mkdtempSync(path.join(os.tmpdir(), 'th-sec-it.'));
  EMPTY_PASSFILE = path.join(TMP, 'pgpass');
  writeFileSync(EMPTY_PASSFILE, '', { mode: 0o600 });
});
after(() => { if (TMP) rmSync(TMP, { recursive: true, force: true }); });

// psql over TCP as `user` with no password at hand (an empty passfile, no PGPASSWORD)
function psqlNoPassword(user, extraEnv = {}) {
  return runProgram('psql', ['-X', '-w', '-h', '127.0.0.1', '-p', String(PG_PORT), '-U', user, '-d', 'townhall', '-Atc', 'SELECT 1'],
    { env: { PGPASSFILE: EMPTY_PASSFILE, PGPASSWORD: '', ...extraEnv }, timeoutMs: 10000 });
}

// One Redis command in RESP over a fresh connection (TCP port or unix socket path) -> the
// first reply line. auth: AUTH <auth> first (its reply is returned if it is an error).
function redisRaw(where, cmd, auth) {
  return new Promise((resolve, reject) => {
    const sock = typeof where === 'number' ? net.connect(where, '127.0.0.1') : net.connect(where);
    const resp = (args) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
    let buf = '';
    const want = auth === undefined ? 1 : 2;
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`redis ${where}: no answer`)); }, 5000);
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
    sock.on('data', (d) => {
      buf += d;
      const lines = buf.split('\r\n').filter((l) => l.length);
      if (lines.length >= want || (auth !== undefined && lines[0]?.startsWith('-'))) {
        clearTimeout(timer); sock.destroy();
        resolve(auth !== undefined && lines[0].startsWith('-') ? lines[0] : lines[want - 1]);
      }
    });
    sock.on('connect', () => sock.write((auth === undefined ? '' : resp(['AUTH', auth])) + resp(cmd)));
  });
}

describe('PostgreSQL', () => {
  test('no login over TCP without the scram password, none at all for the superuser', async () => {
    for (const user of ['townhall', 'postgres']) {
      const r = await psqlNoPassword(user);
      assert.notEqual(r.code, 0, `psql as ${user} without a password logged in: ${r.stdout}`);
      assert.match(r.stderr, /password|no pg_hba\.conf entry|authentication failed/, `${user}: ${r.stderr}`);
    }
    const wrong = path.join(TMP, 'pgpass.wrong');
    writeFileSync(wrong, `*:*:*:townhall:${crypto.randomBytes(16).toString('hex')}\n`, { mode: 0o600 });
    const r = await psqlNoPassword('townhall', { PGPASSFILE: wrong });
    assert.notEqual(r.code, 0, 'a wrong password logged in');
    assert.match(r.stderr, /password authentication failed/);
    // the stack's own passfile does log in (the refusals above are about the password)
    const ok = await psql('SELECT 1');
    assert.equal(ok.code, 0, ok.stderr);
  });

  test('the apps\' role is no superuser and pg_hba.conf trusts nobody', async () => {
    const r = await psql('SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'f|f|f');
    const hba = path.join(VAR_DIR, 'pg/data/pg_hba.conf');
    if (existsSync(hba) && (IS_ROOT || statSync(hba).uid === process.getuid())) {
      const lines = readFileSync(hba, 'utf8').split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean);
      assert.ok(lines.length > 0, 'pg_hba.conf has no rule');
      for (const l of lines) assert.doesNotMatch(l, /\btrust\b/, `pg_hba.conf: ${l}`);
      for (const l of lines.filter((x) => x.startsWith('host'))) assert.match(l, /scram-sha-256$/, `pg_hba.conf: ${l}`);
    }
    // and PSQL_CONN (what other tests spawn) still works through the passfile
    const c = await runProgram('psql', [...PSQL_CONN, '-Atc', 'SELECT current_user']);
    assert.equal(c.stdout.trim(), 'townhall', c.stderr);
  });
});

describe('Redis', () => {
  test('no command without AUTH, nor with a wrong password, over TCP and the unix socket', async () => {
    const where = [REDIS_PORT];
    const sock = path.join(VAR_DIR, 'run/redis.sock');
    if (existsSync(sock)) where.push(sock);
    for (const w of where) {
      assert.match(await redisRaw(w, ['GET', 'th:anything']), /^-NOAUTH/, `${w} without AUTH`);
      assert.match(await redisRaw(w, ['PING'], 'not-the-password'), /^-WRONGPASS/, `${w} with a wrong password`);
      assert.equal(await redisRaw(w, ['PING'], redisPassword()), '+PONG', `${w} with the password`);
    }
    const mode = statSync(path.join(VAR_DIR, 'keys/redis.secret')).mode & 0o777;
    assert.equal(mode & 0o007, 0, `keys/redis.secret is readable by others (${mode.toString(8)})`);
  });
});

describe('Mosquitto', () => {
  test('a CONNECT without credentials is refused', async () => {
    const code = await new Promise((resolve) => {
      const c = mqtt.connect(`mqtt://127.0.0.1:${MQTT_PORT}`, {
        protocolVersion: 5, clientId: `anon-${crypto.randomBytes(4).toString('hex')}`, reconnectPeriod: 0, connectTimeout: 5000,
      });
      const done = (v) => { c.end(true); resolve(v); };
      c.on('connect', () => done('connected'));
      c.on('error', (e) => done(e.code ?? e.message));
      c.on('close', () => done('closed'));
    });
    assert.notEqual(code, 'connected', 'an anonymous client was let in');
  });
});

// A TURN client of the least it takes (RFC 5766 over UDP): one allocation with long-term
// credentials, CreatePermission for each peer (-> 'ok' or the error, e.g. '403 Forbidden IP'),
// then a Refresh with lifetime 0 that frees the relay port (the stack has 20).
const MAGIC = 0x2112a442;
function stunMsg(type, attrs, key) {
  const body = [];
  for (const [t, v] of attrs) {
    const h = Buffer.alloc(4); h.writeUInt16BE(t, 0); h.writeUInt16BE(v.length, 2);
    body.push(h, v, Buffer.alloc((4 - (v.length % 4)) % 4));
  }
  let b = Buffer.concat(body);
  const head = Buffer.alloc(20);
  head.writeUInt16BE(type, 0); head.writeUInt32BE(MAGIC, 4); crypto.randomBytes(12).copy(head, 8);
  if (key) { // MESSAGE-INTEGRITY over the message whose length already counts it
    head.writeUInt16BE(b.length + 24, 2);
    const mac = crypto.createHmac('sha1', key).update(Buffer.concat([head, b])).digest();
    const h = Buffer.alloc(4); h.writeUInt16BE(0x0008, 0); h.writeUInt16BE(20, 2);
    b = Buffer.concat([b, h, mac]);
  }
  head.writeUInt16BE(b.length, 2);
  return Buffer.concat([head, b]);
}
function stunParse(m) {
  const attrs = new Map();
  for (let o = 20; o + 4 <= m.length;) {
    const t = m.readUInt16BE(o); const l = m.readUInt16BE(o + 2);
    attrs.set(t, m.subarray(o + 4, o + 4 + l)); o += 4 + l + ((4 - (l % 4)) % 4);
  }
  const e = attrs.get(0x0009);
  return {
    type: m.readUInt16BE(0), tx: m.subarray(8, 20), attrs,
    error: e ? `${e[2] * 100 + e[3]} ${e.subarray(4).toString()}` : null,
  };
}
// A UDP socket to coturn: ask(msg) sends one STUN message and resolves with its answer.
async function turnSocket(port) {
  const sock = dgram.createSocket('udp4');
  await new Promise((r) => sock.bind(0, '127.0.0.1', r));
  const ask = (msg) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => { sock.off('message', on); reject(new Error('no TURN answer in 3 s')); }, 3000);
    const tx = msg.subarray(8, 20);
    function on(d) {
      const r = stunParse(d);
      if (!r.tx.equals(tx)) return;
      clearTimeout(timer); sock.off('message', on); resolve(r);
    }
    sock.on('message', on);
    sock.send(msg, port, '127.0.0.1');
  });
  return { sock, ask };
}
async function turnPermissions(port, user, password, peers) {
  const { sock, ask } = await turnSocket(port);
  try {
    const transport = [0x0019, Buffer.from([17, 0, 0, 0])];
    const first = await ask(stunMsg(0x0003, [transport]));
    if (!first.error?.startsWith('401')) return { allocate: first.error || 'allocated without credentials' };
    const realm = first.attrs.get(0x0014); const nonce = first.attrs.get(0x0015);
    const key = crypto.createHash('md5').update(`${user}:${realm}:${password}`).digest();
    const auth = [[0x0006, Buffer.from(user)], [0x0014, realm], [0x0015, nonce]];
    const alloc = await ask(stunMsg(0x0003, [transport, ...auth], key));
    if (alloc.type !== 0x0103) return { allocate: alloc.error };
    const result = { allocate: 'ok' };
    for (const peer of peers) {
      const xor = Buffer.alloc(8);
      xor.writeUInt16BE(0x0001, 0); xor.writeUInt16BE(3480 ^ (MAGIC >>> 16), 2);
      xor.writeUInt32BE((peer.split('.').reduce((a, x) => (a * 256) + Number(x), 0) ^ MAGIC) >>> 0, 4);
      const r = await ask(stunMsg(0x0008, [[0x0012, xor], ...auth], key));
      result[peer] = r.type === 0x0108 ? 'ok' : r.error;
    }
    await ask(stunMsg(0x0004, [[0x000d, Buffer.from([0, 0, 0, 0])], ...auth], key)); // deallocate
    return result;
  } finally {
    sock.close();
  }
}

// One allocation held until free(): {ok, error, free}.
async function turnAllocate(port, user, password) {
  const { sock, ask } = await turnSocket(port);
  try {
    const transport = [0x0019, Buffer.from([17, 0, 0, 0])];
    const first = await ask(stunMsg(0x0003, [transport]));
    const realm = first.attrs.get(0x0014); const nonce = first.attrs.get(0x0015);
    const key = crypto.createHash('md5').update(`${user}:${realm}:${password}`).digest();
    const auth = [[0x0006, Buffer.from(user)], [0x0014, realm], [0x0015, nonce]];
    const a = await ask(stunMsg(0x0003, [transport, ...auth], key));
    const ok = a.type === 0x0103;
    return {
      ok, error: a.error,
      free: async () => {
        if (ok) await ask(stunMsg(0x0004, [[0x000d, Buffer.from([0, 0, 0, 0])], ...auth], key)).catch(() => {});
        sock.close();
      },
    };
  } catch (e) {
    sock.close();
    throw e;
  }
}

describe('coturn', () => {
  const secretFile = path.join(VAR_DIR, 'keys/turn.secret');
  const creds = () => {
    const user = `${Math.floor(Date.now() / 1000) + 600}:1`;
    return [user, crypto.createHmac('sha1', readFileSync(secretFile, 'utf8').trim()).update(user).digest('base64')];
  };
  const running = () => existsSync(path.join(VAR_DIR, 'run/coturn.pid')) && existsSync(secretFile);

  test('an allocation cannot reach 127.0.0.1 nor private addresses (403 Forbidden IP)', async (t) => {
    if (!running()) { t.skip('coturn is not part of this stack'); return; }
    const denied = ['127.0.0.1', '127.0.0.53', '10.1.2.3', '192.168.1.1', '172.16.0.1', '169.254.1.1', '100.64.0.1', '0.0.0.1'];
    const peer = process.env.TH_TURN_TEST_PEER; // the test-only exception (tests/integration/run)
    const r = await turnPermissions(TURN_PORT, ...creds(), [...denied, ...(peer ? [peer] : [])]);
    assert.equal(r.allocate, 'ok', JSON.stringify(r));
    for (const a of denied) assert.equal(r[a], '403 Forbidden IP', `${a}: ${JSON.stringify(r)}`);
    // the exception works, so the refusals above are the denied ranges at work
    if (peer) assert.equal(r[peer], 'ok', JSON.stringify(r));
  });

  // coturn counts a REST-API username by its user id: one user's allocations, over fresh
  // credentials too, stop at TH_TURN_USER_QUOTA (12 by default), and another user still gets
  // one. Without the quota one user took all 20 relay ports of the stack and the next user's
  // allocation failed (508 Cannot create socket).
  test('one user holds at most 12 allocations over all their credentials; another user still gets one', async (t) => {
    if (!running()) { t.skip('coturn is not part of this stack'); return; }
    const QUOTA = Number(process.env.TH_TURN_USER_QUOTA || 12);
    const secret = readFileSync(secretFile, 'utf8').trim();
    const credsOf = (uid, skew) => {
      const user = `${Math.floor(Date.now() / 1000) + 600 + skew}:${uid}`;
      return [user, crypto.createHmac('sha1', secret).update(user).digest('base64')];
    };
    const held = [];
    try {
      for (let i = 0; i < QUOTA; i++) {
        const a = await turnAllocate(TURN_PORT, ...credsOf(7001, i)); // a new credential each time
        held.push(a);
        assert.ok(a.ok, `allocation ${i + 1} of ${QUOTA}: ${a.error}`);
      }
      const over = await turnAllocate(TURN_PORT, ...credsOf(7001, QUOTA));
      held.push(over);
      assert.match(String(over.error), /^486/, `allocation ${QUOTA + 1} of one user: ${over.ok ? 'allocated' : over.error}`);
      const other = await turnAllocate(TURN_PORT, ...credsOf(7002, 0));
      held.push(other);
      assert.ok(other.ok, `another user: ${other.error}`);
    } finally {
      for (const a of held) await a.free();
    }
  });

  test('no allocation without credentials or with a wrong one; the shipped configuration allows no loopback peer', async (t) => {
    if (!running()) { t.skip('coturn is not part of this stack'); return; }
    const [user] = creds();
    const wrong = await turnPermissions(TURN_PORT, user, 'not-the-credential', []);
    assert.match(wrong.allocate, /^401/, JSON.stringify(wrong));
    // allow-loopback-peers exists only in the test-only lines scripts/stack appends
    const tmpl = readFileSync(path.join(ROOT, 'conf/coturn/turnserver.conf.in'), 'utf8');
    assert.ok(!/^\s*allow-loopback-peers/m.test(tmpl), 'conf/coturn/turnserver.conf.in allows loopback peers');
    assert.ok(!/^denied-peer-ip=::$/m.test(tmpl), '"::" alone denies every IPv4 peer in coturn 4.6');
    for (const range of ['127.0.0.0-127.255.255.255', '10.0.0.0-10.255.255.255', '192.168.0.0-192.168.255.255',
      '172.16.0.0-172.31.255.255', '169.254.0.0-169.254.255.255', '100.64.0.0-100.127.255.255', '::1']) {
      assert.match(tmpl, new RegExp(`^denied-peer-ip=${range.replaceAll('.', '\\.')}$`, 'm'), range);
    }
  });
});

// The web client's pages, scripts and the API's JSON carry a Content-Security-Policy (scripts
// from this origin only, nothing may frame the page), X-Frame-Options, nosniff and a
// Referrer-Policy (conf/nginx/townhall.conf.in); none did: the signed-in page could be framed.
describe('headers of the web client', () => {
  test('the page, its scripts and the API: CSP with frame-ancestors none, DENY, nosniff, same-origin referrer', async () => {
    for (const p of ['/', '/reset-password', '/app.js', '/townhall.js', '/api/auth/health']) {
      const res = await request('GET', p);
      assert.ok(res.status === 200, `${p}: ${res.status}`);
      const csp = res.headers['content-security-policy'] || '';
      assert.match(csp, /frame-ancestors 'none'/, `${p}: ${csp}`);
      assert.match(csp, /script-src 'self';/, `${p}: ${csp}`);
      assert.match(csp, /object-src 'none'/, `${p}: ${csp}`);
      assert.equal(res.headers['x-frame-options'], 'DENY', p);
      assert.equal(res.headers['x-content-type-options'], 'nosniff', p);
      assert.equal(res.headers['referrer-policy'], 'same-origin', p);
    }
    for (const p of ['/vendor/mqtt.esm.js', '/vendor/qrcode.mjs']) {
      const res = await request('GET', p);
      assert.equal(res.status, 200, p);
      assert.equal(res.headers['x-content-type-options'], 'nosniff', p);
    }
  });
});

describe('files', () => {
  test('FastCGI sockets 0660, group of nginx\'s workers; another user cannot connect', async () => {
    const nginxGid = IS_ROOT ? Number((await runProgram('sh', ['-c', 'getent group www-data || getent group nogroup'])).stdout.split(':')[2]) : null;
    for (const pool of POOLS) {
      const sock = path.join(VAR_DIR, 'run', `${pool}.sock`);
      const st = statSync(sock);
      assert.ok(st.isSocket(), `${sock} is no socket`);
      assert.equal((st.mode & 0o777).toString(8), '660', `${pool}.sock mode`);
      if (IS_ROOT) assert.equal(st.gid, nginxGid, `${pool}.sock group`);
    }
    if (!IS_ROOT) return;
    // user nobody is in neither the owner's nor nginx's group (www-data): EACCES
    const probe = `require('net').connect(${JSON.stringify(path.join(VAR_DIR, 'run/auth.sock'))})`
      + ".on('connect',()=>{console.log('connected');process.exit(0)}).on('error',(e)=>{console.log(e.code);process.exit(0)})";
    const r = await runProgram('runuser', ['-u', 'nobody', '--', process.execPath, '-e', probe], { timeoutMs: 10000 });
    assert.equal(r.stdout.trim(), 'EACCES', `user nobody on auth.sock: ${r.stdout} ${r.stderr}`);
  });

  test('stored media are 0640, not readable by other users; the secrets are not either', async () => {
    const u = await newUser('sec');
    const pdf = Buffer.from(`%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n% ${crypto.randomBytes(8).toString('hex')}\n`
      + 'trailer\n<< /Root 1 0 R >>\n%%EOF\n', 'latin1');
    const res = await api('POST', '/api/media?filename=s.pdf', u, pdf, { headers: { authorization: `Bearer ${u.token}`, 'content-type': 'application/pdf' } });
    assertStatus(res, 201, 'upload:');
    const p = localPath(res.json.sha256);
    if (!existsSync(p)) return; // another storage backend (TH_MEDIA_STORAGE=s3)
    const st = statSync(p);
    assert.equal((st.mode & 0o777).toString(8), '640', `${p} mode`);
    for (let d = path.dirname(p); d.startsWith(path.join(VAR_DIR, 'media')); d = path.dirname(d)) {
      assert.equal(statSync(d).mode & 0o007, 0, `${d} is open to other users`);
    }
    // and nginx's workers (through the group) serve it: the owner downloads it
    let dl = await api('GET', urlPath(res.json.variants.original), u);
    if ([301, 302, 303, 307, 308].includes(dl.status)) dl = await api('GET', urlPath(dl.headers.location), u);
    assertStatus(dl, 200, 'download:');
    assert.equal(Buffer.compare(dl.body, pdf), 0, 'downloaded bytes differ');
    for (const k of ['pg-townhall.secret', 'pgpass', 'redis.secret', 'turn.secret', 'jwt-es256.pem']) {
      const f = path.join(VAR_DIR, 'keys', k);
      if (existsSync(f)) assert.equal(statSync(f).mode & 0o007, 0, `keys/${k} is readable by others`);
    }
  });
});
