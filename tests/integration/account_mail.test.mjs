// Email verification, password reset, password change and email change (issue 22 point 2;
// API.md, v1.1: Account lifecycle), with the mails read from the stack's SMTP sink.
// Addresses: this file registers and asks for resets from 127.92.x.y.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  request, until, sleep, VAR_DIR, LOCAL_ONLY,
} from './lib/http.mjs';
import { show } from './lib/assert.mjs';
import { psql } from './lib/stack.mjs';
import { fixtures, api, rnd } from './lib/fixtures.mjs';
import { connect, end } from './lib/mqtt.mjs';
import { mailsFor, newestMail, linkToken } from './lib/mail.mjs';

const { freshAddr, newUser } = fixtures({ net: 92 });
const post = (p, body, o = {}) => request('POST', p, { body, localAddress: freshAddr(), ...o });
const login = (lg, password) => post('/api/auth/login', { login: lg, password });
const me = (token) => request('GET', '/api/auth/me', { headers: { authorization: `Bearer ${token}` } });
const refresh = (rt) => post('/api/auth/refresh', { refresh_token: rt });

function assertError(r, status, code, field, what) {
  assert.equal(r.status, status, `${what}: ${show(r)}`);
  assert.equal(r.json?.error?.code, code, `${what}: ${show(r)}`);
  if (field) assert.equal(r.json.error.field, field, `${what}: ${show(r)}`);
}

// /me of a token until pred(user) holds (the per-worker me cache lives up to 5 s)
const meUntil = (token, pred) => until(async () => {
  const r = await me(token);
  return r.status === 200 && pred(r.json.user) ? r.json.user : null;
}, { timeoutMs: 8000, intervalMs: 250 });

// (reset mails only are counted: the registration's verification mail may arrive any time)
const isReset = (x) => /Reset/.test(x.subject);
async function forgotToken(u, after = mailsFor(u.email).filter(isReset).length) {
  const r = await post('/api/auth/password/forgot', { email: u.email });
  assert.equal(r.status, 204, `forgot: ${show(r)}`);
  const m = await newestMail(u.email, { after, filter: isReset });
  assert.ok(m, 'no reset mail');
  const t = linkToken(m, '/reset-password');
  assert.ok(t, `no reset link: ${m.text}`);
  return t;
}

