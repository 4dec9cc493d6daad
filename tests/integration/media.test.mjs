// Media app, black-box over HTTP against ../shared/API.md ("Media") and issue 7: uploads
// (raw and multipart), detection by content, image variants and metadata, limits and quota,
// downloads (Range, headers, signed URLs), delete and deduplication, an interrupted upload,
// the worker's memory during a 100 MiB upload, and the S3 backend against s3rver.
//
// Design notes
// - Client addresses. Every registration comes from its own source address 127.9.x.y
//   (auth 127.1, community 127.3, mqtt 127.6, realtime 127.7, bridge 127.8, foundation
//   127.0.0.2); every other request from 127.0.0.1.
// - Samples are made here, in a temporary directory removed at the end: JPEG/PNG/GIF/WebP
//   with ImageMagick's convert, MP4/WebM/MP3/Ogg with ffmpeg (lavfi testsrc / sine), PDF by
//   hand (Debian's ImageMagick policy refuses to write PDF). Images that would be costly or
//   impossible to make with convert (over 50 megapixels, a 30000x30000 PNG bomb) are PNGs
//   written here: a 1-bit white picture deflates to almost nothing. The EXIF block (an
//   orientation and a GPS IFD) is written here too, so exiftool is not needed.
// - Reading images back: identify (ImageMagick).
// - Settings the tests need other than the defaults are given to the media pool by
//   restarting it (scripts/fcgi-pool restart media, env added to the stack's): a small
//   per-user quota and a short signed-URL lifetime (TH_MEDIA_QUOTA_BYTES,
//   TH_MEDIA_URL_TTL), then the S3 backend (TH_MEDIA_STORAGE=s3, TH_S3_*) against s3rver
//   (lib/s3.mjs) on TH_PORT_BASE+6. Each such block restores the stack's pool at its end.
//   The upload limit stays at its default (100 MiB): the memory test sends ~100 MiB.
// - The signed-URL secret is $TH_VAR_DIR/keys/media-url.secret. Until scripts/stack creates
//   it, this file writes one when it is missing and restarts the media pool.
// - Where API.md leaves the choice to the implementation the test accepts either answer and
//   says so (e.g. a non-member sees 404 or 403).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import zlib from 'node:zlib';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  PORT_BASE, VAR_DIR, BASE_URL, HTTP_HOST, HTTP_PORT, LOCAL_ONLY, request, runProgram, readPid, childrenOf, until, sleep,
} from './lib/http.mjs';
import { startS3, mediaS3Env } from './lib/s3.mjs';
import { isJson, responseChecks } from './lib/assert.mjs';
import { api, fixtures } from './lib/fixtures.mjs';
import { psql } from './lib/stack.mjs';
import {
  MEDIA_TMP, localPath, urlPath, appUp, restartMedia, PNG_SIGNATURE, pngChunk, whitePng,
} from './lib/media.mjs';

const RFC3339_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const S3_PORT = PORT_BASE + 6;
const MiB = 1024 * 1024;
const URL_SECRET_FILE = path.join(VAR_DIR, 'keys', 'media-url.secret');
// the stack's media settings: whatever the run script exported (none of ours)
const STACK_ENV = {};

// --- helpers ----------------------------------------------------------------

// failures show every header: Range, caching, redirects and Content-Disposition are what
// these tests are about
const { show, assertError, assertStatus, assertOneOf } = responseChecks({ headers: true });
const { newUser, community } = fixtures({ net: 9, slug: 'm', name: 'Media' });
const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');

// upload(who, bytes, {community_id, filename, type, headers, multipart, field}) -> response
function upload(who, bytes, o = {}) {
  const q = new URLSearchParams();
  if (o.community_id !== undefined) q.set('community_id', String(o.community_id));
  if (o.filename !== undefined && !o.multipart) q.set('filename', o.filename);
  const qs = q.toString();
  const headers = { ...(o.headers || {}) };
  const token = who && typeof who === 'object' ? who.token : who;
  if (token) headers.authorization = `Bearer ${token}`;
  let body = bytes;
  if (o.multipart) {
    const boundary = `----th${crypto.randomBytes(12).toString('hex')}`;
    const field = o.field || 'file';
    const fname = o.filename ?? 'upload.bin';
    body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello, before the file\r\n`),
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${fname}"\r\n`
        + `Content-Type: ${o.type || 'application/octet-stream'}\r\n\r\n`),
      bytes,
      Buffer.from(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="after"\r\n\r\nafter the file\r\n--${boundary}--\r\n`),
    ]);
    headers['content-type'] = `multipart/form-data; boundary=${boundary}`;
  } else if (o.type !== null) {
    headers['content-type'] = o.type || 'application/octet-stream';
  }
  return request('POST', `/api/media${qs ? `?${qs}` : ''}`, { headers, body, timeoutMs: o.timeoutMs ?? 60000 });
}

async function uploadOk(who, bytes, o = {}) {
  const res = await upload(who, bytes, o);
  assertStatus(res, 201, `upload (${o.filename || 'no name'}):`);
  assertMedia(res.json);
  return res.json;
}

function assertMedia(m) {
  for (const k of ['id', 'owner_id', 'community_id', 'kind', 'mime', 'size', 'sha256', 'filename', 'variants', 'created_at']) {
    assert.ok(k in m, `media.${k} missing: ${JSON.stringify(m)}`);
  }
  assert.match(m.id, UUID);
  assert.ok(Number.isInteger(m.owner_id), JSON.stringify(m));
  assert.ok(m.community_id === null || Number.isInteger(m.community_id), JSON.stringify(m));
  assert.ok(['image', 'video', 'audio', 'pdf'].includes(m.kind), JSON.stringify(m));
  assert.ok(Number.isInteger(m.size) && m.size >= 0, JSON.stringify(m));
  assert.match(m.sha256, /^[0-9a-f]{64}$/);
  assert.match(m.created_at, RFC3339_MS);
  assert.equal(typeof m.variants?.original, 'string', JSON.stringify(m));
}

// download(path, {token, headers}) -> raw response; a redirect to another origin (an S3
// presigned URL) is followed once, with the same Range / conditional headers.
async function download(p, o = {}) {
  const headers = { ...(o.headers || {}) };
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  const res = await request(o.method || 'GET', p, { headers, timeoutMs: o.timeoutMs ?? 30000 });
  if ([301, 302, 303, 307, 308].includes(res.status) && res.headers.location && o.follow !== false) {
    const loc = new URL(res.headers.location, BASE_URL);
    const h2 = { ...(o.headers || {}) };
    // *.localhost is loopback (curl knows it; getaddrinfo here does not)
    const connectTo = loc.hostname === 'localhost' || loc.hostname.endsWith('.localhost') ? '127.0.0.1' : loc.hostname;
    const r2 = await request(o.method || 'GET', loc.pathname + loc.search, {
      host: connectTo, port: Number(loc.port || 80), headers: { ...h2, host: loc.host }, timeoutMs: o.timeoutMs ?? 30000,
    });
    r2.redirectedFrom = res;
    return r2;
  }
  return res;
}

const getMedia = (id, who) => api('GET', `/api/media/${id}`, who);
const delMedia = (id, who) => api('DELETE', `/api/media/${id}`, who);

async function mediaRows(where = 'true') {
  const r = await psql(`SELECT count(*) FROM media WHERE ${where}`);
  assert.equal(r.code, 0, `psql: ${r.stderr}`);
  return Number(r.stdout.trim());
}

const tmpFiles = () => { try { return readdirSync(MEDIA_TMP); } catch { return []; } };

async function health() {
  return request('GET', '/api/media/health', { timeoutMs: 5000 }).catch((e) => ({ status: 0, text: String(e) }));
}
const mediaWorkers = () => childrenOf(readPid('run/media.pid'));

function procStatus(pid) {
  const t = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number((new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(t) || [])[1]);
  return { hwm: kb('VmHWM') * 1024, rss: kb('VmRSS') * 1024 };
}

// --- sample files --------------------------------------------------------------

let TMP;
const f = (name) => path.join(TMP, name);

async function sh(file, args, what) {
  const r = await runProgram(file, args, { timeoutMs: 60000 });
  assert.equal(r.code, 0, `${what || file} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
async function convert(args, out) {
  await sh('convert', [...args, out], 'convert');
  return readFileSync(out);
}
async function ffmpeg(args, out) {
  await sh('ffmpeg', ['-v', 'error', '-y', ...args, out], 'ffmpeg');
  return readFileSync(out);
}
// identify(buffer) -> {w, h, fmt, verbose?}
async function identify(buf, verbose = false) {
  const p = f(`id-${crypto.randomBytes(6).toString('hex')}`);
  writeFileSync(p, buf);
  try {
    const out = await sh('identify', ['-format', '%w %h %m\n', p]);
    const [w, h, fmt] = out.split('\n')[0].split(' ');
    const res = { w: Number(w), h: Number(h), fmt };
    if (verbose) res.verbose = await sh('identify', ['-verbose', p]);
    return res;
  } finally { rmSync(p, { force: true }); }
}
// the mean colour (0..1 per channel) of a region of an image
async function meanRGB(buf, geom) {
  const p = f(`px-${crypto.randomBytes(6).toString('hex')}`);
  writeFileSync(p, buf);
  try {
    const out = await sh('convert', [p, '-crop', geom, '+repage', '-format', '%[fx:mean.r] %[fx:mean.g] %[fx:mean.b]', 'info:']);
    const [r, g, b] = out.trim().split(' ').map(Number);
    return { r, g, b };
  } finally { rmSync(p, { force: true }); }
}

// An image of a random colour: unique bytes even after the app re-encodes it (equal
// uploads share storage, so a test that checks deletion needs bytes no other test stored).
async function uniqueImage(ext = 'gif', size = '64x48') {
  const colour = `#${crypto.randomBytes(3).toString('hex')}`;
  return convert(['-size', size, `xc:${colour}`, '-fill', `#${crypto.randomBytes(3).toString('hex')}`, '-draw', 'rectangle 0,0 20,20'],
    f(`u-${crypto.randomBytes(6).toString('hex')}.${ext}`));
}

// A minimal valid PDF, padded with a comment to about `size` bytes; unique per call.
function makePdf(size = 6000) {
  const nonce = crypto.randomBytes(8).toString('hex');
  const parts = ['%PDF-1.4\n%\xe2\xe3\xcf\xd3\n'];
  const objs = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 72 72] >>',
  ];
  let pdf = Buffer.from(parts[0], 'latin1');
  const offsets = [];
  objs.forEach((o, i) => {
    offsets.push(pdf.length);
    pdf = Buffer.concat([pdf, Buffer.from(`${i + 1} 0 obj\n${o}\nendobj\n`, 'latin1')]);
  });
  const padLen = Math.max(0, size - pdf.length - 200);
  const pad = Buffer.from(`% ${nonce} ${'x'.repeat(padLen)}\n`, 'latin1');
  // padding as a comment before the xref would shift offsets: put it after the objects
  const xrefAt = pdf.length + pad.length;
  const xref = `xref\n0 4\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`
    + `trailer\n<< /Size 4 /Root 1 0 R >>\nstartxref\n${xrefAt}\n%%EOF\n`;
  return Buffer.concat([pdf, pad, Buffer.from(xref, 'latin1')]);
}

