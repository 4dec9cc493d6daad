// The orphaned-bytes collector (scripts/media-gc -> th-media-gc, fcgi-apps/media/gc/gc.c),
// black-box against a live stack: media are uploaded over HTTP, their rows removed the way
// production loses them (a row that never committed is simulated by deleting it with psql;
// a deleted community takes its media rows by ON DELETE CASCADE), then the collector runs
// as an operator would run it, and the store is looked at directly: the local files under
// $TH_VAR_DIR/media, or the s3rver bucket (lib/s3.mjs).
//
// Design notes
// - Client addresses: registrations come from 127.10.x.y (media.test.mjs uses 127.9).
// - "Older than the grace period" is made two ways: local files get an old mtime (utimes),
//   which is what the collector reads; S3 objects cannot be back-dated, so the S3 tests
//   wait 2 s and run with TH_MEDIA_GC_GRACE=1.
// - s3rver runs in a child node with --openssl-legacy-provider: it makes the continuation
//   token of a truncated listing with DES, which Node 20's OpenSSL 3 has only in the legacy
//   provider, and answers 500 to any listing longer than one page (1000 keys) without it.
// - Every run of the collector may also remove orphans other test files left on this
//   stack: the assertions look only at this file's own keys.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { spawn } from 'node:child_process';
import { existsSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  PORT_BASE, VAR_DIR, request, run, runProgram, until, sleep,
} from './lib/http.mjs';
import { show } from './lib/assert.mjs';
import { bearer, api, fixtures } from './lib/fixtures.mjs';
import { psql } from './lib/stack.mjs';
import {
  MEDIA_TMP, localPath, urlPath, appUp, restartMedia, PNG_SIGNATURE, pngChunk,
} from './lib/media.mjs';
import {
  S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION, bucketKeys, mediaS3Env,
} from './lib/s3.mjs';

const S3_PORT = PORT_BASE + 6;
const HOUR = 3600;

const { newUser, community } = fixtures({ net: 10, slug: 'gc', name: 'GC' });

// POST /api/media with a raw body -> the media object (201 asserted)
async function upload(who, bytes, communityId) {
  const q = communityId ? `?community_id=${communityId}` : '';
  const res = await request('POST', `/api/media${q}`, {
    headers: { ...bearer(who.token), 'content-type': 'application/octet-stream' }, body: bytes, timeoutMs: 60000,
  });
  assert.equal(res.status, 201, `upload: ${show(res)}`);
  return res.json;
}

// GET a variant URL (no redirect following) -> status
const fetchStatus = (u, who) => api('GET', urlPath(u), who).then((r) => r.status);

// Removes a media row behind the app's back: what a commit that failed after the bytes
// were stored leaves (bytes, no row). id is a UUID from the API, checked before use.
async function dropRow(id) {
  assert.match(id, /^[0-9a-f-]{36}$/);
  const r = await psql(`DELETE FROM media WHERE id = '${id}'`);
  assert.equal(r.code, 0, `psql: ${r.stderr}`);
  assert.equal(r.stdout.trim(), 'DELETE 1');
}
async function rowsWithSha(sha) {
  assert.match(sha, /^[0-9a-f]{64}$/);
  const r = await psql(`SELECT count(*) FROM media WHERE sha256 = '${sha}'`);
  assert.equal(r.code, 0, `psql: ${r.stderr}`);
  return Number(r.stdout.trim());
}

// The store's keys of a medium: the original, and for images the two variants.
const keysOf = (m) => (m.kind === 'image' ? [m.sha256, `${m.sha256}.thumb`, `${m.sha256}.medium`] : [m.sha256]);
const localHas = (key) => existsSync(localPath(key));
function backdate(keys, seconds) {
  const t = Date.now() / 1000 - seconds;
  for (const k of keys) utimesSync(localPath(k), t, t);
}

