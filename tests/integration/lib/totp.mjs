// RFC 6238 codes computed by the tests (Node's crypto), for accounts with TOTP on.
import crypto from 'node:crypto';

// base32 (RFC 4648, no padding) to bytes
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

// the RFC 6238 code of secret (base32) at unix time t (seconds)
export function totpCode(secret, t) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(Math.floor(t / 30)));
  const mac = crypto.createHmac('sha1', b32decode(secret)).update(msg).digest();
  const off = mac[mac.length - 1] & 0x0f;
  return String((mac.readUInt32BE(off) & 0x7fffffff) % 1000000).padStart(6, '0');
}