// An APP1 Exif segment (big-endian TIFF): IFD0 with Orientation and a GPS IFD
// (GPSVersionID, latitude 48°51'29.04"N, longitude 2°17'40"E).
function exifApp1(orientation = 1) {
  const t = Buffer.alloc(152);
  t.write('MM', 0, 'latin1'); t.writeUInt16BE(42, 2); t.writeUInt32BE(8, 4);
  let o = 8;
  const entry = (tag, type, count, value) => {
    t.writeUInt16BE(tag, o); t.writeUInt16BE(type, o + 2); t.writeUInt32BE(count, o + 4);
    if (Buffer.isBuffer(value)) value.copy(t, o + 8); else if (type === 3) t.writeUInt16BE(value, o + 8); else t.writeUInt32BE(value, o + 8);
    o += 12;
  };
  t.writeUInt16BE(2, o); o += 2; // IFD0: 2 entries
  entry(0x0112, 3, 1, orientation);
  entry(0x8825, 4, 1, 38); // GPSInfo IFD pointer
  t.writeUInt32BE(0, o); o += 4; // no IFD1
  assert.equal(o, 38);
  t.writeUInt16BE(5, o); o += 2; // GPS IFD: 5 entries
  entry(0x0000, 1, 4, Buffer.from([2, 2, 0, 0]));
  entry(0x0001, 2, 2, Buffer.from('N\0', 'latin1'));
  entry(0x0002, 5, 3, 104);
  entry(0x0003, 2, 2, Buffer.from('E\0', 'latin1'));
  entry(0x0004, 5, 3, 128);
  t.writeUInt32BE(0, o); o += 4;
  assert.equal(o, 104);
  for (const [i, [n, d]] of [[48, 1], [51, 1], [2904, 100], [2, 1], [17, 1], [4000, 100]].entries()) {
    t.writeUInt32BE(n, 104 + i * 8); t.writeUInt32BE(d, 108 + i * 8);
  }
  const payload = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), t]);
  const hdr = Buffer.from([0xff, 0xe1, 0, 0]);
  hdr.writeUInt16BE(payload.length + 2, 2);
  return Buffer.concat([hdr, payload]);
}
function withExif(jpeg, orientation) {
  assert.equal(jpeg.readUInt16BE(0), 0xffd8, 'not a JPEG');
  return Buffer.concat([jpeg.subarray(0, 2), exifApp1(orientation), jpeg.subarray(2)]);
}
// Does an encoded image still carry EXIF / GPS? (bytes and ImageMagick's view)
async function metadataOf(buf) {
  const id = await identify(buf, true);
  return {
    exifBlock: buf.includes(Buffer.from('Exif\0\0', 'latin1')) || buf.includes(Buffer.from('eXIf', 'latin1')),
    gps: /exif:GPS/i.test(id.verbose),
    orientation: (/Orientation: (\S+)/.exec(id.verbose) || [])[1],
    id,
  };
}

const S = {}; // samples
const U = {}; // users

before(async () => {
  TMP = mkdtempSync(path.join(os.tmpdir(), 'th-media-it.'));
  // Until scripts/stack creates the signed-URL secret, write one and (re)start the pool.
  if (!LOCAL_ONLY && !existsSync(URL_SECRET_FILE)) {
    writeFileSync(URL_SECRET_FILE, crypto.randomBytes(32).toString('hex'), { mode: 0o600 });
    await restartMedia(STACK_ENV);
  }
  assertStatus(await appUp(), 200, 'media app answering:');
  for (const tool of ['convert', 'identify', 'ffmpeg']) {
    const r = await runProgram('sh', ['-c', `command -v ${tool}`]);
    assert.equal(r.code, 0, `${tool} is missing (scripts/install-deps: imagemagick, ffmpeg)`);
  }
  const v = await runProgram('convert', ['-version']);
  assert.match(v.stdout, /ImageMagick/, `convert is not ImageMagick: ${v.stdout}${v.stderr}`);
  const src = ['-size', '160x120', 'gradient:red-blue'];
  S.jpeg = await convert([...src, '-quality', '90'], f('s.jpg'));
  S.png = await convert(src, f('s.png'));
  S.gif = await convert(src, f('s.gif'));
  S.webp = await convert(src, f('s.webp'));
  S.mp4 = await ffmpeg(['-f', 'lavfi', '-i', 'testsrc=duration=1:size=64x64:rate=10', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-f', 'mp4'], f('s.mp4'));
  S.webm = await ffmpeg(['-f', 'lavfi', '-i', 'testsrc=duration=1:size=64x64:rate=10', '-c:v', 'libvpx', '-f', 'webm'], f('s.webm'));
  S.mp3 = await ffmpeg(['-f', 'lavfi', '-i', 'sine=frequency=440:duration=1', '-c:a', 'libmp3lame', '-f', 'mp3'], f('s.mp3'));
  S.ogg = await ffmpeg(['-f', 'lavfi', '-i', 'sine=frequency=440:duration=1', '-c:a', 'libvorbis', '-f', 'ogg'], f('s.ogg'));
  S.pdf = makePdf();
  // 2000x1500 photo-like JPEG: thumb 320x240, medium 1280x960
  S.bigJpeg = await convert(['-size', '2000x1500', 'plasma:red-blue', '-quality', '80'], f('big.jpg'));
  // 200x100 stored, left half red / right half blue, EXIF orientation 6 (rotate 90° CW
  // to display): shown 100x200, red on top. With GPS tags.
  const lr = await convert(['-size', '100x100', 'xc:red', '-size', '100x100', 'xc:blue', '+append', '-quality', '95'], f('lr.jpg'));
  S.rotatedGps = withExif(lr, 6);
  // a big one with GPS, so that every variant is really made by downscaling
  S.bigGps = withExif(S.bigJpeg, 1);

  U.a = await newUser('ma');
  U.b = await newUser('mb');
  U.c = await newUser('mc');
});

after(() => {
  if (TMP) rmSync(TMP, { recursive: true, force: true });
});

// --- health, the samples themselves ---------------------------------------------

test('GET /api/media/health -> 200 {"status":"ok"} (not taken for a media id)', async () => {
  const r = await health();
  assertStatus(r, 200, 'health:');
  assert.equal(r.json?.status, 'ok', show(r));
});

test('samples: the generated files are what the tests think they are', async () => {
  const m = await metadataOf(S.rotatedGps);
  assert.ok(m.gps, `the crafted JPEG should carry GPS tags:\n${m.id.verbose.slice(0, 3000)}`);
  assert.equal(m.orientation, 'RightTop', 'crafted orientation 6');
  assert.equal(m.id.w, 200); assert.equal(m.id.h, 100);
  assert.ok((await metadataOf(S.bigGps)).gps);
  const p = f('probe.pdf');
  writeFileSync(p, S.pdf);
  const r = await runProgram('file', ['--brief', '--mime-type', p]);
  assert.equal(r.stdout.trim(), 'application/pdf', 'libmagic sees the hand-made PDF as a PDF');
});

// --- every kind of the allow-list -----------------------------------------------

describe('allow-list: detection by content', () => {
  const KINDS = [
    ['jpeg', 'image', ['image/jpeg'], 'photo.jpg'],
    ['png', 'image', ['image/png'], 'pic.png'],
    ['gif', 'image', ['image/gif'], 'anim.gif'],
    ['webp', 'image', ['image/webp'], 'pic.webp'],
    ['mp4', 'video', ['video/mp4'], 'clip.mp4'],
    ['webm', 'video', ['video/webm'], 'clip.webm'],
    ['mp3', 'audio', ['audio/mpeg', 'audio/mp3'], 'song.mp3'],
    ['ogg', 'audio', ['audio/ogg', 'audio/vorbis', 'application/ogg'], 'song.ogg'],
    ['pdf', 'pdf', ['application/pdf'], 'doc.pdf'],
  ];
  for (const [name, kind, mimes, filename] of KINDS) {
    test(`${name}: raw body with a wrong Content-Type hint -> 201 ${kind}, detected type, downloadable`, async () => {
      // the declared type lies: only the content decides
      const m = await uploadOk(U.a, S[name], { filename, type: 'text/plain' });
      assert.equal(m.kind, kind, JSON.stringify(m));
      assert.ok(mimes.includes(m.mime), `mime ${m.mime} for ${name}`);
      assert.equal(m.owner_id, U.a.id);
      assert.equal(m.community_id, null);
      assert.equal(m.filename, filename);
      if (kind !== 'image' && kind !== 'video') {
        assert.equal(m.size, S[name].length, 'size of a non-image is its bytes');
        assert.equal(m.sha256, sha256(S[name]));
      }
      // a video is stored as a stream copy without its metadata (media_limits.test.mjs):
      // other bytes, hashed and sized as stored
      const g = await getMedia(m.id, U.a);
      assertStatus(g, 200, 'GET /api/media/:id');
      assert.equal(g.json.id, m.id);
      const d = await download(urlPath(m.variants.original));
      assertStatus(d, 200, `download ${m.variants.original}`);
      assert.equal(d.headers['content-type']?.split(';')[0], m.mime);
      assert.equal(d.body.length, m.size);
      assert.equal(sha256(d.body), m.sha256, 'downloaded bytes hash to media.sha256');
      if (kind === 'image') {
        for (const v of ['thumb', 'medium']) assert.equal(typeof m.variants[v], 'string', `variant ${v}: ${JSON.stringify(m)}`);
        assert.equal(m.width, 160); assert.equal(m.height, 120);
        const id = await identify(d.body);
        assert.deepEqual([id.w, id.h], [160, 120]);
      }
    });
  }

  test('multipart/form-data with a field `file` (other fields around it) -> 201, same bytes', async () => {
    const pdf = makePdf(3000);
    const m = await uploadOk(U.a, pdf, { multipart: true, filename: 'report.pdf', type: 'image/png' });
    assert.equal(m.kind, 'pdf'); assert.equal(m.mime, 'application/pdf');
    assert.equal(m.size, pdf.length); assert.equal(m.sha256, sha256(pdf));
    assert.equal(m.filename, 'report.pdf');
    const d = await download(urlPath(m.variants.original));
    assertStatus(d, 200);
    assert.ok(d.body.equals(pdf), 'multipart: the stored file is exactly the part, without the boundary');
    const img = await uploadOk(U.a, S.png, { multipart: true, filename: 'x.png' });
    assert.equal(img.kind, 'image'); assert.equal(img.mime, 'image/png');
  });

  test('multipart/form-data without a `file` part -> 400', async () => {
    const res = await upload(U.a, S.pdf, { multipart: true, field: 'other', filename: 'x.pdf' });
    assertOneOf(res, [400], 'no file part:');
    assert.ok(isJson(res), show(res));
  });

  test('no token -> 401', async () => {
    assertError(await upload(null, S.pdf), 401, 'unauthorized');
  });
});

describe('disallowed types -> 415, whatever the Content-Type and filename say', () => {
  const BAD = {
    'shell script': ['#!/bin/sh\necho pwned\nrm -rf /\n', 'image/png', 'innocent.png'],
    'SVG (script-capable)': ['<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script><rect width="10" height="10"/></svg>\n', 'image/jpeg', 'logo.jpg'],
    'HTML': ['<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>\n', 'application/pdf', 'doc.pdf'],
    'random bytes': [crypto.randomBytes(4096), 'video/mp4', 'clip.mp4'],
    'ELF executable': [null, 'audio/mpeg', 'song.mp3'],
    'ZIP': [Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), crypto.randomBytes(200)]), 'image/webp', 'x.webp'],
  };
  for (const [what, [body, type, filename]] of Object.entries(BAD)) {
    // LOCAL_ONLY: checks with psql that nothing was stored
    test(what, { skip: LOCAL_ONLY }, async () => {
      const before1 = await mediaRows(`owner_id = ${U.c.id}`);
      const bytes = body ?? readFileSync('/bin/true');
      const res = await upload(U.c, Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes), { type, filename });
      assertError(res, 415, 'unsupported_media_type');
      const res2 = await upload(U.c, Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes), { type, filename, multipart: true });
      assertError(res2, 415, 'unsupported_media_type');
      assert.equal(await mediaRows(`owner_id = ${U.c.id}`), before1, 'no row for a refused upload');
    });
  }
});