// scripts/media-gc with extra environment -> {code, stdout, stderr, summary}
async function gc(env = {}, args = []) {
  const r = await run('scripts/media-gc', args, { env, timeoutMs: 120000 });
  // its stderr is no pool log the runner scans: a sanitizer build's report fails here
  assert.ok(!/Sanitizer|runtime error:/.test(r.stderr), `sanitizer report from th-media-gc:\n${r.stderr}`);
  const summary = (/^media-gc: .*$/m.exec(r.stdout) || [''])[0];
  return { ...r, summary, removed: Number((/; (?:would remove|removed) (\d+) \(/.exec(summary) || [])[1]) };
}

// A small PNG of random pixels: unique bytes, so its hash is this test's alone.
function noisyPng(w = 40, h = 30) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2; // 8-bit RGB
  const rows = [];
  for (let y = 0; y < h; y++) rows.push(Buffer.from([0]), crypto.randomBytes(w * 3));
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk('IHDR', ihdr), pngChunk('IDAT', zlib.deflateSync(Buffer.concat(rows))), pngChunk('IEND', Buffer.alloc(0)),
  ]);
}
// A minimal PDF with a unique comment (libmagic calls it application/pdf).
function uniquePdf() {
  return Buffer.from(`%PDF-1.4\n% ${crypto.randomBytes(16).toString('hex')}\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n`, 'latin1');
}

let owner;
before(async () => {
  assert.ok(await until(async () => (await appUp()).status === 200, { timeoutMs: 15000 }), 'media app answering');
  owner = await newUser('gco');
});