describe('email verification', () => {
  test('request, mail, verify once; me says email_verified; reuse refused', async () => {
    const u = await newUser('vf');
    let r = await me(u.token);
    assert.equal(r.json.user.email_verified, false, show(r));
    r = await api('POST', '/api/auth/verify-email/request', u);
    assert.equal(r.status, 204, show(r));
    // the second mail: registration sent the first
    const m = await newestMail(u.email, { after: 1 });
    assert.ok(m, 'no verification mail');
    assert.equal(m.subject, 'Confirm your email address');
    const token = linkToken(m, '/verify-email');
    assert.ok(token && token.length === 43, m.text);
    // only the hash is stored
    const stored = await psql(`SELECT count(*) FROM account_tokens WHERE token_hash = sha256('${token}'::bytea) AND user_id = ${u.id}`);
    assert.equal(stored.stdout.trim(), '1');
    const plain = await psql(`SELECT count(*) FROM account_tokens WHERE encode(token_hash, 'escape') LIKE '%${token.slice(0, 10)}%'`);
    assert.equal(plain.stdout.trim(), '0');

    r = await post('/api/auth/verify-email', { token });
    assert.equal(r.status, 200, show(r));
    assert.equal(r.json.user.id, u.id);
    assert.equal(r.json.user.email_verified, true);
    assert.ok(await meUntil(u.token, (x) => x.email_verified === true), 'me never said email_verified');
    assertError(await post('/api/auth/verify-email', { token }), 400, 'validation_failed', 'token', 'reused token');
    // verified: a new request sends nothing
    const n = mailsFor(u.email).length;
    r = await api('POST', '/api/auth/verify-email/request', u);
    assert.equal(r.status, 204);
    await sleep(1500);
    assert.equal(mailsFor(u.email).length, n);
  });

  test('bad, expired and foreign tokens: 400 validation_failed, nothing changes', async () => {
    const u = await newUser('vb');
    assertError(await post('/api/auth/verify-email', { token: 'x'.repeat(43) }), 400, 'validation_failed', 'token', 'unknown token');
    assertError(await post('/api/auth/verify-email', {}), 400, 'validation_failed', 'token', 'no token');
    assertError(await post('/api/auth/verify-email', { token: 42 }), 400, 'validation_failed', 'token', 'number');
    // a reset token is no verification token
    const reset = await forgotToken(u);
    assertError(await post('/api/auth/verify-email', { token: reset }), 400, 'validation_failed', 'token', 'reset token at verify');
    // expired
    assert.equal((await api('POST', '/api/auth/verify-email/request', u)).status, 204);
    const m = await newestMail(u.email, { filter: (x) => /Confirm/.test(x.subject) });
    const token = linkToken(m, '/verify-email');
    await psql(`UPDATE account_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = sha256('${token}'::bytea)`);
    assertError(await post('/api/auth/verify-email', { token }), 400, 'validation_failed', 'token', 'expired token');
    const r = await me(u.token);
    assert.equal(r.json.user.email_verified, false);
    // the reset token still works for what it is
    assert.equal((await post('/api/auth/password/reset', { token: reset, password: 'a-new-password-1' })).status, 204);
  });

  test('at most 3 verification mails per account per hour: 429 with Retry-After', async () => {
    const u = await newUser('vl');
    // registration mailed the first link: it does not count against the budget
    assert.ok(await until(() => mailsFor(u.email).length === 1, { timeoutMs: 15000 }), 'the registration mail');
    for (let i = 0; i < 3; i++) {
      const r = await api('POST', '/api/auth/verify-email/request', u);
      assert.equal(r.status, 204, `request ${i + 1}: ${show(r)}`);
    }
    const r = await api('POST', '/api/auth/verify-email/request', u);
    assertError(r, 429, 'rate_limited', null, 'fourth request');
    assert.ok(Number(r.headers['retry-after']) > 0, show(r));
    assert.ok(await until(() => mailsFor(u.email).length === 4, { timeoutMs: 15000 }), `mails: ${mailsFor(u.email).length}`);
    await sleep(1000);
    assert.equal(mailsFor(u.email).length, 4);
  });
});