// --- images --------------------------------------------------------------------------

describe('images: variants, orientation, metadata', () => {
  test('thumb fits 320x320 and medium fits 1280x1280, with the right dimensions', async () => {
    const m = await uploadOk(U.a, S.bigJpeg, { filename: 'big.jpg' });
    assert.equal(m.kind, 'image');
    assert.equal(m.width, 2000); assert.equal(m.height, 1500);
    const expect = { original: [2000, 1500], thumb: [320, 240], medium: [1280, 960] };
    for (const [v, [w, h]] of Object.entries(expect)) {
      assert.equal(typeof m.variants[v], 'string', `variant ${v}`);
      const d = await download(urlPath(m.variants[v]));
      assertStatus(d, 200, `variant ${v}`);
      const id = await identify(d.body);
      assert.ok(Math.abs(id.w - w) <= 1 && Math.abs(id.h - h) <= 1, `${v}: ${id.w}x${id.h}, expected ${w}x${h}`);
      assert.ok(d.headers['content-type'], `${v} content-type`);
      assert.ok(/^image\//.test(d.headers['content-type']), `${v}: ${d.headers['content-type']}`);
    }
    // a small image is not blown up beyond its size and still fits both boxes
    const s = await uploadOk(U.a, S.png, { filename: 's.png' });
    for (const v of ['thumb', 'medium']) {
      const d = await download(urlPath(s.variants[v]));
      assertStatus(d, 200, `small ${v}`);
      const id = await identify(d.body);
      assert.ok(id.w <= 320 && id.h <= 320 && id.w > 0, `small ${v}: ${id.w}x${id.h}`);
      assert.ok(Math.abs(id.w / id.h - 160 / 120) < 0.05, `small ${v} keeps the aspect ratio: ${id.w}x${id.h}`);
    }
  });

  test('EXIF orientation applied; EXIF (GPS included) gone from every variant', async () => {
    const m = await uploadOk(U.a, S.rotatedGps, { filename: 'rot.jpg' });
    assert.equal(m.width, 100, `oriented width: ${JSON.stringify(m)}`);
    assert.equal(m.height, 200, `oriented height: ${JSON.stringify(m)}`);
    for (const v of ['original', 'thumb', 'medium']) {
      const d = await download(urlPath(m.variants[v]));
      assertStatus(d, 200, v);
      const md = await metadataOf(d.body);
      assert.ok(!md.gps, `${v}: GPS tags still there`);
      assert.ok(!md.exifBlock, `${v}: an EXIF block is still there`);
      assert.ok(!md.orientation || ['TopLeft', 'Undefined'].includes(md.orientation), `${v}: orientation ${md.orientation}`);
      assert.ok(md.id.h > md.id.w, `${v} is portrait after orientation: ${md.id.w}x${md.id.h}`);
      const top = await meanRGB(d.body, `${md.id.w}x${Math.floor(md.id.h / 4)}+0+0`);
      const bottom = await meanRGB(d.body, `${md.id.w}x${Math.floor(md.id.h / 4)}+0+${md.id.h - Math.floor(md.id.h / 4)}`);
      assert.ok(top.r > 0.7 && top.b < 0.3, `${v}: top should be red (rotated 90° CW): ${JSON.stringify(top)}`);
      assert.ok(bottom.b > 0.7 && bottom.r < 0.3, `${v}: bottom should be blue: ${JSON.stringify(bottom)}`);
    }
    const big = await uploadOk(U.a, S.bigGps, { filename: 'bg.jpg' });
    for (const v of ['original', 'thumb', 'medium']) {
      const d = await download(urlPath(big.variants[v]));
      assertStatus(d, 200, v);
      const md = await metadataOf(d.body);
      assert.ok(!md.gps && !md.exifBlock, `${v} of the big GPS JPEG still has EXIF/GPS`);
    }
  });

  test('over 50 megapixels -> 400 validation_failed', async () => {
    const png = whitePng(7100, 7100); // 50.41 MP
    const t0 = Date.now();
    const res = await upload(U.a, png, { filename: 'huge.png' });
    assertError(res, 400, 'validation_failed');
    assert.ok(Date.now() - t0 < 10000, `took ${Date.now() - t0} ms`);
    assertStatus(await appUp(), 200, 'health after a 50 MP image:');
  });

  // LOCAL_ONLY: reads the media pool's pid file (its workers must survive)
  test('PNG bomb (30000x30000, ~100 KB) -> 400 quickly, every worker survives', { skip: LOCAL_ONLY }, async () => {
    const bomb = whitePng(30000, 30000);
    assert.ok(bomb.length < 1 * MiB, `bomb is ${bomb.length} bytes`);
    const before1 = mediaWorkers();
    const t0 = Date.now();
    const res = await upload(U.a, bomb, { filename: 'bomb.png', timeoutMs: 30000 });
    const ms = Date.now() - t0;
    assertError(res, 400, 'validation_failed');
    assert.ok(ms < 5000, `the bomb took ${ms} ms to refuse`);
    assertStatus(await appUp(), 200, 'health after the bomb:');
    assert.deepEqual(mediaWorkers(), before1, 'no media worker died (multiwatch would have replaced it)');
    // a GIF header claiming 65535x65535 (1 frame) is refused as well, not decoded
    const gif = Buffer.concat([Buffer.from('GIF89a', 'latin1'), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00, 0, 0]),
      Buffer.from([0x2c, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x00, 0x08, 0x02, 0x4c, 0x01, 0x00, 0x3b])]);
    const r2 = await upload(U.a, gif, { filename: 'bomb.gif' });
    assertError(r2, 400);
    assertStatus(await appUp(), 200, 'health after the GIF bomb:');
  });

  // LOCAL_ONLY: reads the media pool's pid file (its workers must survive)
  test('zero-byte, truncated and corrupt images -> 400, never a crash', { skip: LOCAL_ONLY }, async () => {
    const before1 = mediaWorkers();
    const cases = {
      'zero bytes': Buffer.alloc(0),
      'truncated JPEG (first half)': S.bigJpeg.subarray(0, Math.floor(S.bigJpeg.length / 2)),
      'truncated PNG (no IEND, IDAT cut)': S.png.subarray(0, S.png.length - 30),
      'JPEG header then garbage': Buffer.concat([S.jpeg.subarray(0, 20), crypto.randomBytes(3000)]),
      'PNG signature + IHDR then garbage': Buffer.concat([S.png.subarray(0, 33), crypto.randomBytes(3000)]),
      'GIF header only': Buffer.from('GIF89a\x10\x00\x10\x00', 'latin1'),
      'WebP RIFF header then garbage': Buffer.concat([S.webp.subarray(0, 16), crypto.randomBytes(500)]),
    };
    for (const [what, bytes] of Object.entries(cases)) {
      const res = await upload(U.a, bytes, { filename: 'bad.jpg', type: 'image/jpeg' });
      // zero bytes: the issue says 400 (the content is no image at all, 415 would be defensible)
      if (what === 'zero bytes') assertOneOf(res, [400], what);
      else assertError(res, 400, 'validation_failed');
      assertStatus(await appUp(), 200, `health after ${what}:`);
    }
    assert.deepEqual(mediaWorkers(), before1, 'no media worker died');
  });
});

