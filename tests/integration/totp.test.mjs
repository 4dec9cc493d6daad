// Two-factor sign-in with TOTP (issue 22 point 4), black-box against ../shared/API.md "v1.1
// additions": Account lifecycle — POST /api/auth/totp/setup, /enable, /disable, and
// POST /api/auth/login with `totp`. Codes are computed here with Node's crypto (RFC 6238).
//
// - Setup gives a base32 secret and an otpauth URL; enable needs a right code and answers ten
//   recovery codes; GET /api/auth/me says totp_enabled.
// - Login without a code: 401 totp_required; with a right code: 200; the same code twice, or a
//   code of an earlier step after a later one was used: refused; a recovery code once.
// - Disable needs the password and a code; bad input gets clear 4xx.
// - Client addresses: registrations and logins from 127.74.x.y (lib/fixtures.mjs).
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { request } from './lib/http.mjs';
import { assertError, assertStatus } from './lib/assert.mjs';
import { api, fixtures } from './lib/fixtures.mjs';
import { waitFor } from './lib/mqtt.mjs';
import { totpCode as code } from './lib/totp.mjs';

const { newUser, freshAddr } = fixtures({ net: 74, slug: 'totp', name: 'Totp' });

const now = () => Date.now() / 1000;
const login = (u, extra = {}) => request('POST', '/api/auth/login', {
  body: { login: u.username, password: u.password, ...extra }, localAddress: freshAddr(),
});

describe('totp', () => {
  let u;
  before(async () => { u = await newUser('tp'); });

  test('setup, enable, login with codes and recovery codes, disable', async () => {
    assertError(await api('POST', '/api/auth/totp/enable', u, { code: '123456' }), 409, 'conflict');
    const setup = assertStatus(await api('POST', '/api/auth/totp/setup', u), 200, 'setup:').json;
    assert.match(setup.secret, /^[A-Z2-7]{32}$/);
    assert.equal(setup.otpauth_url,
      `otpauth://totp/Townhall:${u.username}?secret=${setup.secret}&issuer=Townhall&algorithm=SHA1&digits=6&period=30`);
    // a wrong code, a malformed one: 400, nothing enabled
    const wrong = String((Number(code(setup.secret, now())) + 1) % 1000000).padStart(6, '0');
    assertError(await api('POST', '/api/auth/totp/enable', u, { code: wrong }), 400, 'validation_failed', 'code');
    assertError(await api('POST', '/api/auth/totp/enable', u, { code: 'abc' }), 400, 'validation_failed', 'code');
    assert.equal(assertStatus(await api('GET', '/api/auth/me', u), 200, 'me:').json.user.totp_enabled, false);
    const en = assertStatus(await api('POST', '/api/auth/totp/enable', u, { code: code(setup.secret, now()) }), 200, 'enable:').json;
    assert.equal(en.recovery_codes.length, 10);
    assert.equal(new Set(en.recovery_codes).size, 10);
    for (const c of en.recovery_codes) assert.match(c, /^[a-z2-7]{5}-[a-z2-7]{5}$/);
    // GET /api/auth/me is cached a few seconds per worker (accounts.c): the others catch up
    await waitFor(async () => (await api('GET', '/api/auth/me', u)).json?.user?.totp_enabled === true, 8000, 'totp_enabled true');
    assertError(await api('POST', '/api/auth/totp/setup', u), 409, 'conflict');

    // the password alone is not enough
    assertError(await login(u), 401, 'totp_required');
    // the code of the next step (within the window): accepted once
    const next = code(setup.secret, now() + 30);
    assertStatus(await login(u, { totp: next }), 200, 'login with a code:');
    assertError(await login(u, { totp: next }), 401, 'unauthorized');
    // a code of an earlier step than the last used one: refused too
    assertError(await login(u, { totp: code(setup.secret, now()) }), 401, 'unauthorized');
    // a wrong password with a right code is still a wrong login
    assertError(await login({ ...u, password: 'not-the-password' }, { totp: code(setup.secret, now() + 30) }), 401, 'unauthorized');
    // a recovery code, as typed (upper case, spaces): once
    const rc = en.recovery_codes[0];
    assertStatus(await login(u, { totp: ` ${rc.toUpperCase()} ` }), 200, 'login with a recovery code:');
    assertError(await login(u, { totp: rc }), 401, 'unauthorized');

    // disable: the password and a code (another recovery code)
    assertError(await api('POST', '/api/auth/totp/disable', u, { password: 'wrong-password', code: en.recovery_codes[1] }), 401, 'unauthorized', 'password');
    assertError(await api('POST', '/api/auth/totp/disable', u, { password: u.password, code: '000000' }), 401, 'unauthorized', 'code');
    assertError(await api('POST', '/api/auth/totp/disable', u, { password: u.password }), 400, 'validation_failed', 'code');
    assertStatus(await api('POST', '/api/auth/totp/disable', u, { password: u.password, code: en.recovery_codes[1] }), 204, 'disable:');
    await waitFor(async () => (await api('GET', '/api/auth/me', u)).json?.user?.totp_enabled === false, 8000, 'totp_enabled false');
    assertStatus(await login(u), 200, 'login without a code again:');
    assertError(await api('POST', '/api/auth/totp/disable', u, { password: u.password, code: '000000' }), 409, 'conflict');
  });
});