describe('password reset', () => {
  test('forgot -> mail -> reset: every session revoked, its sockets closed within 5 s, token single-use', async (t) => {
    const u = await newUser('rs');
    const s2 = (await login(u.username, u.password)).json;
    assert.ok(s2?.access_token);
    const ws = await connect(u);
    const token = await forgotToken(u);
    // a too short password: refused, the token not spent
    assertError(await post('/api/auth/password/reset', { token, password: 'short' }), 400, 'validation_failed', 'password', 'short password');
    const t0 = Date.now();
    let r = await post('/api/auth/password/reset', { token, password: 'brand-new-Passw0rd' });
    assert.equal(r.status, 204, show(r));
    await until(() => ws.closed, { timeoutMs: 5500, intervalMs: 50 });
    assert.ok(ws.closed && ws.closedAt() - t0 <= 5500, `socket open ${Date.now() - t0} ms after the reset`);
    t.diagnostic(`MQTT socket closed ${ws.closedAt() - t0} ms after the reset`);
    await end(ws);
    // both sessions are gone: access tokens and refresh tokens
    assert.ok(await until(async () => (await me(u.token)).status === 401, { timeoutMs: 3000 }), 'access token of session 1 still works');
    assert.equal((await me(s2.access_token)).status, 401);
    assert.equal((await refresh(u.refresh)).status, 401);
    assert.equal((await refresh(s2.refresh_token)).status, 401);
    // the old password is gone, the new one works
    assert.equal((await login(u.username, u.password)).status, 401);
    r = await login(u.username, 'brand-new-Passw0rd');
    assert.equal(r.status, 200, show(r));
    assertError(await post('/api/auth/password/reset', { token, password: 'another-Passw0rd' }), 400, 'validation_failed', 'token', 'reused token');
    // the reset proved the address
    assert.equal((await me(r.json.access_token)).json.user.email_verified, true);
  });

  test('expired, unknown and foreign tokens: 400, the password unchanged', async () => {
    const u = await newUser('rx');
    const token = await forgotToken(u);
    await psql(`UPDATE account_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = sha256('${token}'::bytea)`);
    assertError(await post('/api/auth/password/reset', { token, password: 'brand-new-Passw0rd' }), 400, 'validation_failed', 'token', 'expired');
    assertError(await post('/api/auth/password/reset', { token: rnd(20), password: 'brand-new-Passw0rd' }), 400, 'validation_failed', 'token', 'unknown');
    assert.equal((await api('POST', '/api/auth/verify-email/request', u)).status, 204);
    const m = await newestMail(u.email, { filter: (x) => /Confirm/.test(x.subject) });
    assertError(await post('/api/auth/password/reset', { token: linkToken(m, '/verify-email'), password: 'brand-new-Passw0rd' }),
      400, 'validation_failed', 'token', 'verification token at reset');
    assert.equal((await login(u.username, u.password)).status, 200);
    assert.equal((await me(u.token)).status, 200, 'a failed reset revoked a session');
  });

  test('unknown address: the same 204, no mail, the same budgets; timings alike', async (t) => {
    const ghost = `ghost_${rnd()}@example.test`;
    let r = await post('/api/auth/password/forgot', { email: ghost });
    assert.equal(r.status, 204, show(r));
    assert.equal(r.text, '');
    assertError(await post('/api/auth/password/forgot', { email: 'not-an-address' }), 400, 'validation_failed', 'email', 'bad address');
    // per address: 3 an hour, for known and unknown addresses alike
    const u = await newUser('rl');
    assert.ok(await until(() => mailsFor(u.email).length === 1, { timeoutMs: 15000 }), 'the registration mail');
    for (const addr of [ghost, u.email]) {
      const first = addr === ghost ? 1 : 0;
      for (let i = first; i < 3; i++) assert.equal((await post('/api/auth/password/forgot', { email: addr })).status, 204);
      r = await post('/api/auth/password/forgot', { email: addr.toUpperCase() });
      assertError(r, 429, 'rate_limited', null, `fourth forgot for ${addr}`);
      assert.ok(Number(r.headers['retry-after']) > 0);
    }
    await sleep(1500);
    assert.equal(mailsFor(ghost).length, 0, 'a mail went to an unknown address');
    assert.equal(mailsFor(u.email).length, 4, 'the registration mail and 3 resets');
    // timing: medians of known and unknown addresses within 100 ms (generous: a noisy host;
    // what must not show is a hash or a mail sent inline for one of them)
    const users = [];
    for (let i = 0; i < 5; i++) users.push(await newUser('rt'));
    const known = [];
    const unknown = [];
    for (let i = 0; i < 5; i++) {
      for (const [list, email] of [[known, users[i].email], [unknown, `ghost_${rnd()}@example.test`]]) {
        const t = process.hrtime.bigint();
        const x = await post('/api/auth/password/forgot', { email });
        list.push(Number(process.hrtime.bigint() - t) / 1e6);
        assert.equal(x.status, 204);
      }
    }
    const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
    const d = Math.abs(median(known) - median(unknown));
    t.diagnostic(`forgot medians: known ${median(known).toFixed(1)} ms, unknown ${median(unknown).toFixed(1)} ms`);
    assert.ok(d < 100, `forgot medians: known ${median(known).toFixed(1)} ms, unknown ${median(unknown).toFixed(1)} ms`);
  });
});

describe('a reset voids every other link of the account', () => {
  test('a pending email change (its link in someone else\'s mailbox) dies with a reset', async () => {
    // whoever held the account (its password, a session) asked to move it to their address;
    // the owner takes it back by a reset before the link is used
    const u = await newUser('rv');
    const evil = `rv_evil_${rnd()}@example.test`;
    const held = await login(u.username, u.password);
    assert.equal(held.status, 200, show(held));
    const r = await api('POST', '/api/auth/email', held.json.access_token, { password: u.password, new_email: evil });
    assert.equal(r.status, 202, show(r));
    const change = linkToken(await newestMail(evil), '/verify-email');
    assert.ok(change, 'no change link');
    const reset = await forgotToken(u);
    assert.equal((await post('/api/auth/password/reset', { token: reset, password: 'owner-Passw0rd-1' })).status, 204);
    const v = await post('/api/auth/verify-email', { token: change });
    assertError(v, 400, 'validation_failed', 'token', 'the change link after the reset');
    // the account keeps its owner's address: the owner signs in with it, no one with the other
    assert.equal((await login(u.email, 'owner-Passw0rd-1')).status, 200);
    assert.equal((await login(evil, 'owner-Passw0rd-1')).status, 401);
    const row = await psql(`SELECT email FROM users WHERE id = ${Number(u.id)}`);
    assert.equal(row.stdout.trim(), u.email);
    // nothing of the account's mail links is left
    const left = await psql(`SELECT count(*) FROM account_tokens WHERE user_id = ${Number(u.id)} AND used_at IS NULL`);
    assert.equal(left.stdout.trim(), '0');
  });
});