// --- downloads -------------------------------------------------------------------------

describe('downloads: Range and headers', () => {
  let M; let BYTES;
  before(async () => {
    BYTES = makePdf(10000);
    M = await uploadOk(U.a, BYTES, { filename: 'ranged.pdf' });
  });
  const orig = () => urlPath(M.variants.original);

  // LOCAL_ONLY: nginx's answer from local storage (the cluster's media are on S3, where the redirect points)
  test('whole file: 200, Content-Length, ETag, Cache-Control, Content-Type, nosniff, Accept-Ranges', { skip: LOCAL_ONLY }, async () => {
    const d = await download(orig());
    assertStatus(d, 200);
    assert.ok(d.body.equals(BYTES));
    assert.equal(Number(d.headers['content-length']), BYTES.length);
    assert.ok(d.headers.etag, 'ETag');
    assert.ok(d.headers['cache-control'], 'Cache-Control');
    assert.equal(d.headers['content-type'].split(';')[0].trim(), 'application/pdf');
    assert.equal(d.headers['x-content-type-options'], 'nosniff');
    // If-None-Match with the ETag -> 304 (a well-made API; not spelled out by API.md)
    const c = await download(orig(), { headers: { 'if-none-match': d.headers.etag } });
    assertOneOf(c, [304], 'If-None-Match:');
  });

  test('HEAD on a download -> 200 with Content-Length, no body (a well-made API; not in API.md)', async () => {
    const h = await download(orig(), { method: 'HEAD' });
    assertStatus(h, 200, 'HEAD:');
    assert.equal(Number(h.headers['content-length']), BYTES.length);
    assert.equal(h.body.length, 0);
  });

  // LOCAL_ONLY: nginx's answer from local storage (the cluster's media are on S3, where the redirect points)
  test('Range bytes=0-99 -> 206 with Content-Range', { skip: LOCAL_ONLY }, async () => {
    const d = await download(orig(), { headers: { range: 'bytes=0-99' } });
    assertStatus(d, 206);
    assert.equal(d.headers['content-range'], `bytes 0-99/${BYTES.length}`);
    assert.equal(Number(d.headers['content-length']), 100);
    assert.ok(d.body.equals(BYTES.subarray(0, 100)));
    assert.equal(d.headers['x-content-type-options'], 'nosniff');
  });

  // LOCAL_ONLY: nginx's answer from local storage (the cluster's media are on S3, where the redirect points)
  test('suffix range bytes=-100 -> the last 100 bytes', { skip: LOCAL_ONLY }, async () => {
    const d = await download(orig(), { headers: { range: 'bytes=-100' } });
    assertStatus(d, 206);
    assert.equal(d.headers['content-range'], `bytes ${BYTES.length - 100}-${BYTES.length - 1}/${BYTES.length}`);
    assert.ok(d.body.equals(BYTES.subarray(BYTES.length - 100)));
  });

  test('open-ended range bytes=100- -> from byte 100 to the end', async () => {
    const d = await download(orig(), { headers: { range: 'bytes=100-' } });
    assertStatus(d, 206);
    assert.equal(d.headers['content-range'], `bytes 100-${BYTES.length - 1}/${BYTES.length}`);
    assert.ok(d.body.equals(BYTES.subarray(100)));
  });

  // LOCAL_ONLY: nginx's answer from local storage (the cluster's media are on S3, where the redirect points)
  test('unsatisfiable range -> 416 with Content-Range bytes */size', { skip: LOCAL_ONLY }, async () => {
    const d = await download(orig(), { headers: { range: `bytes=${BYTES.length + 10}-` } });
    assertStatus(d, 416);
    assert.equal(d.headers['content-range'], `bytes */${BYTES.length}`);
  });

  // LOCAL_ONLY: nginx's answer from local storage (the cluster's media are on S3, where the redirect points)
  test('variants of an image have their own ETag and the detected type', { skip: LOCAL_ONLY }, async () => {
    const m = await uploadOk(U.a, S.jpeg, { filename: 'e.jpg' });
    const tags = new Set();
    for (const v of ['original', 'thumb', 'medium']) {
      const d = await download(urlPath(m.variants[v]));
      assertStatus(d, 200, v);
      assert.ok(d.headers.etag, `${v} ETag`);
      tags.add(d.headers.etag);
      const id = await identify(d.body);
      const fmt = { JPEG: 'image/jpeg', PNG: 'image/png', GIF: 'image/gif', WEBP: 'image/webp' }[id.fmt];
      assert.equal(d.headers['content-type'].split(';')[0], fmt, `${v}: declared ${d.headers['content-type']}, content ${id.fmt}`);
      assert.equal(d.headers['x-content-type-options'], 'nosniff');
    }
  });

  test('unknown media id / variant / malformed id -> 404', async () => {
    assertStatus(await download(`/media/${crypto.randomUUID()}/original`), 404, 'unknown id:');
    assertStatus(await download(`/media/not-a-uuid/original`), 404, 'bad id:');
    const pdf = await uploadOk(U.a, makePdf(1000), { filename: 'v.pdf' });
    assertStatus(await download(`/media/${pdf.id}/thumb`), 404, 'a pdf has no thumb:');
    assertStatus(await download(`/media/${pdf.id}/..%2F..%2Fetc%2Fpasswd`), 404, 'odd variant:');
    assertStatus(await getMedia(crypto.randomUUID(), U.a), 404, 'GET /api/media unknown:');
    assertStatus(await getMedia('123', U.a), 404, 'GET /api/media bad id:');
  });

  // LOCAL_ONLY: nginx's answer from local storage (the cluster's media are on S3, where the redirect points)
  test('Content-Disposition and filename are safe for path separators, quotes and control characters', { skip: LOCAL_ONLY }, async () => {
    const evil = '../../etc/pa"ss\\wd\r\nX-Evil: 1\x01\x7f;name=x.pdf';
    const m = await uploadOk(U.a, makePdf(1200), { filename: evil });
    assert.ok(!/[\/\\"\x00-\x1f\x7f]/.test(m.filename), `media.filename not cleaned: ${JSON.stringify(m.filename)}`);
    assert.ok(m.filename.length > 0);
    const d = await download(urlPath(m.variants.original));
    assertStatus(d, 200);
    assert.equal(d.headers['x-evil'], undefined, 'header injection');
    const cd = d.headers['content-disposition'];
    assert.ok(cd, 'Content-Disposition present');
    assert.ok(!/[\x00-\x1f\x7f]/.test(cd), `control characters in ${JSON.stringify(cd)}`);
    const plain = /filename="([^"]*)"/.exec(cd);
    if (plain) assert.ok(!/[\/\\]/.test(plain[1]), `path separator in filename: ${cd}`);
    const star = /filename\*=UTF-8''([^;\s]*)/i.exec(cd);
    if (star) assert.ok(!/[\/\\"\x00-\x1f]/.test(decodeURIComponent(star[1])), `filename*: ${cd}`);
    assert.ok(plain || star, `no filename in ${cd}`);
    // multipart filename with a Windows path: the last component only
    const m2 = await uploadOk(U.a, makePdf(1100), { multipart: true, filename: 'C:\\\\Users\\\\me\\\\secret.pdf' });
    assert.ok(!/[\/\\]/.test(m2.filename), JSON.stringify(m2.filename));
    assert.match(m2.filename, /secret\.pdf$/);
    // a UTF-8 name survives
    const m3 = await uploadOk(U.a, makePdf(1100), { filename: 'résumé – 2026.pdf' });
    assert.equal(m3.filename, 'résumé – 2026.pdf');
  });
});

// --- private media ---------------------------------------------------------------------

describe('private media: members, signed URLs', () => {
  let C; let M;
  before(async () => {
    C = await community(U.a, 'private', [[U.b, 'member']]);
    M = await uploadOk(U.a, S.jpeg, { community_id: C.id, filename: 'secret.jpg' });
  });

  test('upload into a community: member only', async () => {
    assert.equal(M.community_id, C.id);
    const m = await uploadOk(U.b, makePdf(900), { community_id: C.id, filename: 'b.pdf' });
    assert.equal(m.owner_id, U.b.id);
    assertOneOf(await upload(U.c, makePdf(900), { community_id: C.id }), [403, 404], 'non-member into a private community:');
    const pub = await community(U.a, 'public');
    assertOneOf(await upload(U.c, makePdf(900), { community_id: pub.id }), [403], 'non-member into a public community:');
    assertOneOf(await upload(U.c, makePdf(900), { community_id: 999999999 }), [404, 403], 'unknown community:');
  });

  test('GET /api/media/:id: member 200, non-member 404', async () => {
    assertStatus(await getMedia(M.id, U.b), 200, 'member:');
    assertError(await getMedia(M.id, U.c), 404, 'not_found');
    assertOneOf(await getMedia(M.id, null), [401, 404], 'anonymous:');
  });

  // LOCAL_ONLY: nginx's answer from local storage (the cluster's media are on S3, where the redirect points)
  test('variant URLs are signed (exp, sig); a signed URL works without auth', { skip: LOCAL_ONLY }, async () => {
    for (const v of ['original', 'thumb', 'medium']) {
      const u = new URL(M.variants[v], BASE_URL);
      assert.ok(u.searchParams.get('exp') && u.searchParams.get('sig'), `${v} not signed: ${M.variants[v]}`);
      const d = await download(urlPath(M.variants[v]));
      assertStatus(d, 200, `signed ${v} without auth:`);
      assert.ok(d.headers['cache-control'], 'Cache-Control');
      assert.ok(!/\bpublic\b/i.test(d.headers['cache-control']), `private media must not be cached as public: ${d.headers['cache-control']}`);
    }
  });

  test('unsigned download: member (Bearer) 200; non-member and anonymous refused', async () => {
    const p = `/media/${M.id}/original`;
    assertStatus(await download(p, { token: U.b.token }), 200, 'member with Bearer:');
    assertStatus(await download(p, { token: U.a.token }), 200, 'owner with Bearer:');
    assertOneOf(await download(p, { token: U.c.token }), [403, 404], 'non-member with Bearer:');
    assertOneOf(await download(p), [401, 403, 404], 'anonymous:');
  });

  test('altered signature -> 403 (sig, exp, other variant, other medium)', async () => {
    const u = new URL(M.variants.original, BASE_URL);
    const sig = u.searchParams.get('sig'); const exp = u.searchParams.get('exp');
    const flip = (s) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
    const q = (e, s) => `?exp=${encodeURIComponent(e)}&sig=${encodeURIComponent(s)}`;
    assertStatus(await download(`/media/${M.id}/original${q(exp, flip(sig))}`), 403, 'sig altered:');
    assertStatus(await download(`/media/${M.id}/original${q(String(Number(exp) + 1000), sig)}`), 403, 'exp extended:');
    assertStatus(await download(`/media/${M.id}/thumb${q(exp, sig)}`), 403, 'signature of another variant:');
    const other = await uploadOk(U.a, makePdf(800), { community_id: C.id });
    assertStatus(await download(`/media/${other.id}/original${q(exp, sig)}`), 403, 'signature of another medium:');
    assertStatus(await download(`/media/${M.id}/original${q(exp, '')}`), 403, 'empty sig:');
    assertStatus(await download(`/media/${M.id}/original${q('abc', sig)}`), 403, 'exp not a number:');
  });

  test('a removed member loses access (API and unsigned download)', async () => {
    const d = await community(U.a, 'private', [[U.c, 'member']]);
    const m = await uploadOk(U.a, makePdf(700), { community_id: d.id });
    assertStatus(await getMedia(m.id, U.c), 200, 'member:');
    assertStatus(await api('DELETE', `/api/communities/${d.id}/members/${U.c.id}`, U.a), 204, 'remove:');
    assertError(await getMedia(m.id, U.c), 404, 'not_found');
    assertOneOf(await download(`/media/${m.id}/original`, { token: U.c.token }), [403, 404], 'removed member download:');
  });

  test('public community media: anyone downloads without a signature', async () => {
    const pub = await community(U.a, 'public');
    const m = await uploadOk(U.a, makePdf(700), { community_id: pub.id });
    assertStatus(await download(urlPath(m.variants.original)), 200, 'anonymous, public:');
    assertStatus(await getMedia(m.id, U.c), 200, 'any user, public:');
  });
});

// --- delete and deduplication -----------------------------------------------------------

describe('media in posts', () => {
  test('a post lists its media with variant URLs a member can fetch; media of another user are refused', async () => {
    const C = await community(U.a, 'private', [[U.b, 'member']]);
    const m = await uploadOk(U.a, S.jpeg, { community_id: C.id, filename: 'in-post.jpg' });
    const other = await uploadOk(U.b, makePdf(900), { community_id: C.id, filename: 'b.pdf' });
    const created = await api('POST', `/api/communities/${C.id}/posts`, U.a, { body: 'with a picture', media_ids: [m.id] });
    assertStatus(created, 201, 'post with media:');
    assert.equal(created.json.media.length, 1, JSON.stringify(created.json));
    const pm = created.json.media[0];
    assert.equal(pm.id, m.id);
    assert.equal(pm.kind, 'image');
    for (const v of ['original', 'thumb', 'medium']) assert.match(pm.variants[v], /[?&]sig=[0-9a-f]{64}/, JSON.stringify(pm));
    // the reader gets the same from the feed, and the signed thumb works without a token
    const feed = await api('GET', `/api/communities/${C.id}/posts`, U.b);
    assertStatus(feed, 200, 'feed:');
    const item = feed.json.items.find((p) => p.id === created.json.id);
    assert.equal(item.media[0].id, m.id);
    assertStatus(await download(urlPath(item.media[0].variants.thumb)), 200, 'signed thumb:');
    // a post may show only its author's uploads
    assertError(await api('POST', `/api/communities/${C.id}/posts`, U.a, { body: 'not mine', media_ids: [other.id] }), 400, 'validation_failed');
    assertError(await api('POST', `/api/communities/${C.id}/posts`, U.a, { body: 'unknown', media_ids: [crypto.randomUUID()] }), 400, 'validation_failed');
    // a private community's media do not leak into a post of another community
    const pub = await community(U.a, 'public');
    assertError(await api('POST', `/api/communities/${pub.id}/posts`, U.a, { body: 'leak', media_ids: [m.id] }), 400, 'validation_failed');
    const profile = await uploadOk(U.a, S.jpeg, { filename: 'me.jpg' });
    assertStatus(await api('POST', `/api/communities/${pub.id}/posts`, U.a, { body: 'profile picture', media_ids: [profile.id] }), 201, 'profile media in a post:');
    // deleting the private community takes its media with it (they never turn public)
    assertStatus(await api('DELETE', `/api/communities/${C.id}`, U.a), 204, 'delete community:');
    assertError(await getMedia(m.id, U.a), 404, 'not_found');
  });
});

describe('media in posts: deleted', () => {
  // the cached first feed page and the cached post (fcgi-apps/community/feedcache.c) listed a
  // deleted medium, with links that 404, until their TTL (60 s): the delete bumps the feed
  // version of every community whose posts show it, as any write to a post does
  test('a deleted medium leaves the cached feed page and post at once, in each community showing it', async () => {
    const c1 = await community(U.a, 'public');
    const c2 = await community(U.a, 'public');
    const m = await uploadOk(U.a, S.jpeg, { filename: 'gone.jpg' }); // profile media: any community
    const posts = [];
    for (const c of [c1, c2]) {
      posts.push(assertStatus(await api('POST', `/api/communities/${c.id}/posts`, U.a, { body: 'with it', media_ids: [m.id] }), 201).json);
    }
    const shown = async () => {
      const out = [];
      for (const [i, c] of [c1, c2].entries()) {
        const feed = assertStatus(await api('GET', `/api/communities/${c.id}/posts`, null), 200, 'feed:').json;
        out.push(feed.items.find((p) => p.id === posts[i].id).media.length);
        out.push(assertStatus(await api('GET', `/api/posts/${posts[i].id}`, null), 200, 'post:').json.media.length);
      }
      return out;
    };
    assert.deepEqual(await shown(), [1, 1, 1, 1], 'both feeds and posts show it (and are cached now)');
    assert.deepEqual(await shown(), [1, 1, 1, 1], 'from the cache');
    assertStatus(await delMedia(m.id, U.a), 204, 'delete:');
    assert.deepEqual(await shown(), [0, 0, 0, 0], 'a feed or post still lists the deleted medium');
  });
});

describe('delete and equal files', () => {
  // LOCAL_ONLY: checks the stored bytes with psql and the local storage folder
  test('DELETE by others -> 403/404; by the owner -> 204, then 404 and the bytes are gone', { skip: LOCAL_ONLY }, async () => {
    const m = await uploadOk(U.a, await uniqueImage('gif'), { filename: 'd.gif' });
    const p = localPath(m.sha256);
    const pThumb = localPath(`${m.sha256}.thumb`);
    const local = existsSync(p);
    assertOneOf(await delMedia(m.id, U.b), [403, 404], 'other user:');
    assertOneOf(await delMedia(m.id, null), [401], 'anonymous:');
    assertStatus(await getMedia(m.id, U.a), 200, 'still there:');
    assertStatus(await delMedia(m.id, U.a), 204, 'owner:');
    assertStatus(await getMedia(m.id, U.a), 404, 'GET after delete:');
    for (const v of ['original', 'thumb', 'medium']) assertStatus(await download(urlPath(m.variants[v])), 404, `${v} after delete:`);
    assertStatus(await delMedia(m.id, U.a), 404, 'second delete:');
    assert.equal(await mediaRows(`id = '${m.id}'`), 0);
    if (local) {
      assert.ok(!existsSync(p), `${p} still on disk`);
      assert.ok(!existsSync(pThumb), `${pThumb} still on disk`);
    }
  });

  // LOCAL_ONLY: checks the local storage folder
  test('equal files are stored once; deleting one medium keeps the bytes for the other', { skip: LOCAL_ONLY }, async () => {
    const bytes = makePdf(4000);
    const m1 = await uploadOk(U.a, bytes, { filename: 'one.pdf' });
    const m2 = await uploadOk(U.b, bytes, { filename: 'two.pdf' });
    assert.notEqual(m1.id, m2.id);
    assert.equal(m1.sha256, m2.sha256);
    const p = localPath(m1.sha256);
    assert.ok(existsSync(p), `local storage: ${p} (content-addressed under TH_VAR_DIR/media)`);
    assertStatus(await delMedia(m1.id, U.a), 204);
    const d = await download(urlPath(m2.variants.original));
    assertStatus(d, 200, 'the other medium still downloads:');
    assert.ok(d.body.equals(bytes));
    assert.ok(existsSync(p), 'bytes kept while another row names them');
    assertStatus(await delMedia(m2.id, U.b), 204);
    assert.ok(!existsSync(p), 'bytes gone with the last row');
  });
});

// --- answers nginx reuses ---------------------------------------------------------------
// The app marks a download answer that is the same for every caller (a valid signed URL, a
// public medium) with X-Accel-Expires: TH_MEDIA_GRANT_TTL (1 s here); nginx keeps it under
// the URL and answers the next requests of that URL itself, for at least 1 s and at most 2 s
// (nginx counts whole seconds). The app's request counter tells which requests reached it.

const GRANT_TTL_MS = 1000;
async function downloadsSeen() {
  const r = await request('GET', '/metrics/media');
  assertStatus(r, 200, 'metrics:');
  let n = 0;
  for (const line of r.text.split('\n')) {
    const m = line.match(/^th_http_requests_total\{pool="media",route="GET \/media\/:id\/:variant",class="\dxx"\} (\d+)$/);
    if (m) n += Number(m[1]);
  }
  return n;
}

// Two requests of one URL close enough that the first answer is still kept (within
// GRANT_TTL_MS): both responses, and how many requests each made to the app (nginx's
// grant request and the plain one both count). Retried when the machine was too slow to
// tell.
async function twoInARow(p, o1, o2) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const n0 = await downloadsSeen();
    const t0 = Date.now();
    const a = await download(p, o1);
    const n1 = await downloadsSeen();
    const b = await download(p, o2);
    const took = Date.now() - t0;
    const n2 = await downloadsSeen();
    if (took < GRANT_TTL_MS / 2) return { reachedA: n1 - n0, reachedB: n2 - n1, a, b };
    await sleep(2 * GRANT_TTL_MS + 100);
  }
  assert.fail('two downloads never came within half the grant TTL of each other');
}

