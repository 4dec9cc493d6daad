// Unit tests of the benchmark tooling: wrk's output parsed, a result rendered into its
// docs/benchmarks.md section and plot, a section spliced between its markers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWrk, median, ms } from './wrk.mjs';
import { section, splice, barChart } from './render.mjs';

const WRK = `Running 10s test @ http://127.0.0.1:28080/bench/fcgi
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.51ms    1.20ms  40.00ms   90.00%
    Req/Sec     9.10k   500.00     10.00k    70.00%
  Latency Distribution
     50%    3.20ms
     75%    3.90ms
     90%  812.00us
     99%    1.05s
  181234 requests in 10.00s, 30.00MB read
  Socket errors: connect 0, read 2, write 1, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:  18123.40
Transfer/sec:      3.00MB
`;

test('wrk output: rate, requests, percentiles in ms whatever the unit, errors summed', () => {
  const o = parseWrk(WRK);
  assert.equal(o.rps, 18123.4);
  assert.equal(o.requests, 181234);
  assert.deepEqual(o.latency, { p50: 3.2, p75: 3.9, p90: 0.812, p99: 1050 });
  assert.equal(o.errors, 10);
  assert.ok(Number.isNaN(parseWrk('wrk: connection refused').rps));
  assert.equal(ms('2m'), 120000);
  assert.ok(Number.isNaN(ms('fast')));
});

test('median: odd, even, non-numbers ignored, empty is NaN', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([NaN, 5]), 5);
  assert.ok(Number.isNaN(median([])));
});

const RESULT = {
  part: 'foundation',
  title: 'Foundation: transport ceiling, floor and a real route',
  started_at: '2026-12-06T12:34:56.000Z',
  command: 'wrk -t2 -c64 -d10s --latency URL',
  knobs: { rounds: 3, duration: 10, threads: 2, connections: 64, warmup: 3 },
  order: ['static', 'fcgi'],
  machine: { cpus: 2, model: 'Test CPU', kernel: '6.1', loadavg: [0.5, 0.4, 0.3] },
  settings: { 'nginx worker_processes': '2' },
  targets: {
    static: { label: '/bench/static (nginx constant)', rps: 30000.4, p50: 1.5, p75: 2, p90: 2.5, p99: 4.25, errors: 0 },
    fcgi: { label: '/bench/fcgi (bare libfcgi)', rps: 15000, p50: 3, p75: 4, p90: 5, p99: 9, errors: 2 },
  },
  ratios: { fcgi_static: { label: 'fcgi / static', value: 15000 / 30000.4 } },
  goals: [{ label: 'errors', metric: 'errors_total', atMost: 0, value: 2, verdict: 'not met' }],
  file: 'docs/bench/foundation.json',
};

test('a result renders as its section: markers, one row per target in run order, ratio, goal verdict, plot link', () => {
  const s = section(RESULT, 'bench/foundation-latency.svg');
  const lines = s.split('\n');
  assert.equal(lines[0], '<!-- bench:foundation:begin -->');
  assert.equal(lines.at(-1), '<!-- bench:foundation:end -->');
  assert.ok(s.includes('Run 2026-12-06 12:34 UTC'));
  const rows = lines.filter((l) => l.startsWith('| /bench/'));
  assert.deepEqual(rows, [
    '| /bench/static (nginx constant) | 30000 | 1.50 | 4.25 | 0 |',
    '| /bench/fcgi (bare libfcgi) | 15000 | 3.00 | 9.00 | 2 |',
  ]);
  assert.ok(lines.includes('| fcgi / static | 0.50 |'));
  assert.ok(lines.includes('| errors ≤ 0 | 2 | **not met** |'));
  assert.ok(s.includes('](bench/foundation-latency.svg)'));
  assert.ok(s.includes('3 rounds alternating static → fcgi'));
});

test('splice replaces only what lies between the part\'s markers, or appends', () => {
  const doc = 'head\n<!-- bench:foundation:begin -->\nold\n<!-- bench:foundation:end -->\ntail\n';
  const s = '<!-- bench:foundation:begin -->\nnew\n<!-- bench:foundation:end -->';
  assert.equal(splice(doc, 'foundation', s), `head\n${s}\ntail\n`);
  assert.equal(splice('head\n', 'foundation', s), `head\n\n${s}\n`);
});

