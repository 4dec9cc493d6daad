// Web Push (issue 21 point 4), black-box against ../shared/API.md "v1.1 additions": Mentions
// and notifications, the Web Push paragraph.
//
// - A local push service (an HTTP server of this file on 127.0.0.1; endpoints on loopback
//   http are accepted only because tests/integration/run sets TH_PUSH_ALLOW_LOOPBACK_HTTP=1)
//   receives the push of a mention; the test checks the VAPID JWT (RFC 8292) with the key of
//   GET /api/push/vapid and decrypts the aes128gcm body (RFC 8291) with Node's crypto,
//   written here, and finds the notification.
// - A user with a live MQTT connection gets no push (the inbox event reaches them); the same
//   user offline does.
// - A 410 from the push service removes the subscription; a 500 is retried; a 403 fails at
//   once (no retry, no row kept).
// - Subscriptions: 201, 200 for the caller's own again, an endpoint taken over by another
//   user, at most 10 a user (the oldest goes), DELETE 204.
// - Bad input: endpoint not allowed, malformed key, wrong auth size: 400 validation_failed,
//   nothing stored.
// - Client addresses: registrations from 127.74.x.y (lib/fixtures.mjs).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { assertError, assertStatus } from './lib/assert.mjs';
import { rnd, api, fixtures } from './lib/fixtures.mjs';
import { LOCAL_ONLY, sleep, until } from './lib/http.mjs';
import { metric, poolMetrics, psql } from './lib/stack.mjs';
import { closeClients, connect, end, mustSubscribe, waitFor } from './lib/mqtt.mjs';

const { newUser, community } = fixtures({ net: 74, slug: 'pu', name: 'Push' });
after(closeClients);

// --- the local push service: records every request; /gone/ answers 410, /forbidden/ 403,
// /flaky/ 500 once
const received = [];
const flakySeen = new Set();
let server;
let origin;
function startServer() {
  server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const r = {
        method: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks), at: Date.now(),
      };
      received.push(r);
      let status = 201;
      if (req.url.startsWith('/gone/')) status = 410;
      if (req.url.startsWith('/forbidden/')) status = 403;
      if (req.url.startsWith('/flaky/') && !flakySeen.has(req.url)) {
        flakySeen.add(req.url);
        status = 500;
      }
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    origin = `http://127.0.0.1:${server.address().port}`;
    resolve();
  }));
}
after(() => server && server.close());