const SAME_HEADERS = ['etag', 'content-type', 'content-disposition', 'cache-control', 'x-content-type-options'];

describe('downloads: answers nginx reuses', () => {
  let C;
  before(async () => { C = await community(U.a, 'private', [[U.b, 'member']]); });

  // LOCAL_ONLY: reads nginx's /metrics, served to loopback only
  test('a signed URL: the next range within the TTL is sent without asking the app, with the same headers; after it the app is asked again', { skip: LOCAL_ONLY }, async () => {
    const bytes = makePdf(6000);
    const m = await uploadOk(U.a, bytes, { community_id: C.id, filename: 'grant.pdf' });
    const url = urlPath(m.variants.original);
    await sleep(2 * GRANT_TTL_MS + 100); // nothing of this URL kept yet (the upload answered no download)
    const { reachedA, reachedB, a, b } = await twoInARow(url, { headers: { range: 'bytes=0-99' } }, { headers: { range: 'bytes=100-299' } });
    assertStatus(a, 206, 'first range:');
    assertStatus(b, 206, 'second range:');
    assert.ok(a.body.equals(bytes.subarray(0, 100)));
    assert.ok(b.body.equals(bytes.subarray(100, 300)), 'the reused answer serves the asked range');
    assert.equal(reachedA, 1, 'the first range: one grant from the app');
    assert.equal(reachedB, 0, 'the second range was answered by nginx alone');
    for (const h of SAME_HEADERS) assert.equal(b.headers[h], a.headers[h], `${h} of the reused answer`);
    await sleep(2 * GRANT_TTL_MS + 100);
    const n0 = await downloadsSeen();
    assertStatus(await download(url), 200, 'after the TTL:');
    assert.equal(await downloadsSeen(), n0 + 1, 'after the TTL the app answers again');
  });

  // LOCAL_ONLY: nginx's answer from local storage (the cluster's media are on S3, where the redirect points)
  test('what nginx sends on a grant: one Content-Type (the detected one) on 200 and 206, nginx\'s own on 416; If-Range by the ETag', { skip: LOCAL_ONLY }, async () => {
    const m = await uploadOk(U.a, S.jpeg, { community_id: C.id, filename: 'g.jpg' });
    const url = urlPath(m.variants.thumb);
    const types = (res) => res.rawHeaders.filter((_, i) => i % 2 === 0 && res.rawHeaders[i].toLowerCase() === 'content-type').length;
    const whole = await download(url);
    assertStatus(whole, 200);
    assert.equal(whole.headers['content-type'], 'image/jpeg');
    assert.equal(types(whole), 1, JSON.stringify(whole.rawHeaders));
    const part = await download(url, { headers: { range: 'bytes=0-9' } });
    assertStatus(part, 206);
    assert.equal(types(part), 1, JSON.stringify(part.rawHeaders));
    assert.ok(part.body.equals(whole.body.subarray(0, 10)));
    const bad = await download(url, { headers: { range: `bytes=${whole.body.length + 10}-` } });
    assertStatus(bad, 416);
    assert.equal(bad.headers['content-range'], `bytes */${whole.body.length}`);
    assert.equal(types(bad), 1, JSON.stringify(bad.rawHeaders));
    assert.notEqual(bad.headers['content-type'], 'image/jpeg', 'the 416 body is not the image');
    const same = await download(url, { headers: { range: 'bytes=0-9', 'if-range': whole.headers.etag } });
    assertStatus(same, 206, 'If-Range with the ETag:');
    const changed = await download(url, { headers: { range: 'bytes=0-9', 'if-range': '"0000"' } });
    assertStatus(changed, 200, 'If-Range with another ETag: the whole file');
  });

  // LOCAL_ONLY: reads nginx's /metrics, served to loopback only
  test('a conditional request still gets the app\'s 304 while an answer is kept', { skip: LOCAL_ONLY }, async () => {
    const m = await uploadOk(U.a, makePdf(6100), { community_id: C.id });
    const url = urlPath(m.variants.original);
    const { a, b } = await twoInARow(url, {}, { headers: { 'if-none-match': `"${m.sha256}"` } });
    assertStatus(a, 200);
    assertStatus(b, 304, 'If-None-Match:');
  });

  // LOCAL_ONLY: reads nginx's /metrics, served to loopback only
  test('answers that depend on the caller are never reused: Bearer without a signature, altered signature', { skip: LOCAL_ONLY }, async () => {
    const m = await uploadOk(U.a, makePdf(6200), { community_id: C.id });
    const plain = `/media/${m.id}/original`;
    const owner = await twoInARow(plain, { token: U.a.token }, { token: U.a.token });
    assertStatus(owner.a, 200); assertStatus(owner.b, 200);
    assert.equal(owner.reachedA, 1, 'a Bearer download is one plain request to the app');
    assert.equal(owner.reachedB, 1, 'and so is the next one');
    // what the owner was given is not handed to anyone else
    const anon = await twoInARow(plain, { token: U.a.token }, {});
    assertOneOf(anon.b, [401, 403, 404], 'anonymous right after the owner:');
    const u = new URL(m.variants.original, BASE_URL);
    u.searchParams.set('sig', (u.searchParams.get('sig')[0] === 'a' ? 'b' : 'a') + u.searchParams.get('sig').slice(1));
    const bad = await twoInARow(u.pathname + u.search, {}, {});
    assertStatus(bad.a, 403); assertStatus(bad.b, 403);
    assert.ok(bad.reachedA >= 1);
    assert.equal(bad.reachedB, bad.reachedA, 'refusals are never kept: the second asks the app as the first did');
  });

  test('a removed member is refused at once even right after a download', async () => {
    const d = await community(U.a, 'private', [[U.c, 'member']]);
    const m = await uploadOk(U.a, makePdf(6300), { community_id: d.id });
    const plain = `/media/${m.id}/original`;
    assertStatus(await download(plain, { token: U.c.token }), 200, 'member:');
    assertStatus(await api('DELETE', `/api/communities/${d.id}/members/${U.c.id}`, U.a), 204, 'remove:');
    assertOneOf(await download(plain, { token: U.c.token }), [403, 404], 'removed member, at once:');
  });

  test('a deleted medium: a kept answer finds no bytes (404 JSON); with shared bytes the URL stops within TTL + 1 s', async () => {
    const bytes = makePdf(6400);
    const m = await uploadOk(U.a, bytes, { community_id: C.id });
    const url = urlPath(m.variants.original);
    const local = existsSync(localPath(m.sha256));
    assertStatus(await download(url), 200);
    assertStatus(await delMedia(m.id, U.a), 204);
    const gone = await download(url);
    assertStatus(gone, 404, 'right after the delete:');
    if (local) { // S3: the 404 is the object store's
      const j = JSON.parse(gone.body.toString('utf8'));
      assert.equal(j.error?.code, 'not_found', gone.body.toString('utf8'));
    }
    // equal bytes of another medium stay, so a kept answer would still find them
    const shared = makePdf(6500);
    const m1 = await uploadOk(U.a, shared, { community_id: C.id });
    const m2 = await uploadOk(U.b, shared, { community_id: C.id });
    const url1 = urlPath(m1.variants.original);
    assertStatus(await download(url1), 200);
    assertStatus(await delMedia(m1.id, U.a), 204);
    await sleep(2 * GRANT_TTL_MS + 100);
    assertStatus(await download(url1), 404, 'the deleted medium\'s URL after TTL + 1 s:');
    assertStatus(await download(urlPath(m2.variants.original)), 200, 'the other medium:');
  });
});