describe('local storage', () => {
  test('an orphan older than the grace period is removed; a referenced one and a fresh orphan are kept', async () => {
    const orphan = await upload(owner, noisyPng());          // image: original + thumb + medium
    const kept = await upload(owner, noisyPng());            // image, its row stays
    const keptPdf = await upload(owner, uniquePdf());        // non-image, its row stays
    const fresh = await upload(owner, uniquePdf());          // orphan, but just stored
    assert.equal(orphan.kind, 'image');
    for (const m of [orphan, kept, keptPdf, fresh]) for (const k of keysOf(m)) assert.ok(localHas(k), `${k} stored`);
    await dropRow(orphan.id);
    await dropRow(fresh.id);
    backdate([...keysOf(orphan), ...keysOf(kept), ...keysOf(keptPdf)], 2 * HOUR);

    // --dry-run names them and removes nothing
    const dry = await gc({ TH_MEDIA_GC_GRACE: String(HOUR) }, ['--dry-run']);
    assert.equal(dry.code, 0, `${dry.stdout}${dry.stderr}`);
    assert.match(dry.summary, /would remove \d+/, dry.stdout);
    assert.ok(dry.removed >= 3, dry.summary);
    for (const k of keysOf(orphan)) assert.ok(dry.stderr.includes(`would remove ${k} `), `dry run names ${k}: ${dry.stderr}`);
    for (const k of keysOf(orphan)) assert.ok(localHas(k), `dry run kept ${k}`);

    const r = await gc({ TH_MEDIA_GC_GRACE: String(HOUR) });
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.summary, /^media-gc: local store: \d+ objects listed; removed \d+ \(\d+ bytes\); kept \d+ referenced, \d+ within the grace period of 3600 s/, r.summary);
    assert.ok(r.removed >= 3, r.summary);
    for (const k of keysOf(orphan)) assert.ok(!localHas(k), `orphan ${k} removed`);
    for (const k of [...keysOf(kept), ...keysOf(keptPdf)]) assert.ok(localHas(k), `referenced ${k} kept`);
    assert.ok(localHas(fresh.sha256), 'an orphan within the grace period is kept');
    // what is referenced still downloads, every variant
    for (const v of ['original', 'thumb', 'medium']) assert.equal(await fetchStatus(kept.variants[v]), 200, `kept ${v}`);
    assert.equal(await fetchStatus(keptPdf.variants.original), 200, 'kept pdf');

    // once the grace period is over for it (0 here) the fresh orphan goes too, and only it
    const r2 = await gc({ TH_MEDIA_GC_GRACE: '0' });
    assert.equal(r2.code, 0, `${r2.stdout}${r2.stderr}`);
    assert.ok(!localHas(fresh.sha256), 'orphan removed once past the grace period');
    for (const k of [...keysOf(kept), ...keysOf(keptPdf)]) assert.ok(localHas(k), `referenced ${k} still kept`);
  });

  test('an upload in flight (bytes stored, row not yet committed, its hash lock held) keeps its bytes even with no grace period', async () => {
    // the upload's transaction, played by psql: the hash lock upload.c takes, the INSERT,
    // 3 s before COMMIT. The bytes are an old orphan of the same hash (as after a failed
    // commit): the collector finds no committed row, waits for the lock, looks again.
    const m = await upload(owner, uniquePdf());
    await dropRow(m.id);
    backdate(keysOf(m), 2 * HOUR);
    assert.match(m.sha256, /^[0-9a-f]{64}$/);
    const tx = psql(`BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('${m.sha256}', 7)); `
      + `INSERT INTO media (owner_id, kind, mime, size, sha256, filename) VALUES (${Number(owner.id)}, 'pdf', 'application/pdf', ${m.size}, '${m.sha256}', 'inflight.pdf'); `
      + 'SELECT pg_sleep(3); COMMIT;');
    // the lock is held once pg_locks shows it
    const held = await until(async () => {
      const r = await psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted");
      return Number(r.stdout.trim()) > 0;
    }, { timeoutMs: 5000, intervalMs: 50 });
    assert.ok(held, 'the in-flight transaction holds its hash lock');
    const r = await gc({ TH_MEDIA_GC_GRACE: '0' });
    const t = await tx;
    assert.equal(t.code, 0, `psql: ${t.stderr}`);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.ok(localHas(m.sha256), `the in-flight upload's bytes are kept: ${r.summary}`);
    assert.ok(!r.stderr.includes(`removed ${m.sha256} `), r.stderr);
    assert.equal(await rowsWithSha(m.sha256), 1);
  });

  test('bytes shared by two rows stay while one row names them', async () => {
    const bytes = noisyPng();
    const other = await newUser('gcs');
    const a = await upload(owner, bytes);
    const b = await upload(other, bytes);
    assert.equal(a.sha256, b.sha256, 'equal files, one hash');
    await dropRow(a.id);
    backdate(keysOf(a), 2 * HOUR);
    const r = await gc({ TH_MEDIA_GC_GRACE: String(HOUR) });
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    for (const k of keysOf(a)) assert.ok(localHas(k), `${k} kept: another row names it`);
    assert.equal(await fetchStatus(b.variants.thumb), 200);
  });

  test('a deleted community: its media rows go by cascade, the bytes stay for the collector, which removes them (shared bytes stay)', async () => {
    const c = await community(owner, 'private');
    const own = await upload(owner, noisyPng(), c.id);
    const sharedBytes = uniquePdf();
    const shared = await upload(owner, sharedBytes, c.id);
    const profile = await upload(await newUser('gcp'), sharedBytes); // same bytes, profile medium
    assert.equal(shared.sha256, profile.sha256);
    assert.equal(await fetchStatus(own.variants.original, owner), 200, 'member download before');

    const del = await api('DELETE', `/api/communities/${c.id}`, owner);
    assert.equal(del.status, 204, show(del));
    // the rows are gone with the community: nothing serves these media any more
    assert.equal(await rowsWithSha(own.sha256), 0);
    assert.equal((await api('GET', `/api/media/${own.id}`, owner)).status, 404);
    assert.equal(await fetchStatus(own.variants.original, owner), 404, 'download after the community went');
    // the community app does not touch the store: the bytes are left to the collector
    for (const k of keysOf(own)) assert.ok(localHas(k), `${k} still stored after the community delete`);

    backdate([...keysOf(own), shared.sha256], 2 * HOUR);
    const r = await gc({ TH_MEDIA_GC_GRACE: String(HOUR) });
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    for (const k of keysOf(own)) assert.ok(!localHas(k), `${k} collected`);
    assert.ok(localHas(shared.sha256), 'bytes the profile medium still names are kept');
    assert.equal(await fetchStatus(profile.variants.original), 200, 'the profile medium still downloads');
  });

  test('upload temporaries a killed worker left are removed once old; fresh ones are not', async () => {
    const old = path.join(MEDIA_TMP, `up-gc${crypto.randomBytes(3).toString('hex')}`);
    const young = path.join(MEDIA_TMP, `img-gc${crypto.randomBytes(3).toString('hex')}`);
    const other = path.join(MEDIA_TMP, `keep-gc${crypto.randomBytes(3).toString('hex')}`);
    for (const p of [old, young, other]) writeFileSync(p, 'partial upload');
    const t = Date.now() / 1000 - 2 * HOUR;
    utimesSync(old, t, t);
    utimesSync(other, t, t);
    const r = await gc({ TH_MEDIA_GC_TMP_GRACE: String(HOUR) });
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.ok(!existsSync(old), 'old up-* removed');
    assert.ok(existsSync(young), 'fresh img-* kept (an upload may be using it)');
    assert.ok(existsSync(other), 'a file that is no upload temporary is left alone');
    assert.match(r.summary, /upload temporaries removed: [1-9]\d*$/, r.summary);
  });

  test('TH_MEDIA_GC_MAX bounds a run: exit 1 naming the bound, nothing past it looked at', async () => {
    await upload(owner, uniquePdf()); // at least two objects in the store
    await upload(owner, uniquePdf());
    const r = await gc({ TH_MEDIA_GC_MAX: '1' });
    assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
    assert.match(r.summary, /: 1 objects listed \(TH_MEDIA_GC_MAX reached\);/, r.summary);
  });

  test('a bad setting stops the collector before it looks at anything', async () => {
    const r = await gc({ TH_MEDIA_GC_GRACE: '-5' });
    assert.notEqual(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /TH_MEDIA_GC_GRACE/);
    const r2 = await gc({ TH_MEDIA_STORAGE: 'nfs' });
    assert.notEqual(r2.code, 0);
    assert.match(r2.stderr, /TH_MEDIA_STORAGE/);
  });
});

