// RFC 6238 codes for the tests that sign in with TOTP, computed with Node's crypto.
import crypto from 'node:crypto';

// base32 (RFC 4648, no padding) -> bytes
export function b32decode(s) {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0, buf = 0;
  const out = [];
  for (const ch of s) {
    buf = (buf << 5) | abc.indexOf(ch);
    bits += 5;
    if (bits >= 8) { out.push((buf >> (bits - 8)) & 0xff); bits -= 8; }
  }
  return Buffer.from(out);
}

// the 6-digit code of secret (base32) at unix time t (seconds; default now)
export function totpCode(secret, t = Date.now() / 1000) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(Math.floor(t / 30)));
  const mac = crypto.createHmac('sha1', b32decode(secret)).update(msg).digest();
  const off = mac[mac.length - 1] & 0x0f;
  return String((mac.readUInt32BE(off) & 0x7fffffff) % 1000000).padStart(6, '0');
}