// --- limits, interrupted upload, memory ------------------------------------------------

async function* zeros(total, head = Buffer.alloc(0)) {
  const chunk = Buffer.alloc(MiB, 0x20);
  yield head;
  let left = total - head.length;
  while (left > 0) {
    const n = Math.min(left, chunk.length);
    yield n === chunk.length ? chunk : chunk.subarray(0, n);
    left -= n;
  }
}

// Sends headers with a declared Content-Length and only part of the body, then
// waits up to waitMs for an answer. -> {status, line} (status 0: no answer).
function declareAndStall(p, headers, declared, sendBytes, waitMs = 5000) {
  return new Promise((resolve) => {
    const s = net.connect({ host: HTTP_HOST, port: HTTP_PORT });
    let buf = '';
    const finish = (v) => { clearTimeout(timer); s.destroy(); resolve(v); };
    const timer = setTimeout(() => finish({ status: 0, line: buf.split('\r\n')[0] }), waitMs);
    s.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n\r\n')) {
        const m = /^HTTP\/1\.\d (\d{3})/.exec(buf);
        finish({ status: m ? Number(m[1]) : -1, line: buf.split('\r\n')[0], head: buf });
      }
    });
    s.on('error', () => finish({ status: 0, line: buf.split('\r\n')[0] }));
    s.on('connect', () => {
      const h = Object.entries({ host: `${HTTP_HOST}:${HTTP_PORT}`, 'content-length': declared, ...headers })
        .map(([k, v]) => `${k}: ${v}`).join('\r\n');
      s.write(`POST ${p} HTTP/1.1\r\n${h}\r\n\r\n`);
      if (sendBytes > 0) s.write(Buffer.alloc(sendBytes, 0x41));
    });
  });
}