describe('password change', () => {
  test('wrong current password 401; then 204: other sessions revoked, this one kept, a notice mailed', async () => {
    const u = await newUser('pc');
    const s2 = (await login(u.username, u.password)).json;
    assertError(await api('POST', '/api/auth/password', u, { current_password: 'wrong-one', new_password: 'brand-new-Passw0rd' }),
      401, 'unauthorized', 'current_password', 'wrong current');
    assertError(await api('POST', '/api/auth/password', u, { current_password: u.password, new_password: 'short' }),
      400, 'validation_failed', 'new_password', 'short new');
    assertError(await api('POST', '/api/auth/password', null, { current_password: u.password, new_password: 'brand-new-Passw0rd' }),
      401, 'unauthorized', null, 'no token');
    const r = await api('POST', '/api/auth/password', u, { current_password: u.password, new_password: 'brand-new-Passw0rd' });
    assert.equal(r.status, 204, show(r));
    assert.ok(await until(async () => (await me(s2.access_token)).status === 401, { timeoutMs: 3000 }), 'the other session still works');
    assert.equal((await refresh(s2.refresh_token)).status, 401);
    assert.equal((await me(u.token)).status, 200, 'the caller\'s own session was revoked');
    assert.equal((await refresh(u.refresh)).status, 200);
    assert.equal((await login(u.username, u.password)).status, 401);
    assert.equal((await login(u.username, 'brand-new-Passw0rd')).status, 200);
    const m = await newestMail(u.email, { filter: (x) => /password was changed/.test(x.subject) });
    assert.ok(m, 'no notice of the change');
  });

  test('a reset link mailed before a change dies with it', async () => {
    const u = await newUser('pd');
    const token = await forgotToken(u);
    assert.equal((await api('POST', '/api/auth/password', u, { current_password: u.password, new_password: 'brand-new-Passw0rd' })).status, 204);
    assertError(await post('/api/auth/password/reset', { token, password: 'attacker-Passw0rd' }), 400, 'validation_failed', 'token', 'old reset link');
  });

  test('a pending email change dies with a password change', async () => {
    const u = await newUser('pe');
    const evil = `pe_evil_${rnd()}@example.test`;
    assert.equal((await api('POST', '/api/auth/email', u, { password: u.password, new_email: evil })).status, 202);
    const change = linkToken(await newestMail(evil), '/verify-email');
    assert.ok(change, 'no change link');
    assert.equal((await api('POST', '/api/auth/password', u, { current_password: u.password, new_password: 'brand-new-Passw0rd' })).status, 204);
    assertError(await post('/api/auth/verify-email', { token: change }), 400, 'validation_failed', 'token', 'the change link after the password change');
    assert.equal((await me(u.token)).json.user.email, u.email);
    assert.equal((await login(evil, 'brand-new-Passw0rd')).status, 401);
  });
});

