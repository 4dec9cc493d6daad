// The media app's side of the stack for media.test.mjs and media_gc.test.mjs: where the
// local store keeps its files, whether the app answers, restarting its pool with other
// settings, and PNGs written by hand.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import path from 'node:path';
import zlib from 'node:zlib';
import {
  VAR_DIR, BASE_URL, request, run, until,
} from './http.mjs';

export const MEDIA_DIR = path.join(VAR_DIR, 'media');
export const MEDIA_TMP = path.join(MEDIA_DIR, 'tmp');

// The local store's file of a key: <dir>/<2 hex>/<2 hex>/<key>
export const localPath = (key) => path.join(MEDIA_DIR, key.slice(0, 2), key.slice(2, 4), key);

// A variant URL (absolute or not) -> path + query on our origin
export function urlPath(u) {
  const x = new URL(u, BASE_URL);
  return x.pathname + x.search;
}

// The app answers (a worker took the request): 404 not_found for an unknown medium, from the
// app, shown as status 200 so that assertStatus(await appUp(), 200, what) reads as a health
// check. Used where the tests need "the pool is up", apart from the health route itself.
export async function appUp() {
  const r = await request('GET', `/api/media/${crypto.randomUUID()}`, { timeoutMs: 5000 }).catch((e) => ({ status: 0, text: String(e) }));
  return { ...r, status: r.status === 404 && r.json?.error?.code === 'not_found' ? 200 : r.status };
}

// scripts/fcgi-pool restart media with env added to the stack's, then wait until it answers.
export async function restartMedia(env) {
  const r = await run('scripts/fcgi-pool', ['restart', 'media'], { env, timeoutMs: 90000 });
  assert.equal(r.code, 0, `fcgi-pool restart media: ${r.stdout}${r.stderr}`);
  const ok = await until(async () => (await appUp()).status === 200 || null, { timeoutMs: 15000 });
  assert.ok(ok, 'media app answering after restart');
}

// PNG: the signature and a chunk (length, type, data, CRC-32 of type and data).
export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
export function pngChunk(type, data) {
  const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

// A 1-bit grey PNG, all white, w x h (a 7000x7000 one deflates to ~6 KB); seed 1..127 makes
// one pixel byte differ: another file (hash) of the same size.
export function whitePng(w, h, seed = 0) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 1;
  const stride = Math.ceil(w / 8) + 1;
  const rows = Buffer.alloc(stride * h, 0xff);
  for (let y = 0; y < h; y++) rows[y * stride] = 0; // filter: none
  if (seed) rows[stride * (h >> 1) + 1] = seed & 0x7f;
  return Buffer.concat([
    PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', zlib.deflateSync(rows, { level: 9 })),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}