describe('limits', () => {
  test('declared Content-Length far over the limit -> 413 at once, before the body is sent', async () => {
    const hdr = { authorization: `Bearer ${U.a.token}`, 'content-type': 'application/pdf' };
    // over nginx's client_max_body_size for /api/media (the limit plus a multipart envelope)
    const r = await declareAndStall('/api/media', hdr, 110 * MiB, 1024, 5000);
    assert.equal(r.status, 413, `110 MiB declared: ${r.line || 'no answer within 5 s'}`);
    const r2 = await declareAndStall('/api/media', hdr, 1024 * MiB, 0, 5000);
    assert.equal(r2.status, 413, `1 GiB declared: ${r2.line || 'no answer within 5 s'}`);
    assertStatus(await appUp(), 200, 'health:');
  });

  // LOCAL_ONLY: checks with psql that nothing was stored
  test('a raw body of 100 MiB + 1 byte (the app\'s own limit) -> 413 too_large, nothing stored', { skip: LOCAL_ONLY }, async () => {
    const u = await newUser('ml');
    const size = 100 * MiB + 1;
    const res = await request('POST', '/api/media', {
      headers: { authorization: `Bearer ${u.token}`, 'content-type': 'application/pdf', 'content-length': String(size) },
      body: zeros(size, Buffer.from('%PDF-1.4\n%')), timeoutMs: 60000,
    }).catch((e) => ({ status: 0, text: String(e), headers: {} }));
    assertError(res, 413, 'too_large');
    assert.equal(await mediaRows(`owner_id = ${u.id}`), 0);
    const clean = await until(() => tmpFiles().length === 0 || null, { timeoutMs: 5000 });
    assert.ok(clean, `temp files left: ${JSON.stringify(tmpFiles())}`);
  });

  test('413 body is the JSON error too_large', async () => {
    const res = await request('POST', '/api/media', {
      headers: { authorization: `Bearer ${U.a.token}`, 'content-type': 'application/pdf', 'content-length': String(2048 * MiB) },
      body: undefined, timeoutMs: 10000,
    }).catch((e) => ({ status: 0, text: String(e), headers: {} }));
    assertError(res, 413, 'too_large');
  });

  // LOCAL_ONLY: checks with psql that nothing was stored
  test('a chunked body (no Content-Length) that grows over the limit -> 413', { skip: LOCAL_ONLY }, async () => {
    const t0 = Date.now();
    const res = await request('POST', '/api/media', {
      headers: { authorization: `Bearer ${U.c.token}`, 'content-type': 'application/pdf', 'transfer-encoding': 'chunked' },
      body: zeros(100 * MiB + 64 * 1024 + MiB, Buffer.from('%PDF-1.4\n%')), timeoutMs: 60000,
    }).catch((e) => ({ status: 0, text: String(e), headers: {} }));
    assert.equal(res.status, 413, `chunked over the limit: ${show(res)} after ${Date.now() - t0} ms`);
    assert.equal(await mediaRows(`owner_id = ${U.c.id}`), 0);
    assert.deepEqual(await until(() => tmpFiles().length === 0 || null, { timeoutMs: 5000 }) ? [] : tmpFiles(), [], 'temp files left');
  });

  // LOCAL_ONLY: checks with psql and the local temporary folder
  test('an upload cut off in the middle leaves no row and no temporary file', { skip: LOCAL_ONLY }, async () => {
    const u = await newUser('mi');
    const rows0 = await mediaRows();
    const tmp0 = tmpFiles();
    const hdr = { authorization: `Bearer ${u.token}`, 'content-type': 'application/pdf' };
    // 10 MiB declared, 3 MiB sent, then the connection is reset
    await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: PORT_BASE }, () => {
        const h = Object.entries({ host: 'x', 'content-length': 10 * MiB, ...hdr }).map(([k, v]) => `${k}: ${v}`).join('\r\n');
        s.write(`POST /api/media?filename=cut.pdf HTTP/1.1\r\n${h}\r\n\r\n%PDF-1.4\n%`);
        s.write(Buffer.alloc(3 * MiB, 0x20), () => setTimeout(() => { s.resetAndDestroy?.() ?? s.destroy(); resolve(); }, 300));
      });
      s.on('error', () => resolve());
    });
    // the same, multipart, cut inside the file part
    await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: PORT_BASE }, () => {
        const b = 'cutcutcut';
        const h = Object.entries({ host: 'x', 'content-length': 10 * MiB, ...hdr, 'content-type': `multipart/form-data; boundary=${b}` })
          .map(([k, v]) => `${k}: ${v}`).join('\r\n');
        s.write(`POST /api/media HTTP/1.1\r\n${h}\r\n\r\n--${b}\r\nContent-Disposition: form-data; name="file"; filename="c.pdf"\r\n\r\n%PDF-1.4\n%`);
        s.write(Buffer.alloc(2 * MiB, 0x20), () => setTimeout(() => { s.destroy(); resolve(); }, 300));
      });
      s.on('error', () => resolve());
    });
    const clean = await until(async () => (tmpFiles().length <= tmp0.length && (await mediaRows()) === rows0) || null, { timeoutMs: 10000 });
    assert.ok(clean, `after the cut: rows ${await mediaRows()} (was ${rows0}), temp files ${JSON.stringify(tmpFiles())}`);
    assert.equal(await mediaRows(`owner_id = ${u.id}`), 0, 'no row for the cut upload');
    assertStatus(await appUp(), 200, 'health:');
    // and the user can upload afterwards
    await uploadOk(u, makePdf(500));
  });

  // LOCAL_ONLY: reads the media workers' memory by their pids
  test('a ~100 MiB upload raises no worker\'s peak RSS by 16 MiB or more, and is stored', { skip: LOCAL_ONLY }, async (t) => {
    const u = await newUser('mr');
    const workers = mediaWorkers();
    assert.ok(workers.length >= 1, 'media workers');
    // warm every worker up with a small upload of the same kind (libraries, caches)
    for (let i = 0; i < workers.length * 2; i++) await uploadOk(u, makePdf(2000));
    const base = new Map(workers.map((p) => [p, procStatus(p)]));
    const size = 100 * MiB - 4096;
    const head = Buffer.from(`%PDF-1.4\n% ${crypto.randomBytes(8).toString('hex')}\n`);
    const hash = crypto.createHash('sha256');
    async function* body() { for await (const c of zeros(size, head)) { hash.update(c); yield c; } }
    const t0 = Date.now();
    const res = await request('POST', '/api/media?filename=big.pdf', {
      headers: { authorization: `Bearer ${u.token}`, 'content-type': 'application/pdf', 'content-length': String(size) },
      body: body(), timeoutMs: 120000,
    });
    const ms = Date.now() - t0;
    assertStatus(res, 201, `100 MiB upload (${ms} ms):`);
    assert.equal(res.json.size, size);
    assert.equal(res.json.sha256, hash.digest('hex'), 'streamed hash');
    const report = [];
    for (const p of workers) {
      const now = procStatus(p);
      const b = base.get(p);
      report.push(`pid ${p}: VmHWM ${(b.hwm / MiB).toFixed(1)} -> ${(now.hwm / MiB).toFixed(1)} MiB, VmRSS ${(b.rss / MiB).toFixed(1)} -> ${(now.rss / MiB).toFixed(1)} MiB`);
    }
    for (const p of workers) {
      const now = procStatus(p);
      assert.ok(now.hwm - base.get(p).hwm < 16 * MiB, `worker ${p} grew too much:\n${report.join('\n')}`);
    }
    assert.deepEqual(mediaWorkers(), workers, 'same workers');
    t.diagnostic(report.join('; '));
    assertStatus(await delMedia(res.json.id, u), 204, 'delete the big one:');
  });
});