// lib/s3.mjs's startS3 in a child node (see the head of this file); stop() ends it.
async function startS3Child(bucket) {
  const lib = path.join(path.dirname(fileURLToPath(import.meta.url)), 'lib', 's3.mjs');
  const code = `import { startS3 } from ${JSON.stringify(lib)};
    const s3 = await startS3({ port: ${S3_PORT}, bucket: ${JSON.stringify(bucket)} });
    process.stdout.write(JSON.stringify({ dir: s3.dir }) + '\\n');
    const bye = async () => { await s3.stop(); process.exit(0); };
    process.on('SIGTERM', bye);
    process.stdin.on('end', bye); // the test process went away
    process.stdin.resume();`;
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '--input-type=module', '-e', code], { stdio: ['pipe', 'pipe', 'inherit'] });
  const dir = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('s3rver child did not start within 15 s')), 15000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^(\{.*\})\n/.exec(out);
      if (m) { clearTimeout(timer); resolve(JSON.parse(m[1]).dir); }
    });
    child.on('exit', (c) => { clearTimeout(timer); reject(new Error(`s3rver child exited (${c})`)); });
  });
  return {
    endpoint: `http://127.0.0.1:${S3_PORT}`, bucket, dir,
    accessKey: S3_ACCESS_KEY, secretKey: S3_SECRET_KEY, region: S3_REGION,
    listKeys() { return bucketKeys(dir, bucket); },
    async stop() {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([gone, sleep(10000)]);
    },
  };
}