test('the plot: one bar per target and percentile, scaled to the largest', () => {
  const svg = barChart({
    title: 't <1>',
    categories: RESULT.order.map((n) => ({ label: RESULT.targets[n].label, values: RESULT.targets[n] })),
    series: [{ key: 'p50', label: 'p50' }, { key: 'p99', label: 'p99' }],
    unit: 'ms',
  });
  assert.ok(svg.startsWith('<svg'));
  assert.ok(svg.includes('t &lt;1&gt;'));
  const bars = [...svg.matchAll(/<rect x="230" y="\d+" width="([0-9.]+)"/g)].map((m) => Number(m[1]));
  assert.equal(bars.length, 4);
  assert.equal(Math.max(...bars), 720 - 230 - 130); // fcgi p99, the largest, fills the width (its label after it)
});

// --- the raw parts: verdicts, raw records, a raw result rendered ---------------------
import { verdict, evaluate, verdictText, failed, boundText } from './verdict.mjs';
import { parseLines, latencies } from './collect.mjs';
import { keepsUp } from './keeps-up.mjs';
import * as authR from './render-auth.mjs';
import * as bridgeR from './render-bridge.mjs';

test('verdict: a goal met, not met, a missing value (never met), a report', () => {
  assert.equal(verdict({ atLeast: 0.8 }, 0.8), 'met');
  assert.equal(verdict({ atLeast: 0.8 }, 0.79), 'not met');
  assert.equal(verdict({ atMost: 10 }, 9.99), 'met');
  assert.equal(verdict({ atMost: 10 }, 10.01), 'not met');
  assert.equal(verdict({ equals: 0 }, 0), 'met');
  assert.equal(verdict({ equals: 0 }, 3), 'not met');
  for (const v of [undefined, null, NaN, 'n/a', Infinity]) assert.equal(verdict({ atMost: 10 }, v), 'missing');
  assert.equal(verdict({ report: true }, 5), 'report');
  assert.equal(verdictText({ verdict: 'missing' }), '**not met** (no value)');
  assert.equal(verdictText({ verdict: 'not met', why: 'cache not hit' }), '**not met** (cache not hit)');
  assert.equal(boundText({ atLeast: 1000000 }, '/s'), '≥ 1,000,000 /s');
  assert.equal(boundText({ atMost: 10 }, 'ms'), '≤ 10 ms');
});

test('evaluate: a reason overrides a met value; only gating goals fail a run', () => {
  const goals = [
    { metric: 'ratio', atLeast: 0.7, why: 'miss' },
    { metric: 'errors', equals: 0, gate: true },
    { metric: 'absent', atMost: 5, gate: true },
  ];
  let g = evaluate(goals, { ratio: 0.9, miss: 'cache not hit', errors: 0, absent: 1 });
  assert.deepEqual(g.map((x) => x.verdict), ['not met', 'met', 'met']);
  assert.equal(failed(g), false); // the ratio is not a gate
  g = evaluate(goals, { ratio: 0.9, miss: '', errors: 0 });
  assert.deepEqual(g.map((x) => x.verdict), ['met', 'met', 'missing']);
  assert.equal(failed(g), true); // a gating goal without its value fails
});

test('load tools\' lines: tagged k=v, "key value", k=v only; latencies as nearest-rank percentiles', () => {
  assert.deepEqual(parseLines('cached_per_s 2315256\nstep rate=5000 p50_ms=5.991 nonce=bd7a6721\nprocs=2 rate=1.730\n\n'), [
    { tag: 'cached_per_s', value: 2315256 },
    { tag: 'step', rate: 5000, p50_ms: 5.991, nonce: 'bd7a6721' },
    { tag: '', procs: 2, rate: 1.73 },
  ]);
  const l = latencies(Array.from({ length: 100 }, (_, i) => String((i + 1) * 1000)).reverse().join('\n'));
  assert.deepEqual(l, { n: 100, p50: 50, p75: 75, p90: 90, p99: 99, max: 100 });
  assert.ok(Number.isNaN(latencies('').p99));
});

test('a bridge step keeps up by the scenario\'s rule (sent, backlog at the end, its growth)', () => {
  const s = { rate: 10000, send_rate: 9990, backlog_mid: 100, backlog_end: 400 };
  assert.equal(keepsUp(s), true);
  assert.equal(keepsUp({ ...s, send_rate: 9400 }), false); // sent < 95 %
  assert.equal(keepsUp({ ...s, backlog_end: 2600 }), false); // > 0.25 s worth at the end
  assert.equal(keepsUp({ ...s, backlog_mid: 0, backlog_end: 600 }), false); // grew > 0.05 s worth
  assert.equal(keepsUp({ rate: 10000 }), false); // missing figures never keep up
});