// --- a browser's side: its key pair and auth secret, and RFC 8291 decryption
function browser() {
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.generateKeys();
  const auth = crypto.randomBytes(16);
  return {
    ecdh, auth, keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: auth.toString('base64url') },
  };
}
function decrypt(b, body) {
  const salt = body.subarray(0, 16);
  const rs = body.readUInt32BE(16);
  const idlen = body[20];
  assert.equal(idlen, 65, 'keyid is the server key');
  const asPub = body.subarray(21, 21 + idlen);
  const ct = body.subarray(21 + idlen);
  assert.ok(rs >= 18 && ct.length <= rs, 'one record');
  const secret = b.ecdh.computeSecret(asPub);
  const info = Buffer.concat([Buffer.from('WebPush: info\0'), b.ecdh.getPublicKey(), asPub]);
  const ikm = Buffer.from(crypto.hkdfSync('sha256', secret, b.auth, info, 32));
  const cek = Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
  const nonce = Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));
  const d = crypto.createDecipheriv('aes-128-gcm', cek, nonce);
  d.setAuthTag(ct.subarray(ct.length - 16));
  const pt = Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]);
  // the last record: the data, then the delimiter 0x02, then zero padding
  let end0 = pt.length - 1;
  while (end0 >= 0 && pt[end0] === 0) end0 -= 1;
  assert.equal(pt[end0], 2, 'padding delimiter 0x02');
  return JSON.parse(pt.subarray(0, end0).toString('utf8'));
}
// RFC 8292: Authorization: vapid t=<JWT>, k=<key>; the JWT verifies with k, aud is the origin
function checkVapid(header, publicKey, aud) {
  const m = /^vapid t=([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+), k=([A-Za-z0-9_-]+)$/.exec(header || '');
  assert.ok(m, `vapid header: ${header}`);
  assert.equal(m[4], publicKey, 'k is the key of GET /api/push/vapid');
  const hdr = JSON.parse(Buffer.from(m[1], 'base64url'));
  const claims = JSON.parse(Buffer.from(m[2], 'base64url'));
  assert.equal(hdr.alg, 'ES256');
  const pt = Buffer.from(publicKey, 'base64url');
  const key = crypto.createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: pt.subarray(1, 33).toString('base64url'), y: pt.subarray(33).toString('base64url') },
    format: 'jwk',
  });
  const ok = crypto.verify('sha256', Buffer.from(`${m[1]}.${m[2]}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(m[3], 'base64url'));
  assert.ok(ok, 'the JWT signature verifies with the VAPID public key');
  assert.equal(claims.aud, aud);
  const now = Date.now() / 1000;
  assert.ok(claims.exp > now && claims.exp <= now + 24 * 3600 + 60, `exp within 24 h: ${claims.exp}`);
  assert.match(claims.sub, /^(mailto:|https:)/);
}

const subscribe = (who, endpoint, keys) => api('PUT', '/api/push/subscriptions', who, { endpoint, keys });
const pushesTo = (p) => received.filter((r) => r.path === p);
const subsOf = async (uid) => {
  const r = await psql(`SELECT endpoint FROM push_subscriptions WHERE user_id = ${Number(uid)} ORDER BY id`);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
};
const queued = async (uid) => {
  const r = await psql(`SELECT count(*) FROM push_outbox WHERE user_id = ${Number(uid)} AND failed_at IS NULL`);
  assert.equal(r.code, 0, r.stderr);
  return Number(r.stdout.trim());
};

describe('web push', { skip: LOCAL_ONLY }, () => {
  let a, pub, vapidKey;
  const mention = async (who) => assertStatus(await api('POST', `/api/communities/${pub.id}/posts`, a,
    { title: 't', body: `hello @${who.username}` }), 201, 'post:').json;

  before(async () => {
    await startServer();
    a = await newUser('pa');
    pub = await community(a, 'public', []);
    const r = assertStatus(await api('GET', '/api/push/vapid'), 200, 'vapid:');
    vapidKey = r.json.public_key;
  });

  test('GET /api/push/vapid: an uncompressed P-256 point, base64url', () => {
    const pt = Buffer.from(vapidKey, 'base64url');
    assert.equal(pt.length, 65);
    assert.equal(pt[0], 4);
    assert.match(vapidKey, /^[A-Za-z0-9_-]{87}$/);
  });

  test('a mention reaches an offline user: VAPID verified, body decrypted', async () => {
    const b = await newUser('pb');
    const br = browser();
    const path = `/push/${rnd()}`;
    assertStatus(await subscribe(b, origin + path, br.keys), 201, 'subscribe:');
    assertStatus(await subscribe(b, origin + path, br.keys), 200, 'the same again:');
    const p = await mention(b);
    await until(() => pushesTo(path).length > 0, { timeoutMs: 15000 });
    const r = pushesTo(path)[0];
    assert.equal(r.method, 'POST');
    assert.equal(r.headers['content-encoding'], 'aes128gcm');
    assert.ok(Number(r.headers.ttl) > 0, `TTL ${r.headers.ttl}`);
    assert.equal(r.headers.urgency, 'high', 'a mention is urgent');
    checkVapid(r.headers.authorization, vapidKey, origin);
    const msg = decrypt(br, r.body);
    assert.equal(msg.type, 'notification');
    assert.equal(msg.notification.type, 'mention');
    assert.equal(msg.notification.post_id, p.id);
    assert.equal(msg.notification.actor.id, a.id);
    // the same notification as the REST list
    const list = assertStatus(await api('GET', '/api/notifications', b), 200, 'list:').json;
    assert.deepEqual(list.items.find((n) => n.id === msg.notification.id), msg.notification);
    // sent once, and the row is gone
    await sleep(500);
    assert.equal(pushesTo(path).length, 1);
    assert.equal(await queued(b.id), 0);
  });

  test('a user with a live MQTT connection gets no push; offline again, they do', async () => {
    const c = await newUser('pc');
    const br = browser();
    const path = `/push/${rnd()}`;
    assertStatus(await subscribe(c, origin + path, br.keys), 201, 'subscribe:');
    const conn = await connect(c);
    await mustSubscribe(conn, `user/${c.id}/inbox`);
    const p = await mention(c);
    await waitFor(() => conn.messages.some((m) => JSON.parse(m.payload).notification?.post_id === p.id), 5000, 'the inbox event');
    // the pusher took the row (and dropped it) without sending
    await until(async () => (await queued(c.id)) === 0, { timeoutMs: 15000 });
    await sleep(500);
    assert.equal(pushesTo(path).length, 0, 'no push while connected');
    await end(conn);
    await sleep(500);
    const q = await mention(c);
    await until(() => pushesTo(path).length > 0, { timeoutMs: 15000 });
    assert.equal(decrypt(br, pushesTo(path)[0].body).notification.post_id, q.id);
  });

  test('410 removes the subscription; 500 is retried', async () => {
    const d = await newUser('pd');
    const gone = `/gone/${rnd()}`;
    const flaky = `/flaky/${rnd()}`;
    assertStatus(await subscribe(d, origin + gone, browser().keys), 201, 'subscribe gone:');
    const br = browser();
    assertStatus(await subscribe(d, origin + flaky, br.keys), 201, 'subscribe flaky:');
    const p = await mention(d);
    await until(() => pushesTo(gone).length > 0 && pushesTo(flaky).length > 1, { timeoutMs: 20000 });
    await until(async () => !(await subsOf(d.id)).includes(origin + gone), { timeoutMs: 10000 });
    assert.deepEqual(await subsOf(d.id), [origin + flaky]);
    assert.ok(await until(async () => (await queued(d.id)) === 0, { timeoutMs: 10000 }), 'rows left queued');
    // the retry after the 500 carried the same notification
    assert.equal(decrypt(br, pushesTo(flaky)[1].body).notification.post_id, p.id);
    // the removed one gets nothing more
    await mention(d);
    await until(() => pushesTo(flaky).length > 2, { timeoutMs: 15000 });
    assert.equal(pushesTo(gone).length, 1);
  });

  test('403 fails the push at once: not retried, the row deleted, the subscription kept', async () => {
    const h = await newUser('ph');
    const forbidden = `/forbidden/${rnd()}`;
    assertStatus(await subscribe(h, origin + forbidden, browser().keys), 201, 'subscribe:');
    const before = metric(await poolMetrics('pusher'), 'th_push_failed_total');
    await mention(h);
    await until(() => pushesTo(forbidden).length > 0, { timeoutMs: 15000 });
    assert.ok(await until(async () => (await queued(h.id)) === 0, { timeoutMs: 10000 }), 'row left');
    const r = await psql(`SELECT count(*) FROM push_outbox WHERE user_id = ${Number(h.id)}`);
    assert.equal(r.stdout.trim(), '0', 'a failed push keeps no row');
    assert.ok(metric(await poolMetrics('pusher'), 'th_push_failed_total') > before);
    await sleep(1500); // TH_PUSH_RETRY_BASE_MS=300 in tests/integration/run: a retry would be here
    assert.equal(pushesTo(forbidden).length, 1);
    assert.deepEqual(await subsOf(h.id), [origin + forbidden]);
  });

  test('an endpoint is taken over by whoever registers it last; at most 10 a user; DELETE', async () => {
    const [e, f] = await Promise.all([newUser('pe'), newUser('pf')]);
    const shared = `${origin}/push/${rnd()}`;
    assertStatus(await subscribe(e, shared, browser().keys), 201, 'e:');
    assertStatus(await subscribe(f, shared, browser().keys), 201, 'f takes it over:');
    assert.deepEqual(await subsOf(e.id), []);
    assert.deepEqual(await subsOf(f.id), [shared]);
    const many = [];
    for (let i = 0; i < 11; i += 1) {
      many.push(`${origin}/push/${rnd()}`);
      assertStatus(await subscribe(e, many[i], browser().keys), 201, `sub ${i}:`);
    }
    assert.deepEqual(await subsOf(e.id), many.slice(1), 'the oldest went');
    assertStatus(await api('DELETE', '/api/push/subscriptions', e, { endpoint: many[5] }), 204, 'delete:');
    assert.ok(!(await subsOf(e.id)).includes(many[5]));
    // another user's endpoint: 204, nothing removed
    assertStatus(await api('DELETE', '/api/push/subscriptions', e, { endpoint: shared }), 204, 'not mine:');
    assert.deepEqual(await subsOf(f.id), [shared]);
  });

  test('/metrics/pusher counts what the tests above did', async () => {
    const m = await poolMetrics('pusher');
    assert.ok(metric(m, 'th_push_sent_total') >= 4, JSON.stringify(m));
    assert.ok(metric(m, 'th_push_online_total') >= 1, 'dropped for a live connection');
    assert.ok(metric(m, 'th_push_gone_total') >= 1, 'a 410');
    assert.ok(metric(m, 'th_push_retried_total') >= 1, 'a 500');
  });

  test('bad input: 400 validation_failed, nothing stored', async () => {
    const g = await newUser('pg');
    const good = browser().keys;
    const cases = [
      ['https://evil.example.com/push/1', good, 'endpoint'],
      ['http://fcm.googleapis.com/fcm/send/1', good, 'endpoint'],
      ['https://user@fcm.googleapis.com/fcm/send/1', good, 'endpoint'],
      [`https://fcm.googleapis.com/${'x'.repeat(1100)}`, good, null],
      ['ftp://127.0.0.1/x', good, 'endpoint'],
      ['http://127.0.0.2/x', good, 'endpoint'],
      ['http://127.0.0.1:80@evil.example.com/x', good, 'endpoint'],
      ['http://127.0.0.1.evil.example.com/x', good, 'endpoint'],
      [`${origin}/push/bad`, { ...good, p256dh: 'abc' }, 'keys.p256dh'],
      [`${origin}/push/bad`, { ...good, p256dh: Buffer.concat([Buffer.from([4]), crypto.randomBytes(64)]).toString('base64url') }, 'keys.p256dh'],
      [`${origin}/push/bad`, { ...good, p256dh: Buffer.from(good.p256dh, 'base64url').subarray(0, 33).toString('base64url') }, 'keys.p256dh'],
      [`${origin}/push/bad`, { ...good, auth: crypto.randomBytes(15).toString('base64url') }, 'keys.auth'],
      [`${origin}/push/bad`, { ...good, auth: crypto.randomBytes(17).toString('base64url') }, 'keys.auth'],
      [`${origin}/push/bad`, { p256dh: good.p256dh }, null],
    ];
    for (const [endpoint, keys, field] of cases) {
      const r = await subscribe(g, endpoint, keys);
      assertError(r, 400, 'validation_failed');
      if (field) assert.equal(r.json.error.field, field, `${endpoint} ${JSON.stringify(keys)}`);
    }
    assertError(await api('PUT', '/api/push/subscriptions', g, { endpoint: `${origin}/push/x` }), 400, 'validation_failed');
    assertError(await api('DELETE', '/api/push/subscriptions', g, {}), 400, 'validation_failed');
    assertError(await api('PUT', '/api/push/subscriptions', null, { endpoint: `${origin}/push/x`, keys: good }), 401, 'unauthorized');
    assert.deepEqual(await subsOf(g.id), []);
    // an allowed push service host is accepted (nothing is sent to it: no notification)
    assertStatus(await subscribe(g, 'https://fcm.googleapis.com/fcm/send/abc', good), 201, 'fcm:');
    assertStatus(await subscribe(g, 'https://db5p.notify.windows.com/w/?token=x', good), 201, 'wns:');
    assertError(await subscribe(g, 'https://notify.windows.com/w/', good), 400, 'validation_failed');
    assertStatus(await api('DELETE', '/api/push/subscriptions', g, { endpoint: 'https://fcm.googleapis.com/fcm/send/abc' }), 204, 'delete:');
    assertStatus(await api('DELETE', '/api/push/subscriptions', g, { endpoint: 'https://db5p.notify.windows.com/w/?token=x' }), 204, 'delete:');
  });
});