describe(`S3 storage (s3rver on 127.0.0.1:${S3_PORT})`, () => {
  let s3;
  let env;
  before(async () => {
    s3 = await startS3Child('th-media-gc');
    env = mediaS3Env(s3);
    await restartMedia(env);
  });
  after(async () => {
    try { await restartMedia({}); } finally { await s3?.stop(); }
  });

  test('lists and deletes through the S3 backend: the orphan goes, the referenced and the young stay', async () => {
    const orphan = await upload(owner, noisyPng());
    const kept = await upload(owner, noisyPng());
    const keys = () => new Set(s3.listKeys());
    for (const k of [...keysOf(orphan), ...keysOf(kept)]) assert.ok(keys().has(k), `${k} in the bucket`);
    await dropRow(orphan.id);
    // just stored: within an hour's grace, nothing is removed
    const young = await gc({ ...env, TH_MEDIA_GC_GRACE: String(HOUR) });
    assert.equal(young.code, 0, `${young.stdout}${young.stderr}`);
    assert.match(young.summary, /^media-gc: s3 store: /, young.summary);
    for (const k of keysOf(orphan)) assert.ok(keys().has(k), `${k} kept within the grace period`);

    await sleep(2100); // S3 LastModified cannot be back-dated: let the objects age
    const r = await gc({ ...env, TH_MEDIA_GC_GRACE: '1' });
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    const now = keys();
    for (const k of keysOf(orphan)) assert.ok(!now.has(k), `orphan ${k} deleted from the bucket`);
    for (const k of keysOf(kept)) assert.ok(now.has(k), `referenced ${k} kept`);
    assert.ok(r.removed >= 3, r.summary);
  });

  test('more than one page of listing (1000 keys a page): every orphan is found', async (t) => {
    // 1100 objects of our key shape put straight into the bucket, with no rows: orphans.
    // s3rver checks signatures: curl signs with --aws-sigv4 as libcurl does in the app;
    // one curl per 275 URLs (it sends the same body to each).
    const names = [];
    for (let i = 0; i < 1100; i++) names.push(crypto.createHash('sha256').update(`gc-page-${i}-${crypto.randomUUID()}`).digest('hex'));
    const body = path.join(VAR_DIR, 'gc-page.bin');
    writeFileSync(body, 'x');
    let put = 0;
    for (let i = 0; i < names.length; i += 275) {
      const urls = names.slice(i, i + 275).map((n) => `${s3.endpoint}/${s3.bucket}/${n}`);
      const r = await runProgram('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}\n', '-X', 'PUT', '--aws-sigv4', 'aws:amz:us-east-1:s3',
        '--user', `${s3.accessKey}:${s3.secretKey}`, '-H', 'x-amz-content-sha256: UNSIGNED-PAYLOAD', '--data-binary', `@${body}`,
        ...urls], { timeoutMs: 60000 });
      put += r.stdout.split('\n').filter((l) => l.trim() === '200').length;
      if (r.code !== 0) t.diagnostic(`curl: ${r.stderr.slice(0, 300)}`);
    }
    assert.equal(put, names.length, 'objects put');
    await sleep(2100);
    const r = await gc({ ...env, TH_MEDIA_GC_GRACE: '1' });
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.ok(Number((/(\d+) objects listed/.exec(r.summary) || [])[1]) >= names.length, `listed past the first page: ${r.summary}`);
    const left = new Set(s3.listKeys());
    assert.equal(names.filter((n) => left.has(n)).length, 0, `every orphan deleted: ${r.summary}`);
  });

  // port 1: nothing listens there (a privileged port no test server takes)
  test('the store unreachable -> exit 1 with a message, nothing claimed removed', async () => {
    const r = await gc({ ...env, TH_S3_ENDPOINT: 'http://127.0.0.1:1', TH_MEDIA_GC_GRACE: '0' });
    assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /listing the s3 store failed/);
    assert.match(r.summary, /removed 0 \(0 bytes\)/, r.summary);
  });
});
