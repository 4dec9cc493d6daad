// The media part's section: 10 MiB uploads against nginx writing the same body alone,
// thumbnails in process, ranged downloads through the app against nginx alone.
import { scenarios } from './scenarios.mjs';
import { evaluate, verdictText, boundText } from './verdict.mjs';
import { wrkSummary, records, median, medianOf, ratio, f0, f2, f3 } from './stats.mjs';
import { head, end, machine, targetsLine } from './section.mjs';

const RANGED = ['static', 'signed', 'bearer', 'auth', 'fcgi', 'open_static', 'open_signed'];
const LABEL = {
  static: '/bench/files/big.pdf (nginx alone)',
  signed: '/media/:id/original?exp=&sig= (app grant kept 1 s, nginx sends)',
  bearer: '/media/:id/original + Authorization: Bearer (app, X-Accel-Redirect)',
  auth: 'signed URL + If-None-Match: its ETag (app answers 304, no bytes)',
  fcgi: '/bench/fcgi (bare libfcgi responder)',
  open_static: 'open-ended ranges, /bench/files/big.pdf (nginx alone)',
  open_signed: 'open-ended ranges, signed URL (app grant kept 1 s, nginx sends)',
};

export function figures(res) {
  const k = res.knobs;
  const ups = records(res.tools.uploads, 'up'), refs = records(res.tools.uploads, 'ref');
  const jpegs = records(res.tools.uploads, 'jpeg');
  const okTimes = (xs, code) => xs.filter((x) => !x.warm && Number(x.code) === code).map((x) => Number(x.s));
  const up = okTimes(ups, 201), ref = okTimes(refs, 200), jpeg = okTimes(jpegs, 201);
  const upErrors = ups.filter((x) => Number(x.code) !== 201).length;
  const refErrors = refs.filter((x) => Number(x.code) !== 200).length;
  const jpegErrors = jpegs.filter((x) => Number(x.code) !== 201).length;
  const w = Object.fromEntries(RANGED.map((n) => [n, wrkSummary(res.wrk[n])]));
  for (const n of ['open_static', 'open_signed']) w[n].bps = median((res.wrk[n] ?? []).map((x) => x.bytes_per_sec));
  const mibs = (n) => (n.startsWith('open_') ? w[n].bps / 1048576 : (w[n].rps * k.media_range_kib) / 1024);
  const u = {
    n: up.length, med: median(up), worst: up.length ? Math.max(...up) : NaN,
    refMed: median(ref), refWorst: ref.length ? Math.max(...ref) : NaN, jpegN: jpeg.length, jpegMed: median(jpeg),
  };
  const staticUs = w.static.rps > 0 ? 1e6 / w.static.rps : 0, authUs = w.auth.rps > 0 ? 1e6 / w.auth.rps : 0;
  const m = {
    up_med: u.med, up_worst: u.worst,
    up_ratio: ratio(u.refMed, u.med),
    signed: ratio(w.signed.rps, w.static.rps), bearer: ratio(w.bearer.rps, w.static.rps),
    open: ratio(w.open_signed.bps, w.open_static.bps), auth_fcgi: ratio(w.auth.rps, w.fcgi.rps),
    thumb: medianOf(res.tools.thumb, '', 'rate'), thumb_all: medianOf(res.tools.thumball, '', 'rate'),
    upload_errors: upErrors + refErrors + jpegErrors,
    errors_total: RANGED.reduce((n, t) => n + w[t].errors, 0),
    // every upload kind and ranged target measured
    measured: up.length && ref.length && RANGED.every((n) => w[n].rounds > 0) ? 1 : 0,
  };
  const goals = evaluate(scenarios.media.goals, m);
  return { u, w, m, mibs, staticUs, authUs, upErrors, refErrors, goals };
}