describe('email change', () => {
  test('202; the old address told; the change takes effect when the new address is verified', async () => {
    const u = await newUser('ec');
    const other = await newUser('eo');
    const fresh = `ec_new_${rnd()}@example.test`;
    assertError(await api('POST', '/api/auth/email', u, { password: 'wrong-one', new_email: fresh }), 401, 'unauthorized', 'password', 'wrong password');
    assertError(await api('POST', '/api/auth/email', u, { password: u.password, new_email: other.email }), 409, 'conflict', 'new_email', 'taken');
    assertError(await api('POST', '/api/auth/email', u, { password: u.password, new_email: u.email.toUpperCase() }), 400, 'validation_failed', 'new_email', 'same');
    assertError(await api('POST', '/api/auth/email', u, { password: u.password, new_email: 'a@b\r\nBcc: x@y.z' }), 400, 'validation_failed', 'new_email', 'CRLF');
    const resetBefore = await forgotToken(u);
    const r = await api('POST', '/api/auth/email', u, { password: u.password, new_email: fresh });
    assert.equal(r.status, 202, show(r));
    const notice = await newestMail(u.email, { filter: (x) => /being changed/.test(x.subject) });
    assert.ok(notice, 'the old address was not told');
    assert.ok(notice.text.includes(fresh), notice.text);
    const m = await newestMail(fresh);
    assert.ok(m, 'no verification mail to the new address');
    const token = linkToken(m, '/verify-email');
    // nothing changed yet
    assert.equal((await me(u.token)).json.user.email, u.email);
    const v = await post('/api/auth/verify-email', { token });
    assert.equal(v.status, 200, show(v));
    assert.equal(v.json.user.email, fresh);
    assert.equal(v.json.user.email_verified, true);
    assert.ok(await meUntil(u.token, (x) => x.email === fresh && x.email_verified), 'me does not show the new address');
    assert.equal((await login(fresh, u.password)).status, 200);
    assert.equal((await login(u.email, u.password)).status, 401);
    // a reset link mailed to the old address is void
    assertError(await post('/api/auth/password/reset', { token: resetBefore, password: 'attacker-Passw0rd' }), 400, 'validation_failed', 'token', 'reset link of the old address');
  });

  test('the new address taken meanwhile: 409, nothing changed', async () => {
    const u = await newUser('et');
    const fresh = `et_new_${rnd()}@example.test`;
    assert.equal((await api('POST', '/api/auth/email', u, { password: u.password, new_email: fresh })).status, 202);
    const m = await newestMail(fresh);
    const token = linkToken(m, '/verify-email');
    const squatter = await post('/api/auth/register', { email: fresh, username: `sq_${rnd()}`, password: 'squatter-Passw0rd' });
    assert.equal(squatter.status, 201, show(squatter));
    assertError(await post('/api/auth/verify-email', { token }), 409, 'conflict', null, 'taken meanwhile');
    assert.equal((await me(u.token)).json.user.email, u.email);
  });
});

describe('the access log', { skip: LOCAL_ONLY }, () => {
  test('no secret of a URL reaches it: mail links, a provider\'s code and state, one-time codes, media signatures', async () => {
    const secret = `S3cr${rnd(12)}`;
    const agent = `log-probe-${rnd()}`;
    const urls = [
      `/reset-password?token=${secret}a`, // the mail links (fcgi-apps/mail/templates.c)
      `/verify-email?token=${secret}b`,
      `/?code=${secret}c&state=${secret}d&iss=x`, // where a provider sends the browser back
      `/api/auth/oidc/fake/callback?state=${secret}e&code=${secret}f`,
      `/api/auth/oidc/fake/callback?state=${secret}g&totp=123456`,
      `/media/1/original?exp=1&sig=${secret}h`, // a signed media URL
      `/api/auth/me?access_token=${secret}i`,
      `/api/auth/sessions?limit=1&Code=${secret}j`,
    ];
    for (const u of urls) await request('GET', u, { headers: { 'user-agent': agent } });
    // a query without a secret stays, for debugging
    await request('GET', '/api/auth/oidc/providers?limit=7', { headers: { 'user-agent': agent } });
    const file = path.join(VAR_DIR, 'log', 'nginx-access.log');
    const mine = () => readFileSync(file, 'utf8').split('\n').filter((l) => l.includes(agent));
    const lines = await until(() => (mine().length >= urls.length + 1 ? mine() : null), { timeoutMs: 5000, intervalMs: 100 });
    assert.ok(lines, `the probes are not in the access log: ${mine().join('\n')}`);
    const all = readFileSync(file, 'utf8');
    assert.ok(!all.includes(secret), `a secret in the access log: ${all.split('\n').filter((l) => l.includes(secret)).join('\n')}`);
    // the paths are there, the query shown as "?-"
    for (const p of ['/reset-password?-', '/verify-email?-', '/?-', '/api/auth/oidc/fake/callback?-', '/media/1/original?-', '/api/auth/me?-']) {
      assert.ok(lines.some((l) => l.includes(`"GET ${p} HTTP/1.1"`)), `no line for ${p}: ${lines.join('\n')}`);
    }
    assert.ok(lines.some((l) => l.includes('"GET /api/auth/oidc/providers?limit=7 HTTP/1.1"')), lines.join('\n'));
  });
});