const wrkRound = (rps, p50, p99, errors = 0) => ({ rps, requests: rps * 10, errors, latency: { p50, p75: p50, p90: p99, p99 } });
const AUTH = {
  part: 'auth',
  title: 'Auth: token verification, /api/auth/me, logins',
  started_at: '2026-12-06T12:34:56.000Z',
  file: 'docs/bench/auth.json',
  machine: { cpus: 2, model: 'Test CPU', kernel: '6.1', loadavg_start: 0.5 },
  knobs: { rounds: 3, duration: 10, threads: 2, connections: 64, warmup: 3, verify_seconds: 5, login_connections: 16, argon2_procs: 2 },
  settings: { nginx_workers: 2, TH_ME_CACHE_TTL_MS: 5000, TH_ME_CACHE_SLOTS: 1024, TH_ARGON2_CONCURRENCY: 2, binaries: 'build/bin' },
  facts: { 'me_cache_hits.before': 10, 'me_cache_hits.after': 110, 'me_cache_misses.before': 1, 'me_cache_misses.after': 3 },
  wrk: {
    fcgi: [wrkRound(18000, 3.4, 4.6), wrkRound(17000, 3.5, 4.8), wrkRound(19000, 3.3, 4.4)],
    me: [wrkRound(16000, 3.9, 5.7), wrkRound(15000, 4, 12), wrkRound(15500, 3.8, 5.5)],
    login: [wrkRound(93.8, 168, 203), wrkRound(90, 170, 210), wrkRound(95, 165, 200)],
  },
  tools: {
    verify: [[{ tag: 'cached_per_s', value: 2000000 }, { tag: 'uncached_per_s', value: 11000 }]],
    argon2: [[{ tag: 'argon2_verify_per_s', value: 100 }], [{ tag: 'argon2_verify_per_s', value: 110 }], [{ tag: 'argon2_verify_per_s', value: 105 }]],
  },
};

test('auth: medians, ratios and verdicts from the raw rounds, the same rows as before', () => {
  const s = authR.section(AUTH, 'bench/auth-latency.svg');
  const rows = s.split('\n');
  assert.equal(rows[0], '<!-- bench:auth:begin -->');
  assert.equal(rows.at(-1), '<!-- bench:auth:end -->');
  assert.ok(rows.includes('| token_verify, cached (in-process, 1 thread) | 2000000 /s | ≥ 1,000,000 /s | met |'));
  assert.ok(rows.includes('| me / fcgi | 0.86 | ≥ 0.8 | met |')); // 15500 / 18000
  assert.ok(rows.includes('| me p99 at 64 connections | 5.70 ms | ≤ 10 ms | met |')); // median of 5.7, 12, 5.5
  assert.ok(rows.includes('| logins / argon2id verifies | 0.89 | ≥ 0.9 | **not met** |')); // 93.8 / 105
  assert.ok(rows.includes('| /api/auth/login (argon2id + PG + Redis), 16 connections | 93.8 | 168.00 | 203.00 | 0 |'));
  assert.ok(s.includes('counted 100 hits and 2 misses'));
  assert.equal(failed(authR.figures(AUTH).goals), false);
});

test('auth: a failed login or a missing measurement is never met; errors fail the run', () => {
  const bad = structuredClone(AUTH);
  bad.wrk.login[1].errors = 4;
  delete bad.tools.verify;
  const { goals } = authR.figures(bad);
  const g = Object.fromEntries(goals.map((x) => [x.metric, x]));
  assert.equal(g.verify_cached.verdict, 'missing');
  assert.equal(verdictText(g.login_argon2), '**not met** (failed logins)');
  assert.equal(g.errors_total.verdict, 'not met');
  assert.equal(failed(goals), true);
  assert.ok(authR.section(bad).includes('| token_verify, cached (in-process, 1 thread) | n/a /s | ≥ 1,000,000 /s | **not met** (no value) |'));
});

