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
