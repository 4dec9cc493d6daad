// JWS compact tokens (docs/stack-contract.md, "Auth settings") taken apart and forged by
// the tests: a real token's claims re-signed with the stack's own key ($TH_VAR_DIR/keys/
// jwt-es256.pem, made by scripts/stack) is how an expired or foreign token is tested without
// waiting for a real one to expire.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { VAR_DIR } from './http.mjs';

export const b64u = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

export function decodeJwt(token) {
  const parts = token.split('.');
  assert.equal(parts.length, 3, `not a JWS compact token: ${token}`);
  return {
    parts,
    header: JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')),
    sig: Buffer.from(parts[2], 'base64url'),
  };
}

// header / payload: objects, or already base64url-encoded strings (kept byte for byte)
export function signEs256(header, payload, key) {
  const h = typeof header === 'string' ? header : b64u(header);
  const p = typeof payload === 'string' ? payload : b64u(payload);
  const sig = crypto.sign('sha256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' });
  return `${h}.${p}.${sig.toString('base64url')}`;
}
export function signHs256(header, payload, secret) {
  const h = b64u(header);
  const p = typeof payload === 'string' ? payload : b64u(payload);
  const sig = crypto.createHmac('sha256', secret).update(`${h}.${p}`).digest();
  return `${h}.${p}.${sig.toString('base64url')}`;
}

export const stackKey = () => crypto.createPrivateKey(readFileSync(path.join(VAR_DIR, 'keys/jwt-es256.pem')));

// A real token's claims with changes, re-signed with the stack's key, same header (kid).
export function resign(token, changes) {
  const { parts, payload } = decodeJwt(token);
  return signEs256(parts[0], { ...payload, ...changes }, stackKey());
}