test('bridge: the highest step that kept up, the history check, CPU % from ticks', () => {
  const step = (rate, send, be, bm) => [
    { tag: 'step', rate, send_rate: send, persisted_rate: send, backlog_mid: bm, backlog_end: be, p50_ms: 1, p99_ms: 2, max_ms: 3 },
    { tag: 'total', sent: rate * 10 },
    { tag: 'cpu', bridge_ticks: 50, pg_ticks: 100, broker_ticks: 0, load_ticks: 0, hz: 100, ms: 2000 },
  ];
  const res = {
    part: 'bridge', knobs: { bridge_rates: '5000,10000,20000' },
    facts: { messages_rows: 150000, messages_distinct: 150000 },
    tools: { steps: [step(5000, 5000, 10, 5), step(10000, 10000, 8000, 100)], warmup: [], window: [] },
  };
  const f = bridgeR.figures(res);
  assert.equal(f.best, 5000);
  assert.deepEqual(f.skipped, [20000]);
  assert.equal(f.steps[0].cpu_bridge, 25); // 50 ticks at 100 Hz over 2 s
  assert.equal(f.m.history, 1);
  res.facts.messages_distinct = 149999;
  assert.equal(failed(bridgeR.figures(res).goals), true);
});

import { stormBack } from './render-realtime.mjs';

test('realtime storm: first drop to the last holder whole again; a holder never whole is n/a', () => {
  const h = (d, ...fulls) => [{ tag: 'drop', t_ns: d }, ...fulls.map((t) => ({ tag: 'full', t_ns: t }))];
  assert.equal(stormBack([h(2e9, 5e9), [], h(1e9, 3e9, 7e9)]), 6); // 1 s → 7 s
  assert.ok(Number.isNaN(stormBack([h(1e9, 3e9), h(2e9)])));
  assert.ok(Number.isNaN(stormBack([[], []]))); // nobody lost a client
});

import { fanSummary, connSummary } from './render-mqtt.mjs';
import { explainFacts } from './render-community.mjs';

test('mqtt: fan-out medians, CPU per delivery from ticks, deliveries missing; a connection run summed over its processes', () => {
  const run = (p99, mps, deliveries) => [
    { tag: 'rate', p50_ms: 1, p99_ms: p99, max_ms: 9, expected: 1000, deliveries: 1000 },
    { tag: 'max', msgs_per_s: mps, deliveries_per_s: mps * 100, p99_ms: 20, expected: 5000, deliveries },
    { tag: 'total', deliveries: 6000 },
    { tag: 'cpu', broker_ticks: 6, nginx_ticks: 0, hz: 100 },
  ];
  const f = fanSummary([run(5, 2000, 5000), run(7, 1000, 4990), run(6, 1500, 5000)]);
  assert.equal(f.p99, 6);
  assert.equal(f.mps, 1500);
  assert.equal(f.cpu, 10); // 6 ticks = 60 ms over 6000 deliveries
  assert.equal(f.lost, 10);
  const c = connSummary(
    [[{ tag: 'ready', ok: 900, failed: 0, refused: 0, subfail: 0, start_ns: 1e9, end_ns: 2e9 }, { tag: 'recv', conns_all: 900, msgs: 900, extra: 0, closed: 0, p50_ms: 5, p99_ms: 9, max_ms: 10 }],
      [{ tag: 'ready', ok: 100, failed: 2, refused: 2, subfail: 0, start_ns: 1.5e9, end_ns: 3e9 }, { tag: 'recv', conns_all: 99, msgs: 99, extra: 0, closed: 1, p50_ms: 6, p99_ms: 8, max_ms: 12 }]],
    [[{ tag: 'run', asked: 1002, rss_before_kb: 1000, rss_after_kb: 3000, nginx_short_before: 0, nginx_short_after: 0 }]],
  );
  assert.equal(c.ok, 1000);
  assert.equal(c.secs, 2); // first connect 1 s → last SUBACK 3 s
  assert.equal(c.rate, 500);
  assert.equal(c.per, 2048);
  assert.equal(c.got, 999);
  assert.equal(c.max, 12); // the highest of the processes' own
});

test('community: the EXPLAIN facts (feed index used, no Sort above the per-post subqueries)', () => {
  assert.deepEqual(explainFacts('Limit\n  ->  Index Scan using posts_feed_idx on posts p\n  SubPlan 1\n    ->  Sort'), { index: true, sorts: 0 });
  assert.deepEqual(explainFacts('Limit\n  ->  Sort\n    ->  Seq Scan on posts p'), { index: false, sorts: 1 });
});