export function section(res, plotRef) {
  const { u, w, m, mibs, staticUs, authUs, upErrors, refErrors, goals } = figures(res);
  const g = Object.fromEntries(goals.map((x) => [x.metric, x]));
  const k = res.knobs, s = res.settings, f = res.facts;
  const v = (goal, bound) => `${bound ?? boundText(goal, goal.unit)} | ${verdictText(goal)}`;
  const mib = (x) => f0(x);
  const L = head(res, 'Media: 10 MiB uploads, thumbnails of a 12 MP JPEG, ranged downloads',
    `, here with BENCH_ROUNDS=${k.rounds} BENCH_DURATION=${k.duration} BENCH_MEDIA_UPLOADS=${k.media_uploads}`);
  L.push('| measure | value | target | result |', '|---|---:|---:|---|');
  L.push(`| ${k.media_upload_mib} MiB upload through nginx to POST /api/media: median of ${u.n} | ${f3(u.med)} s | ${v(g.up_med)} |`);
  L.push(`| the same: worst of ${u.n} | ${f3(u.worst)} s | ${v(g.up_worst, '< 5 s (the original design)')} |`);
  L.push(`| upload throughput, median | ${f0(k.media_upload_mib / u.med)} MiB/s | report | — |`);
  L.push(`| nginx writing the same body to disk, no app (/bench/upload): median · worst | ${f3(u.refMed)} s · ${f3(u.refWorst)} s (${f0(k.media_upload_mib / u.refMed)} MiB/s) | | |`);
  L.push(`| upload MiB/s ÷ nginx-alone MiB/s | ${f2(m.up_ratio)} | report | — |`);
  L.push(`| 12 MP JPEG (4000×3000) processed in process, 1 process (= 1 core): original re-encoded + thumb + medium | ${f2(m.thumb)} images/s | report | — |`);
  L.push(`| the same, ${f.cores} processes (all cores) | ${f2(m.thumb_all)} images/s | report | — |`);
  if (u.jpegN) L.push(`| that JPEG uploaded through nginx to POST /api/media, median of ${u.jpegN} | ${f3(u.jpegMed)} s | report | — |`);
  L.push(`| ranged GET, ${k.media_range_kib} KiB ranges, signed URL (the app grants, nginx keeps the grant 1 s and sends) | ${mib(mibs('signed'))} MiB/s | | |`);
  L.push(`| the same with a Bearer token instead (the app decides every request: X-Accel-Redirect) | ${mib(mibs('bearer'))} MiB/s | | |`);
  L.push(`| nginx alone, the same bytes (/bench/files/) | ${mib(mibs('static'))} MiB/s | | |`);
  L.push(`| signed ÷ nginx alone | ${f2(m.signed)} | ${v(g.signed)} |`);
  L.push(`| Bearer ÷ nginx alone (a download with a token is never reused: see below) | ${f2(m.bearer)} | report | — |`);
  L.push(`| open-ended ranges (bytes=S- to the end, as a browser <video> asks), signed URL | ${mib(mibs('open_signed'))} MiB/s | | |`);
  L.push(`| nginx alone, the same requests | ${mib(mibs('open_static'))} MiB/s | | |`);
  L.push(`| open-ended: signed ÷ nginx alone | ${f2(m.open)} | ${v(g.open)} |`);
  L.push(`| the authorization alone (signed URL answered 304, no bytes) | ${f0(w.auth.rps)} req/s | report | — |`);
  L.push(`| that ÷ /bench/fcgi in the same rounds (${f0(w.fcgi.rps)} req/s, the FastCGI floor) | ${f2(m.auth_fcgi)} | report | — |`);
  L.push(`| per request on ${f.cores} cores: nginx alone ${f0(staticUs)} µs, authorization ${f0(authUs)} µs → expected Bearer ÷ nginx alone if they add up | ${f2(staticUs + authUs > 0 ? staticUs / (staticUs + authUs) : 0)} | report | — |`);
  L.push('');
  L.push(`| ranged target (${k.media_range_kib} KiB, ${k.media_conns} connections) | req/s (median) | MiB/s | p50 ms | p99 ms | errors (all rounds) |`);
  L.push('|---|---:|---:|---:|---:|---:|');
  for (const n of RANGED) {
    const mb = n === 'auth' ? '— (304)' : n === 'fcgi' ? '— (11 bytes)' : mib(mibs(n));
    L.push(`| ${LABEL[n]} | ${f0(w[n].rps)} | ${mb} | ${f2(w[n].p50)} | ${f2(w[n].p99)} | ${w[n].errors} |`);
  }
  if (plotRef) L.push('', `![ranged downloads: MiB/s per target](${plotRef})`);
  L.push('');
  L.push(`- Uploads: \`curl -s -H 'Content-Type: application/octet-stream' -H 'Expect:' [-H 'Authorization: Bearer $TOKEN'] --data-binary @upload.pdf -w '%{http_code} %{time_total}' URL\`, one request at a time over a new connection: ${k.media_uploads} pairs after 2 warm-up pairs, each pair /bench/upload then POST /api/media with the same bytes, new bytes for every pair (a PDF header, then random bytes: detected as application/pdf and stored as it is, so no image or video work is in these figures — a video is re-muxed by ffmpeg since 2026-12-06, and random bytes behind an MP4 box, what this part uploaded before, are refused; a repeated file would be deduplicated). The time is curl's time_total: connect, send, the whole server side, the 201 with the media JSON. Each medium is deleted after its upload (not timed). Errors: /api/media ${upErrors}, /bench/upload ${refErrors}.`);
  L.push('- What /api/media does for those seconds: nginx writes the body to a temporary file (client_body_buffer_size 64k, fastcgi_request_buffering on), then streams it over the unix socket to a worker, which hashes it (SHA-256) while writing it to $TH_VAR_DIR/media/tmp, detects its type (libmagic), checks the quota, renames it into place and inserts the row in one transaction. /bench/upload has the same client-body settings and answers from the bare libfcgi responder without passing the body on (fastcgi_pass_request_body off): nginx\'s disk write and the FastCGI hop only. So the ratio is what the app\'s work costs on top of what nginx must do anyway.');
  L.push(`- Thumbnails: \`th-thumb_bench photo-12mp.jpg ${k.media_thumb_seconds} 1 (${k.rounds} runs, median), then th-thumb_bench photo-12mp.jpg ${k.media_thumb_seconds} ${f.cores}\` (tests/load/thumb_bench.c): image_process() of fcgi-apps/media/image.c, the upload's own code with the worker's ImageMagick settings (one thread, the same resource limits), on a 4000×3000 JPEG made by \`convert -size 4000x3000 -seed 7 plasma:fractal -blur 0x1 -quality 90\` (${f.photo_bytes} bytes): ping, decode, orient and strip, re-encode the original, the thumb (fits 320×320) and the medium (fits 1280×1280), SHA-256 of the three, files removed after each call. One process is one core's worth (media workers are single-threaded processes); the all-cores run shows how it scales on this machine.`);
  L.push(`- Ranged downloads: \`wrk -t${k.threads} -c${k.media_conns} -d${k.duration}s --latency -s range.lua [-H 'Authorization: Bearer $TOKEN'] URL\`, range.lua asking for ${k.media_range_kib} KiB (the order of what a segment-fetching video player asks for per request as it plays or seeks; a browser's own \`<video>\` sends open-ended ranges and reads on, which costs fewer authorizations per MiB than this) at a random aligned offset of a ${k.media_file_mib} MiB medium (the same kind of bytes as the uploads) uploaded into a private community: the signed URL from its media JSON (what a \`<video src>\` uses: nginx asks the app for a grant — the app loads the row and checks the HMAC — keeps it 1 s (TH_MEDIA_GRANT_TTL) and sends the file itself, sendfile), and the unsigned URL with the owner's Bearer token (token check and visibility query on every request, never reused, so a removed member is refused at once: the app answers X-Accel-Redirect and nginx sends the bytes from the internal /_media/ location). The reference is nginx serving a copy of the same file from $TH_VAR_DIR/bench-files/ with the same location settings. Every target was checked first to answer a range with 206 and exactly the file's bytes. The fourth target is the signed request with If-None-Match set to the medium's ETag: the app authorizes it exactly as the others and answers 304, so no bytes move; it measures what the authorization costs per request, next to /bench/fcgi (the bare responder: the FastCGI hop alone) in the same rounds. Open-ended ranges (open.lua: bytes=S- from a random aligned offset to the end) are compared by wrk's own count of bytes read per second, their sizes varying. ${k.rounds} rounds alternating static → signed → bearer → 304 → fcgi → open static → open signed after ${k.warmup} s warm-up each; medians; MiB/s = req/s × range size.`);
  L.push(`- Machine: ${machine(res)}; curl, wrk and the stack share it. Load average (1 min) when this part started: ${res.machine.loadavg_start}.`);
  L.push(`- Settings: workers per pool 4, nginx worker_processes ${s.nginx_workers}, local storage under the bench's temporary var dir, TH_LOG_LEVEL=${s.TH_LOG_LEVEL}, binaries ${s.binaries}.`);
  L.push(`- Targets: ${targetsLine(goals)}.`);
  L.push(end(res.part));
  return L.join('\n');
}

// throughput where a reader would rather look: MiB/s of each ranged target
export const plot = (res) => {
  const { mibs } = figures(res);
  const cats = ['static', 'signed', 'bearer', 'open_static', 'open_signed'];
  return {
    name: 'ranges',
    title: `Media: ranged downloads, MiB/s (${res.knobs.media_range_kib} KiB ranges and open-ended)`,
    categories: cats.map((n) => ({ label: n.replace('_', ' '), values: { mibs: mibs(n) } })),
    series: [{ key: 'mibs', label: '' }],
    unit: 'MiB/s',
  };
};
