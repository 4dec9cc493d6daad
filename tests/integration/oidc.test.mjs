// OIDC login (../shared/API.md, v1.1 "Account lifecycle", the oidc row): GET
// /api/auth/oidc/providers, /:provider/start and /:provider/callback, end to end.
// - `local`: a real OpenID provider, the npm package oidc-provider, run here on BASE+42 with
//   one registered client (tests/integration/run gives the auth app its settings), driven
//   through its interaction pages (login, consent) with fetch and a cookie jar. It signs RS256.
// - `fake`: a small issuer of this file on BASE+43 that signs ES256 and, on demand, answers
//   the bad things: a token signed by another key (same kid, or an unknown one), for another
//   audience, from another issuer, expired, with another nonce; an oversize or no answer.
//   It checks the PKCE verifier against the challenge, as a real provider does.
// - `down`: nothing listens (503, quickly).
// A "browser" is a cookie jar: the th_oidc cookie /start sets binds the state to it.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { assertError, assertStatus, show } from './lib/assert.mjs';
import { api, fixtures, rnd } from './lib/fixtures.mjs';
import { PORT_BASE, request, run, sleep } from './lib/http.mjs';
import {
  holdSessionStarts, metric, poolMetrics, psql,
} from './lib/stack.mjs';
import { newestMail, linkToken } from './lib/mail.mjs';
import { OIDC_CLIENT, startProvider } from './lib/oidcprovider.mjs';
import { totpCode } from './lib/totp.mjs';

const { newUser, freshAddr, registerRaw } = fixtures({ net: 75, slug: 'oidc', name: 'Oidc' });

const REDIRECT = `http://127.0.0.1:${PORT_BASE}/`;
const LOCAL_ISS = `http://127.0.0.1:${PORT_BASE + 42}`;
const FAKE_ISS = `http://127.0.0.1:${PORT_BASE + 43}`;
const FAKE_CLIENT = 'townhall-fake';

// --- the real provider (lib/oidcprovider.mjs) -------------------------------------------
let local;

// --- the fake issuer -------------------------------------------------------------------
const keyA = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const keyB = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const fake = {
  mode: 'ok', claims: {}, codes: new Map(), jwksHits: 0, rotated: false,
};
let fakeServer;

const b64u = (b) => Buffer.from(b).toString('base64url');
function es256(payload, key, kid) {
  const head = b64u(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid }));
  const body = b64u(JSON.stringify(payload));
  const sig = crypto.sign('sha256', Buffer.from(`${head}.${body}`), { key, dsaEncoding: 'ieee-p1363' });
  return `${head}.${body}.${b64u(sig)}`;
}

function fakeToken(entry) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: FAKE_ISS, aud: FAKE_CLIENT, sub: entry.sub, nonce: entry.nonce, iat: now, exp: now + 300, ...entry.claims,
  };
  switch (fake.mode) {
    case 'otherkey': return es256(claims, keyB.privateKey, 'a1'); // the kid of A, the key of B
    case 'unknownkid': return es256(claims, keyB.privateKey, 'b1');
    case 'aud': return es256({ ...claims, aud: 'someone-else' }, keyA.privateKey, 'a1');
    case 'azp': return es256({ ...claims, aud: [FAKE_CLIENT, 'x'], azp: 'x' }, keyA.privateKey, 'a1');
    case 'iss': return es256({ ...claims, iss: 'https://evil.example' }, keyA.privateKey, 'a1');
    case 'expired': return es256({ ...claims, iat: now - 7200, exp: now - 3600 }, keyA.privateKey, 'a1');
    case 'nonce': return es256({ ...claims, nonce: 'not-the-nonce' }, keyA.privateKey, 'a1');
    default: return es256(claims, keyA.privateKey, 'a1');
  }
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString();
}