import * as exportR from './render-export.mjs';

const exportRound = (bytes, serving, idle = [0, 0, 0], extra = {}) => [
  ...[serving, ...idle].map((g, i) => ({ tag: 'worker', pid: 100 + i, rss_kb: 12000, hwm_kb: 12000 + g, after_kb: 12000, reqs: i ? 0 : 1 })),
  { tag: 'export', code: 200, bytes, ttfb_s: 0.01, s: bytes / 2e7, items: bytes / 400, whole: 1, ...extra },
];
const EXPORT = {
  part: 'export',
  title: 'Account export: worker memory against the account\'s size',
  started_at: '2026-12-06T12:34:56.000Z',
  file: 'docs/bench/export.json',
  machine: { cpus: 2, model: 'Test CPU', kernel: '6.1', loadavg_start: 0.5 },
  knobs: { rounds: 3, export_items: 180000, export_body: 250 },
  settings: { nginx_workers: 2, TH_RL_EXPORT_MAX: 1000000, export_page: 500, TH_LOG_LEVEL: 'info', binaries: 'build/bin' },
  facts: { items_large: 180000, items_small: 18000, auth_workers: 4, loadavg_measuring: 0.6, loadavg_end: 0.7 },
  tools: {
    small: [exportRound(7.2e6, 400), exportRound(7.2e6, 0), exportRound(7.2e6, 200)],
    large: [exportRound(7.2e7, 480, [8, 0, 0]), exportRound(7.2e7, 0), exportRound(7.2e7, 240)],
  },
};

test('export: the serving worker is the one whose peak grew most; ratios of the medians; constant memory met', () => {
  const run = exportR.exportRun(EXPORT.tools.large[0]);
  assert.equal(run.pid, 100);
  assert.equal(run.growth_kb, 480);
  assert.equal(run.others_kb, 8);
  assert.equal(run.counted, 1);
  // the worker whose request count moved served it, even when an idle one grew more
  const other = exportR.exportRun(exportRound(7.2e7, 40, [52, 0, 0]));
  assert.deepEqual([other.pid, other.growth_kb, other.others_kb], [100, 40, 52]);
  // no count moved: the largest growth
  const none = exportR.exportRun(exportRound(7.2e7, 40, [52, 0, 0]).map((x) => ({ ...x, reqs: 0 })));
  assert.deepEqual([none.pid, none.counted], [101, 0]);
  const { t, m, goals } = exportR.figures(EXPORT);
  assert.equal(t.small.growth_kb, 200); // median of 400, 0, 200
  assert.equal(t.large.growth_kb, 240);
  assert.equal(m.bytes_ratio, 10);
  assert.equal(m.peak_ratio, 12240 / 12200);
  assert.equal(m.held_per_byte, (40 * 1024) / 6.48e7);
  assert.equal(failed(goals), false);
  assert.ok(goals.every((g) => g.verdict === 'met'));
  const s = exportR.section(EXPORT, 'bench/export-memory.svg');
  assert.equal(s.split('\n')[0], '<!-- bench:export:begin -->');
  assert.ok(s.includes('| document large ÷ small | 10.00 | ≥ 9 | met |'));
  assert.ok(s.includes('| 1 | large | 72000000 | 3.600 | 100 | 12000 | 12480 | 480 |'));
});

test('export: memory that follows the document, a cut-short export or a missing size is never met', () => {
  const grow = structuredClone(EXPORT);
  grow.tools.large = [exportRound(7.2e7, 70000), exportRound(7.2e7, 70000), exportRound(7.2e7, 70000)];
  const g = Object.fromEntries(exportR.figures(grow).goals.map((x) => [x.metric, x]));
  assert.equal(g.peak_ratio.verdict, 'not met');
  assert.equal(g.held_per_byte.verdict, 'not met');
  const cut = structuredClone(EXPORT);
  cut.tools.large[1] = exportRound(7.2e7, 0, [0, 0, 0], { whole: 0 });
  assert.equal(failed(exportR.figures(cut).goals), true);
  const none = structuredClone(EXPORT);
  delete none.tools.large;
  const gs = exportR.figures(none).goals;
  assert.equal(failed(gs), true);
  assert.equal(gs.find((x) => x.metric === 'bytes_ratio').verdict, 'missing');
});