// --- a pool with other settings: quota, signed-URL lifetime ------------------------------

// LOCAL_ONLY: restarts the stack's media pool with its own settings
describe('quota and signed-URL expiry (media pool restarted with TH_MEDIA_QUOTA_BYTES, TH_MEDIA_URL_TTL)', { skip: LOCAL_ONLY }, () => {
  before(async () => restartMedia({ ...STACK_ENV, TH_MEDIA_QUOTA_BYTES: String(200000), TH_MEDIA_URL_TTL: '10' }));
  after(async () => restartMedia(STACK_ENV));

  test('a user over the quota -> 413 naming the quota', async () => {
    const u = await newUser('mq');
    await uploadOk(u, makePdf(120000));
    const res = await upload(u, makePdf(120000));
    assertError(res, 413, 'too_large');
    assert.match(res.json.error.message, /quota/i, 'the message names the quota');
    assert.equal(await mediaRows(`owner_id = ${u.id}`), 1);
    // deleting frees the quota
    const first = (await psql(`SELECT id FROM media WHERE owner_id = ${u.id}`)).stdout.trim();
    assertStatus(await delMedia(first, u), 204);
    await uploadOk(u, makePdf(120000));
  });

  test('an expired signature -> 403', async () => {
    const owner = await newUser('mx'); // U.a is over this pool's small quota
    const c = await community(owner, 'private', [[U.b, 'member']]);
    const m = await uploadOk(owner, makePdf(900), { community_id: c.id });
    const u = new URL(m.variants.original, BASE_URL);
    // exp may be rounded up (to a step of the TTL, so that URLs stay cacheable): within 2 TTLs
    const exp = Number(u.searchParams.get('exp'));
    assert.ok(exp > Date.now() / 1000 && exp <= Math.floor(Date.now() / 1000) + 22, `exp with a 10 s TTL: ${m.variants.original}`);
    assertStatus(await download(urlPath(m.variants.original)), 200, 'before expiry:');
    const wait = exp * 1000 - Date.now() + 1500;
    if (wait > 0) await sleep(Math.min(wait, 25000));
    assertStatus(await download(urlPath(m.variants.original)), 403, 'expired:');
    // a fresh URL from the API works again
    const g = await getMedia(m.id, U.b);
    assertStatus(g, 200);
    assertStatus(await download(urlPath(g.json.variants.original)), 200, 'fresh signature:');
  });
});

// --- S3 backend ------------------------------------------------------------------------

for (const style of ['path', 'virtual-host']) {
  // LOCAL_ONLY: starts its own S3 server and restarts the stack's media pool on it
  describe(`S3 backend (s3rver on 127.0.0.1:${S3_PORT}, ${style} style)`, { skip: LOCAL_ONLY }, () => {
    let s3;
    before(async () => {
      s3 = await startS3({ port: S3_PORT, bucket: `th-media-${style === 'path' ? 'p' : 'v'}` });
      await restartMedia({ ...STACK_ENV, ...mediaS3Env(s3, { vhost: style !== 'path' }) });
    });
    after(async () => {
      try { await restartMedia(STACK_ENV); } finally { await s3?.stop(); }
    });

    test('upload stores the object in the bucket; download returns the bytes', async (t) => {
      const bytes = makePdf(8000);
      const m = await uploadOk(U.a, bytes, { filename: 's3.pdf' });
      assert.equal(m.sha256, sha256(bytes));
      assert.ok(s3.listKeys().some((k) => k.includes(m.sha256)), `bucket keys: ${JSON.stringify(s3.listKeys())}`);
      assert.ok(!existsSync(localPath(m.sha256)), 'not on local disk');
      const d = await download(urlPath(m.variants.original));
      assertStatus(d, 200, `S3 download${d.redirectedFrom ? ' (via redirect)' : ''}:`);
      assert.ok(d.body.equals(bytes), 'same bytes');
      t.diagnostic(`S3 delivery: ${d.redirectedFrom ? `redirect ${d.redirectedFrom.status} to ${d.redirectedFrom.headers.location}` : 'proxied by our origin'}`);
    });

    test('image variants are stored and served from S3', async () => {
      const m = await uploadOk(U.a, S.bigJpeg, { filename: 'big-s3.jpg' });
      for (const [v, w] of [['original', 2000], ['thumb', 320], ['medium', 1280]]) {
        const d = await download(urlPath(m.variants[v]));
        assertStatus(d, 200, v);
        assert.equal((await identify(d.body)).w, w, v);
      }
    });

    test('Range on S3: first bytes, open-ended, unsatisfiable', async () => {
      const bytes = makePdf(9000);
      const m = await uploadOk(U.a, bytes);
      const p = urlPath(m.variants.original);
      let d = await download(p, { headers: { range: 'bytes=0-99' } });
      assertStatus(d, 206, 'bytes=0-99:');
      assert.equal(d.headers['content-range'], `bytes 0-99/${bytes.length}`);
      assert.ok(d.body.equals(bytes.subarray(0, 100)));
      d = await download(p, { headers: { range: 'bytes=100-' } });
      assertStatus(d, 206, 'bytes=100-:');
      assert.ok(d.body.equals(bytes.subarray(100)));
      d = await download(p, { headers: { range: `bytes=${bytes.length + 5}-` } });
      assertStatus(d, 416, 'unsatisfiable:');
    });

    test('suffix Range on S3 (bytes=-100) -> the last 100 bytes', async (t) => {
      // s3rver 3.7.1 itself answers a suffix range as bytes 0-100 (a bug of the emulator:
      // S3 answers the last 100 bytes). When the app redirects to a presigned URL the client
      // talks to s3rver directly, so that case is only reported, as a todo.
      const bytes = makePdf(9000);
      const m = await uploadOk(U.a, bytes);
      const d = await download(urlPath(m.variants.original), { headers: { range: 'bytes=-100' } });
      if (d.redirectedFrom && !d.body.equals(bytes.subarray(bytes.length - 100))) {
        t.todo(`s3rver suffix-range bug: got ${d.headers['content-range']}`);
        return;
      }
      assertStatus(d, 206, 'bytes=-100:');
      assert.ok(d.body.equals(bytes.subarray(bytes.length - 100)), `got ${d.body.length} bytes, ${d.headers['content-range']}`);
    });

    test('private media on S3: signed URL works, altered -> 403', async () => {
      const c = await community(U.a, 'private');
      const m = await uploadOk(U.a, makePdf(900), { community_id: c.id });
      assertStatus(await download(urlPath(m.variants.original)), 200, 'signed:');
      const u = new URL(m.variants.original, BASE_URL);
      u.searchParams.set('sig', `A${u.searchParams.get('sig').slice(1)}` === u.searchParams.get('sig') ? `B${u.searchParams.get('sig').slice(1)}` : `A${u.searchParams.get('sig').slice(1)}`);
      assertStatus(await download(u.pathname + u.search), 403, 'altered:');
    });

    test('delete removes the object once no other medium shares it', async () => {
      const bytes = makePdf(3000);
      const m1 = await uploadOk(U.a, bytes);
      const m2 = await uploadOk(U.b, bytes);
      assertStatus(await delMedia(m1.id, U.a), 204);
      assert.ok(s3.listKeys().some((k) => k.includes(m1.sha256)), 'kept for the other medium');
      assertStatus(await download(urlPath(m2.variants.original)), 200);
      assertStatus(await delMedia(m2.id, U.b), 204);
      assert.ok(!s3.listKeys().some((k) => k.includes(m1.sha256)), `object still in the bucket: ${JSON.stringify(s3.listKeys())}`);
      assertStatus(await download(urlPath(m2.variants.original)), 404);
      const img = await uploadOk(U.a, await uniqueImage('png'));
      assertStatus(await delMedia(img.id, U.a), 204);
      assert.ok(!s3.listKeys().some((k) => k.includes(img.sha256)), `image objects left: ${JSON.stringify(s3.listKeys())}`);
    });

    test('the store down -> upload 503, the app stays up', async () => {
      await s3.stop();
      const res = await upload(U.a, makePdf(700));
      assertOneOf(res, [503], 'S3 down:');
      const h = await health();
      assertOneOf(h, [200, 503], 'health while S3 is down (200, or 503 naming the store):');
      assert.ok(await until(async () => (await request('GET', '/api/auth/health')).status === 200 || null, { timeoutMs: 3000 }));
      assert.ok(mediaWorkers().length > 0, 'media workers alive');
    });
  });
}

// LOCAL_ONLY: checks the local storage folder after the S3 blocks
test('local storage again after the S3 blocks', { skip: LOCAL_ONLY }, async () => {
  const bytes = makePdf(1500);
  const m = await uploadOk(U.a, bytes);
  assert.ok(existsSync(localPath(m.sha256)), 'stored on local disk');
  assertStatus(await download(urlPath(m.variants.original)), 200);
});