function fakeHandler(req, res) {
  const url = new URL(req.url, FAKE_ISS);
  const json = (status, o) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(o)); };
  if (url.pathname === '/.well-known/openid-configuration') {
    return json(200, {
      issuer: FAKE_ISS, authorization_endpoint: `${FAKE_ISS}/auth`, token_endpoint: `${FAKE_ISS}/token`, jwks_uri: `${FAKE_ISS}/jwks`,
    });
  }
  if (url.pathname === '/jwks') {
    fake.jwksHits += 1;
    const jwk = (k, kid) => ({ ...k.publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'ES256' });
    return json(200, { keys: fake.rotated ? [jwk(keyA, 'a1'), jwk(keyB, 'b1')] : [jwk(keyA, 'a1')] });
  }
  if (url.pathname === '/auth') {
    const q = url.searchParams;
    const code = rnd(12);
    fake.codes.set(code, {
      nonce: q.get('nonce'), challenge: q.get('code_challenge'), redirect: q.get('redirect_uri'), sub: fake.sub, claims: fake.claims,
    });
    const to = new URL(q.get('redirect_uri'));
    to.searchParams.set('code', code);
    to.searchParams.set('state', q.get('state'));
    res.writeHead(302, { location: to.href });
    return res.end();
  }
  if (url.pathname === '/token' && req.method === 'POST') {
    return readBody(req).then((text) => {
      const f = new URLSearchParams(text);
      const entry = fake.codes.get(f.get('code'));
      fake.codes.delete(f.get('code'));
      if (fake.mode === 'slow') return; // never answers
      if (fake.mode === 'oversize') return json(200, { id_token: 'x'.repeat(300000) });
      const challenge = crypto.createHash('sha256').update(f.get('code_verifier') || '').digest('base64url');
      if (!entry || entry.challenge !== challenge || entry.redirect !== f.get('redirect_uri')
          || f.get('client_id') !== FAKE_CLIENT) {
        return json(400, { error: 'invalid_grant' });
      }
      return json(200, { access_token: rnd(), token_type: 'Bearer', id_token: fakeToken(entry) });
    });
  }
  res.writeHead(404);
  return res.end();
}

// --- a browser ---------------------------------------------------------------------------
function browser() {
  const jar = new Map();
  const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const keep = (setCookies) => {
    for (const c of setCookies) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      jar.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
    }
  };
  const addr = freshAddr();
  return {
    jar,
    // a request to Townhall (lib/http.mjs: never follows redirects)
    async th(path) {
      const res = await request('GET', path, { headers: jar.size ? { cookie: cookieHeader() } : {}, localAddress: addr });
      const sc = res.headers['set-cookie'];
      if (sc) keep(Array.isArray(sc) ? sc : [sc]);
      return res;
    },
    // a request to a provider (fetch, manual redirects)
    async ext(url, init = {}) {
      const res = await fetch(url, {
        ...init, redirect: 'manual', headers: { ...(init.headers || {}), cookie: cookieHeader() },
      });
      keep(res.headers.getSetCookie());
      return res;
    },
  };
}

// /start, then the provider's pages until it sends the browser back to REDIRECT:
// {code, state, query} (the query the page would read)
async function authorize(b, provider, login) {
  const start = await b.th(`/api/auth/oidc/${provider}/start?redirect_uri=${encodeURIComponent(REDIRECT)}`);
  assert.equal(start.status, 302, show(start));
  let url = start.headers.location;
  for (let step = 0; step < 20; step++) {
    if (url.startsWith(REDIRECT)) {
      const q = new URL(url).searchParams;
      return { code: q.get('code'), state: q.get('state'), query: q, start };
    }
    const res = await b.ext(url);
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location'), url).href;
      continue;
    }
    const html = await res.text();
    assert.equal(res.status, 200, `provider page ${url}: ${html.slice(0, 300)}`);
    const action = new URL(html.match(/action="([^"]+)"/)[1], url).href;
    const form = /value="login"/.test(html)
      ? new URLSearchParams({ prompt: 'login', login, password: 'any' })
      : new URLSearchParams({ prompt: 'consent' });
    const post = await b.ext(action, {
      method: 'POST', body: form.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.ok(post.status >= 300 && post.status < 400, `form post ${action}: ${post.status}`);
    url = new URL(post.headers.get('location'), action).href;
  }
  throw new Error('the provider never sent the browser back');
}

const callback = (b, provider, code, state) => b.th(`/api/auth/oidc/${provider}/callback?code=${encodeURIComponent(code)}&state=${encodeURIComponent(state)}`);

async function login(provider, sub, claims, b = browser()) {
  if (provider === 'local') local.accounts.set(sub, claims);
  else { fake.sub = sub; fake.claims = claims; }
  const a = await authorize(b, provider, sub);
  return { res: await callback(b, provider, a.code, a.state), ...a, b };
}

async function identities(uid) {
  const r = await psql(`SELECT count(*) FROM user_identities WHERE user_id = ${Number(uid)}`);
  assert.equal(r.code, 0, r.stderr);
  return Number(r.stdout.trim());
}

describe('oidc', () => {
  before(async () => {
    local = await startProvider({ port: PORT_BASE + 42, redirect: REDIRECT });
    fakeServer = http.createServer(fakeHandler);
    await new Promise((res) => fakeServer.listen(PORT_BASE + 43, '127.0.0.1', res));
  });
  after(() => {
    local?.close();
    fakeServer?.closeAllConnections?.();
    fakeServer?.close();
  });

  test('the configured providers are listed; unknown ones are 404; redirect_uri from the allow-list only', async () => {
    const r = assertStatus(await api('GET', '/api/auth/oidc/providers'), 200, 'providers:');
    assert.deepEqual(r.json.items.map((p) => p.name), ['local', 'fake', 'down']);
    assert.equal(r.json.items[0].label, 'Test IdP');
    assert.equal(r.json.next_cursor, null);
    const b = browser();
    assertError(await b.th(`/api/auth/oidc/nope/start?redirect_uri=${encodeURIComponent(REDIRECT)}`), 404, 'not_found');
    assertError(await b.th('/api/auth/oidc/nope/callback?code=a&state=b'), 404, 'not_found');
    assertError(await b.th('/api/auth/oidc/local/start'), 400, 'validation_failed', 'redirect_uri');
    for (const bad of ['https://evil.example/', `${REDIRECT}x`, `http://127.0.0.1:${PORT_BASE}`]) {
      assertError(await b.th(`/api/auth/oidc/local/start?redirect_uri=${encodeURIComponent(bad)}`), 400, 'validation_failed', 'redirect_uri');
    }
  });

  test('start: 302 to the provider with state, nonce and PKCE S256, and a browser cookie', async () => {
    const b = browser();
    const res = await b.th(`/api/auth/oidc/local/start?redirect_uri=${encodeURIComponent(REDIRECT)}`);
    assert.equal(res.status, 302, show(res));
    const loc = new URL(res.headers.location);
    assert.equal(loc.origin, LOCAL_ISS);
    const q = loc.searchParams;
    assert.equal(q.get('response_type'), 'code');
    assert.equal(q.get('client_id'), OIDC_CLIENT.id);
    assert.equal(q.get('redirect_uri'), REDIRECT);
    assert.equal(q.get('code_challenge_method'), 'S256');
    assert.match(q.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/);
    assert.match(q.get('state'), /^[A-Za-z0-9_-]{43}$/);
    assert.match(q.get('nonce'), /^[A-Za-z0-9_-]{43}$/);
    assert.match(q.get('scope'), /\bopenid\b/);
    const cookie = [res.headers['set-cookie']].flat().join(' ');
    assert.match(cookie, /th_oidc=[A-Za-z0-9_-]{43}; Path=\/api\/auth\/oidc\/; Max-Age=\d+; HttpOnly; SameSite=Lax/);
    // only hashes of the state and of the cookie are stored
    const r = await psql(`SELECT count(*) FROM oidc_states WHERE state_hash = sha256('${q.get('state')}'::bytea)`);
    assert.equal(r.stdout.trim(), '1', r.stderr);
  });

  let alice;
  test('a new subject gets a new account with a free username; the same subject reaches it again', async () => {
    const sub = `alice-${rnd()}`;
    const claims = {
      email: `${sub}@example.test`, email_verified: true, preferred_username: `Alice.${sub}`, name: 'Alice Example',
    };
    const m0 = await poolMetrics('auth');
    const first = await login('local', sub, claims);
    assertStatus(first.res, 200, 'first login:');
    const m1 = await poolMetrics('auth');
    assert.equal(metric(m1, 'th_oidc_logins_total') - metric(m0, 'th_oidc_logins_total'), 1);
    const body = first.res.json;
    assert.ok(body.access_token && body.refresh_token && body.expires_in > 0, show(first.res));
    assert.match(body.user.username, /^[a-z0-9_]{3,32}$/);
    assert.ok(body.user.username.startsWith('alice_alice_'), body.user.username);
    assert.equal(body.user.display_name, 'Alice Example');
    assert.equal(first.query.get('iss'), LOCAL_ISS); // RFC 9207: the provider names itself
    const me = assertStatus(await api('GET', '/api/auth/me', body.access_token), 200, 'me:').json.user;
    assert.equal(me.email, claims.email);
    assert.equal(me.email_verified, true);
    assert.equal(me.totp_enabled, false);
    assert.equal(await identities(body.user.id), 1);
    // the same subject again, from another browser: the same account
    const again = await login('local', sub, claims);
    assertStatus(again.res, 200, 'second login:');
    assert.equal(again.res.json.user.id, body.user.id);
    // a refresh token of the session works like a password login's
    assertStatus(await api('POST', '/api/auth/refresh', null, { refresh_token: again.res.json.refresh_token }), 200, 'refresh:');
    // a second subject whose preferred name is the same gets another free username
    // ... and a name the registration would refuse (a right-to-left override: 'Alice Example'
    // would show reversed after it) is not taken: the display name is the username
    const bob = await login('local', `bob-${rnd()}`, { ...claims, email: `b${rnd()}@example.test`, name: 'Alice \u202EelpmaxE' });
    assertStatus(bob.res, 200, 'same preferred name:');
    assert.notEqual(bob.res.json.user.username, body.user.username);
    assert.match(bob.res.json.user.username, /^[a-z0-9_]{3,32}$/);
    assert.equal(bob.res.json.user.display_name, bob.res.json.user.username);
    alice = { sub, claims, id: body.user.id };
  });

  test('an account with the same verified address is linked; an unverified one is not', async () => {
    const u = await newUser('olink');
    // not verified on our side yet: a new account cannot take the address, none is linked
    const sub = `link-${rnd()}`;
    const refused = await login('local', sub, { email: u.email, email_verified: true });
    assertError(refused.res, 409, 'conflict');
    assert.equal(await identities(u.id), 0);
    const r = await psql(`UPDATE users SET email_verified_at = now() WHERE id = ${Number(u.id)}`);
    assert.equal(r.code, 0, r.stderr);
    // verified on both sides: linked
    const linked = await login('local', sub, { email: u.email.toUpperCase(), email_verified: true });
    assertStatus(linked.res, 200, 'linked:');
    assert.equal(linked.res.json.user.id, u.id);
    assert.equal(await identities(u.id), 1);
    // the provider not vouching for the address links nothing
    const other = await login('local', `nv-${rnd()}`, { email: u.email, email_verified: false });
    assertError(other.res, 403, 'forbidden');
    assert.equal(await identities(u.id), 1);
    // the password still works
    assertStatus(await request('POST', '/api/auth/login', { body: { login: u.username, password: u.password }, localAddress: freshAddr() }), 200, 'password login:');
  });

  test('an address the provider does not vouch for makes no account; its owner registers it, unreached', async () => {
    const victim = `victim_${rnd()}@example.test`;
    const sub = `squat-${rnd()}`;
    // email_verified false, missing or a string: no account is made (the old code made one
    // with the address, the identity its credential, and its owner could not register)
    for (const claims of [{ email: victim, email_verified: false }, { email: victim }, { email: victim, email_verified: 'no' }]) {
      const r = await login('fake', sub, claims);
      assertError(r.res, 403, 'forbidden');
      assert.ok(!r.res.json.access_token, JSON.stringify(claims));
    }
    const none = await psql(`SELECT count(*) FROM users WHERE email = '${victim}'`);
    assert.equal(none.stdout.trim(), '0', none.stderr);
    // the address's owner registers it; the identity reaches nothing
    const owner = assertStatus(await registerRaw({ email: victim, username: `v_${rnd()}`, password: 'victim-Passw0rd' }),
      201, 'the owner registers:').json;
    assertError((await login('fake', sub, { email: victim, email_verified: false })).res, 403, 'forbidden');
    assert.equal(await identities(owner.user.id), 0);
  });

  // a link as a sign-in with email_verified false left it before 0045: the account holds
  // the address unproven and the identity signs in to it
  const unprovenLink = async (u, sub) => {
    const r = await psql(`INSERT INTO user_identities (provider, subject, user_id) VALUES ('fake', '${sub}', ${Number(u.id)})`);
    assert.equal(r.code, 0, r.stderr);
  };
  const atk = { email: `atk_${rnd()}@attacker.test`, email_verified: false };

  test('a link made while the address was unproven (before 0045) dies when its owner resets the password', async () => {
    const v = await newUser('opr');
    const sub = `legacy-${rnd()}`;
    await unprovenLink(v, sub);
    const before = await login('fake', sub, atk);
    assertStatus(before.res, 200, 'the link signs in until the address is proven:');
    assert.equal(before.res.json.user.id, v.id);
    assertStatus(await request('POST', '/api/auth/password/forgot', { body: { email: v.email }, localAddress: freshAddr() }), 204, 'forgot:');
    const reset = linkToken(await newestMail(v.email, { filter: (m) => /Reset/.test(m.subject) }), '/reset-password');
    assertStatus(await request('POST', '/api/auth/password/reset', { body: { token: reset, password: 'owner-Passw0rd-1' } }), 204, 'reset:');
    const after = await login('fake', sub, atk);
    assert.notEqual(after.res.json?.user?.id, v.id, `the identity still reaches the account after the reset: ${show(after.res)}`);
    assertError(after.res, 403, 'forbidden');
    assert.equal(await identities(v.id), 0);
  });

  test('a link made while the address was unproven dies, with its sessions, when its owner verifies the address', async () => {
    const w = await newUser('opv');
    const sub = `legacy-${rnd()}`;
    await unprovenLink(w, sub);
    const s = await login('fake', sub, atk);
    assertStatus(s.res, 200, 'signed in by the link:');
    // the link of the registration's mail
    const verify = linkToken(await newestMail(w.email, { filter: (m) => /Confirm/.test(m.subject) }), '/verify-email');
    assertStatus(await request('POST', '/api/auth/verify-email', { body: { token: verify } }), 200, 'verify:');
    // the sessions it started go with it (they cannot be told from the owner's)
    const refreshed = await request('POST', '/api/auth/refresh', { body: { refresh_token: s.res.json.refresh_token } });
    assert.equal(refreshed.status, 401, `the link's session outlived the verification: ${show(refreshed)}`);
    const again = await login('fake', sub, atk);
    assert.notEqual(again.res.json?.user?.id, w.id, `the identity still reaches the account after the verification: ${show(again.res)}`);
    assertError(again.res, 403, 'forbidden');
    assert.equal(await identities(w.id), 0);
    assertStatus(await request('POST', '/api/auth/login', { body: { login: w.username, password: w.password }, localAddress: freshAddr() }),
      200, 'the owner\'s password:');
  });

  test('a forged, missing, used or foreign state is refused; the code is single use', async () => {
    const b = browser();
    local.accounts.set(alice.sub, alice.claims);
    const a = await authorize(b, 'local', alice.sub);
    assertError(await b.th(`/api/auth/oidc/local/callback?code=${a.code}`), 400, 'validation_failed', 'state');
    assertError(await b.th(`/api/auth/oidc/local/callback?state=${a.state}`), 400, 'validation_failed', 'code');
    // a one-time code where the provider's code is due: not this state's step
    assertError(await b.th(`/api/auth/oidc/local/callback?state=${a.state}&totp=123456`), 400, 'validation_failed', 'state');
    assertError(await callback(b, 'local', a.code, `${a.state.slice(0, -2)}AA`), 400, 'validation_failed', 'state');
    // another browser (no cookie, or its own) with this browser's state and code
    const thief = browser();
    assertError(await callback(thief, 'local', a.code, a.state), 400, 'validation_failed', 'state');
    await thief.th(`/api/auth/oidc/local/start?redirect_uri=${encodeURIComponent(REDIRECT)}`);
    assert.ok(thief.jar.get('th_oidc'));
    assertError(await callback(thief, 'local', a.code, a.state), 400, 'validation_failed', 'state');
    // the same state at another provider's callback
    assertError(await callback(b, 'fake', a.code, a.state), 400, 'validation_failed', 'state');
    // the owner still can: the thief's attempts did not use it up
    const ok = await callback(b, 'local', a.code, a.state);
    assertStatus(ok, 200, 'the owner:');
    assert.equal(ok.json.user.id, alice.id);
    // used: the same callback again
    assertError(await callback(b, 'local', a.code, a.state), 400, 'validation_failed', 'state');
    // the code replayed with a fresh state of the same browser: the provider refuses it
    const start = await b.th(`/api/auth/oidc/local/start?redirect_uri=${encodeURIComponent(REDIRECT)}`);
    const state2 = new URL(start.headers.location).searchParams.get('state');
    assertError(await callback(b, 'local', a.code, state2), 401, 'unauthorized');
    // an expired state
    const late = await authorize(b, 'local', alice.sub);
    const r = await psql(`UPDATE oidc_states SET expires_at = now() - interval '1 second' WHERE state_hash = sha256('${late.state}'::bytea)`);
    assert.equal(r.stdout.trim(), 'UPDATE 1', r.stderr);
    assertError(await callback(b, 'local', late.code, late.state), 400, 'validation_failed', 'state');
  });

  test('ES256 tokens are accepted; another key, audience, issuer, nonce or an expired token are 401', async () => {
    fake.mode = 'ok';
    const sub = `fake-${rnd()}`;
    const claims = { email: `${sub}@example.test`, email_verified: true };
    const good = await login('fake', sub, claims);
    assertStatus(good.res, 200, 'ES256:');
    const uid = good.res.json.user.id;
    for (const mode of ['otherkey', 'unknownkid', 'aud', 'azp', 'iss', 'expired', 'nonce']) {
      fake.mode = mode;
      const bad = await login('fake', sub, claims);
      assertError(bad.res, 401, 'unauthorized');
      assert.ok(!bad.res.json.access_token, mode);
      // the state is used even so
      assertError(await callback(bad.b, 'fake', bad.code, bad.state), 400, 'validation_failed', 'state');
    }
    // nothing was created or linked by the bad tokens
    fake.mode = 'unknownkid';
    const fresh = await login('fake', `nobody-${rnd()}`, { email: `n${rnd()}@example.test`, email_verified: true });
    assertError(fresh.res, 401, 'unauthorized');
    assert.equal(await identities(uid), 1);
    fake.mode = 'ok';
  });

  test('an unknown key id fetches the key set again, at most every 2 s a worker: a rotated key is found', async () => {
    const sub = `rot-${rnd()}`;
    const claims = { email: `${sub}@example.test`, email_verified: true };
    fake.mode = 'unknownkid';
    const hits0 = fake.jwksHits;
    const t0 = Date.now();
    for (let i = 0; i < 6; i++) assertError((await login('fake', sub, claims)).res, 401, 'unauthorized');
    const elapsed = Date.now() - t0;
    // TH_OIDC_JWKS_MIN_REFRESH=2 (tests/integration/run), 3 auth workers: a flood of made-up
    // kids costs the provider at most one fetch a worker per 2 s
    const most = 3 * (1 + Math.floor(elapsed / 2000));
    assert.ok(fake.jwksHits - hits0 <= most, `${fake.jwksHits - hits0} key set fetches in ${elapsed} ms (at most ${most})`);
    // the provider rotates: key B is published as b1; once the interval passed, it is found
    fake.rotated = true;
    await sleep(2100);
    const ok = await login('fake', sub, claims);
    fake.mode = 'ok';
    fake.rotated = false;
    assertStatus(ok.res, 200, 'after the rotation:');
  });

  test('a provider that does not answer, or answers too much, is 503 within bounded time', async () => {
    const b = browser();
    let t0 = Date.now();
    const down = await b.th(`/api/auth/oidc/down/start?redirect_uri=${encodeURIComponent(REDIRECT)}`);
    assertError(down, 503, 'unavailable');
    assert.ok(down.headers['retry-after']);
    assert.ok(Date.now() - t0 < 8000, `down took ${Date.now() - t0} ms`);
    fake.sub = `slow-${rnd()}`;
    for (const mode of ['slow', 'oversize']) {
      const a = await authorize(b, 'fake', fake.sub);
      fake.mode = mode;
      t0 = Date.now();
      const res = await callback(b, 'fake', a.code, a.state);
      fake.mode = 'ok';
      assertError(res, 503, 'unavailable');
      // TH_OIDC_HTTP_TIMEOUT_MS is 2 s in the test stack
      assert.ok(Date.now() - t0 < 9000, `${mode} took ${Date.now() - t0} ms`);
    }
  });

  test('a suspended account gets 403 suspended', async () => {
    const sub = `susp-${rnd()}`;
    const claims = { email: `${sub}@example.test`, email_verified: true };
    const first = await login('local', sub, claims);
    assertStatus(first.res, 200, 'first:');
    // as an operator at a shell would (the suspension's modlog entry needs an actor)
    const r = await psql(`SELECT set_config('townhall.actor_id', 'operator', true); UPDATE users SET suspended_at = now() WHERE id = ${Number(first.res.json.user.id)}`);
    assert.equal(r.code, 0, r.stderr);
    assertError((await login('local', sub, claims)).res, 403, 'suspended');
  });

  test('an account with TOTP on still owes its one-time code, once, in the same browser', async () => {
    const sub = `totp-${rnd()}`;
    const claims = { email: `${sub}@example.test`, email_verified: true };
    const first = await login('local', sub, claims);
    const tok = assertStatus(first.res, 200, 'first:').json.access_token;
    const setup = assertStatus(await api('POST', '/api/auth/totp/setup', tok), 200, 'setup:').json;
    const t = Date.now() / 1000;
    assertStatus(await api('POST', '/api/auth/totp/enable', tok, { code: totpCode(setup.secret, t) }), 200, 'enable:');
    const due = await login('local', sub, claims);
    assertError(due.res, 401, 'totp_required', 'totp');
    const path = (s, c) => `/api/auth/oidc/local/callback?state=${encodeURIComponent(s)}&totp=${c}`;
    // another browser cannot finish it
    assertError(await browser().th(path(due.state, totpCode(setup.secret, t + 30))), 400, 'validation_failed', 'state');
    // the code of the next step (within the window): one the enable did not use
    const ok = await due.b.th(path(due.state, totpCode(setup.secret, t + 30)));
    assertStatus(ok, 200, 'with the code:');
    assert.equal(ok.json.user.id, first.res.json.user.id);
    assertError(await due.b.th(path(due.state, totpCode(setup.secret, t + 60))), 400, 'validation_failed', 'state');
    // a wrong code uses the state up: a new login starts over
    const again = await login('local', sub, claims);
    assertError(again.res, 401, 'totp_required');
    assertError(await again.b.th(path(again.state, '000000')), 401, 'unauthorized');
    assertError(await again.b.th(path(again.state, totpCode(setup.secret, t + 60))), 400, 'validation_failed', 'state');
  });

  test('a sign-in racing a suspension gets 403 suspended and no session', async () => {
    // its session's statement waits (holdSessionStarts) while the suspension runs to its end
    const root = await newUser('oroot');
    const g = await run('scripts/admin', ['grant', root.username], { timeoutMs: 30000 });
    assert.equal(g.code, 0, g.stderr);
    const sub = `race-${rnd()}`;
    const claims = { email: `${sub}@example.test`, email_verified: true };
    const uid = assertStatus((await login('fake', sub, claims)).res, 200, 'first:').json.user.id;
    fake.sub = sub;
    fake.claims = claims;
    const b = browser();
    const a = await authorize(b, 'fake', sub);
    const hold = await holdSessionStarts();
    let racing;
    let suspended;
    try {
      racing = callback(b, 'fake', a.code, a.state);
      await hold.waiting('INSERT INTO sessions');
      suspended = await api('POST', `/api/admin/users/${uid}/suspend`, root.token);
    } finally {
      await hold.release();
    }
    assertStatus(suspended, 200, 'suspend:');
    const late = await racing;
    if (late.status === 200) {
      const r = await api('POST', '/api/auth/refresh', null, { refresh_token: late.json.refresh_token });
      assert.fail(`the sign-in racing the suspension got a session (its access token works for 15 minutes; refresh: ${r.status})`);
    }
    assertError(late, 403, 'suspended');
    const live = await psql(`SELECT count(*) FROM sessions WHERE user_id = ${Number(uid)} AND revoked_at IS NULL`);
    assert.equal(live.stdout.trim(), '0', live.stderr);
  });

  test('the one-time code step of a sign-in started before a reset gets 401', async () => {
    const sub = `totpr-${rnd()}`;
    const claims = { email: `${sub}@example.test`, email_verified: true };
    const tok = assertStatus((await login('local', sub, claims)).res, 200, 'first:').json.access_token;
    const setup = assertStatus(await api('POST', '/api/auth/totp/setup', tok), 200, 'setup:').json;
    const t = Date.now() / 1000;
    assertStatus(await api('POST', '/api/auth/totp/enable', tok, { code: totpCode(setup.secret, t) }), 200, 'enable:');
    const due = await login('local', sub, claims);
    assertError(due.res, 401, 'totp_required', 'totp');
    // the reset comes between the provider's sign-in and the code
    assertStatus(await request('POST', '/api/auth/password/forgot', { body: { email: claims.email }, localAddress: freshAddr() }), 204, 'forgot:');
    const reset = linkToken(await newestMail(claims.email, { filter: (m) => /Reset/.test(m.subject) }), '/reset-password');
    assertStatus(await request('POST', '/api/auth/password/reset', { body: { token: reset, password: 'owner-Passw0rd-1' } }), 204, 'reset:');
    const step = await due.b.th(`/api/auth/oidc/local/callback?state=${encodeURIComponent(due.state)}&totp=${totpCode(setup.secret, t + 30)}`);
    assert.notEqual(step.status, 200, `the code step after the reset started a session: ${show(step)}`);
    assertError(step, 401, 'unauthorized');
    // a new sign-in (the identity was linked with the address proven: it stays) owes its code as before
    assertError((await login('local', sub, claims)).res, 401, 'totp_required');
  });

  test('deleting an account removes its identities', async () => {
    const sub = `gone-${rnd()}`;
    const first = await login('local', sub, { email: `${sub}@example.test`, email_verified: true });
    const uid = assertStatus(first.res, 200, 'login:').json.user.id;
    assert.equal(await identities(uid), 1);
    const r = await psql(`DELETE FROM users WHERE id = ${Number(uid)}`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await identities(uid), 0);
  });
});
