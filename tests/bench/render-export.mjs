// The export part's section: GET /api/auth/me/export of an account against one with a
// tenth of its items, the serving auth worker's resident memory before and at its peak
// (scripts/lib/bench-export.sh collects, this decides).
import { scenarios } from './scenarios.mjs';
import { evaluate, verdictText, boundText } from './verdict.mjs';
import { median, ratio, f0, f2, f3 } from './stats.mjs';
import { head, end, machine, targetsLine } from './section.mjs';

const SIZES = ['small', 'large'];
const mib = (kb) => kb / 1024;

// one export's run (its parsed lines) -> {code, bytes, s, ttfb_s, items, whole, pid,
// rss_kb, hwm_kb, growth_kb, counted}: the serving worker is the one whose request count
// moved (th-poolstat; counted: 1), the one whose peak grew most among them when several
// did, or among all when none did (counted: 0); the others' largest growth is others_kb
export function exportRun(lines = []) {
  const e = lines.find((x) => x.tag === 'export') ?? {};
  const ws = lines.filter((x) => x.tag === 'worker')
    .map((w) => ({ pid: w.pid, rss_kb: Number(w.rss_kb), hwm_kb: Number(w.hwm_kb), growth_kb: Number(w.hwm_kb) - Number(w.rss_kb), reqs: Number(w.reqs) }))
    .filter((w) => Number.isFinite(w.growth_kb) && w.rss_kb > 0);
  ws.sort((a, b) => (b.reqs > 0) - (a.reqs > 0) || b.growth_kb - a.growth_kb);
  const top = ws[0] ?? { pid: null, rss_kb: NaN, hwm_kb: NaN, growth_kb: NaN, reqs: NaN };
  const rest = ws.slice(1).map((w) => w.growth_kb);
  return {
    code: Number(e.code), bytes: Number(e.bytes), s: Number(e.s), ttfb_s: Number(e.ttfb_s),
    items: Number(e.items), whole: Number(e.whole) === 1 && Number(e.code) === 200,
    pid: top.pid, rss_kb: top.rss_kb, hwm_kb: top.hwm_kb, growth_kb: top.growth_kb, counted: top.reqs > 0 ? 1 : 0,
    others_kb: rest.length ? Math.max(...rest) : NaN, workers: ws.length,
  };
}

// medians over the rounds of one size
export function sizeSummary(runs = []) {
  const r = runs.map(exportRun);
  const m = (k) => median(r.map((x) => x[k]));
  return {
    rounds: r.length, runs: r, bytes: m('bytes'), s: m('s'), ttfb_s: m('ttfb_s'), items: m('items'),
    rss_kb: m('rss_kb'), hwm_kb: m('hwm_kb'), growth_kb: m('growth_kb'), others_kb: m('others_kb'),
    whole: r.length > 0 && r.every((x) => x.whole), counted: r.filter((x) => x.counted).length,
  };
}

export function figures(res) {
  const t = Object.fromEntries(SIZES.map((n) => [n, sizeSummary(res.tools[n])]));
  const { small, large } = t;
  const m = {
    bytes_ratio: ratio(large.bytes, small.bytes),
    peak_ratio: ratio(large.hwm_kb, small.hwm_kb),
    growth_ratio: ratio(large.growth_kb, small.growth_kb),
    // KiB of extra peak growth per KiB of extra document: the share of the data a
    // worker would hold if its memory followed it (1 = the whole document)
    held_per_byte: ratio(Math.max(0, large.growth_kb - small.growth_kb) * 1024, large.bytes - small.bytes),
    peak_large_mib: mib(large.hwm_kb),
    whole: SIZES.every((n) => t[n].whole) && small.rounds > 0 && large.rounds > 0 ? 1 : 0,
  };
  const goals = evaluate(scenarios.export.goals, m);
  return { t, m, goals };
}

// how the serving workers were told apart, for the method line
const told = (t) => {
  const n = t.small.rounds + t.large.rounds, c = t.small.counted + t.large.counted;
  return c === n ? `every export told apart so` : `${c} of ${n} exports told apart so, the rest by the largest growth`;
};

export function section(res, plotRef) {
  const { t, m, goals } = figures(res);
  const g = Object.fromEntries(goals.map((x) => [x.metric, x]));
  const k = res.knobs, s = res.settings, f = res.facts;
  const v = (goal) => `${boundText(goal, goal.unit)} | ${verdictText(goal)}`;
  const L = head(res, res.title, `, here with BENCH_ROUNDS=${k.rounds} BENCH_EXPORT_ITEMS=${k.export_items} BENCH_EXPORT_BODY=${k.export_body}`);
  L.push(`| account | items | document (median) | time to first byte | total time | serving worker: RSS before | its peak (VmHWM) | peak − before | largest growth of the ${Math.max(0, (f.auth_workers ?? 1) - 1)} idle workers |`);
  L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const n of SIZES) {
    const x = t[n];
    L.push(`| ${n} (${n === 'small' ? 'the reference, a tenth' : 'BENCH_EXPORT_ITEMS'}) | ${f0(x.items)} | ${f2(x.bytes / 1048576)} MiB | ${f3(x.ttfb_s)} s | ${f3(x.s)} s | ${f2(mib(x.rss_kb))} MiB | ${f2(mib(x.hwm_kb))} MiB | ${f0(x.growth_kb)} KiB | ${f0(x.others_kb)} KiB |`);
  }
  L.push('', '| measure | value | target | result |', '|---|---:|---:|---|');
  L.push(`| document large ÷ small | ${f2(m.bytes_ratio)} | ${v(g.bytes_ratio)} |`);
  L.push(`| serving worker's peak RSS, large ÷ small | ${f3(m.peak_ratio)} | ${v(g.peak_ratio)} |`);
  L.push(`| extra peak growth ÷ extra document bytes (large − small) | ${f3(m.held_per_byte)} | ${v(g.held_per_byte)} |`);
  L.push(`| serving worker's peak during the large export | ${f2(m.peak_large_mib)} MiB | ${v(g.peak_large_mib)} |`);
  L.push(`| peak growth large ÷ small (either may be a few pages: noisy) | ${f2(m.growth_ratio)} | report | — |`);
  L.push(`| every export answered 200, ended whole, with every seeded item | ${m.whole ? 'yes' : 'no'} | ${v(g.whole)} |`);
  L.push('', '| round | account | bytes | s | worker | RSS before KiB | peak KiB | growth KiB |', '|---:|---|---:|---:|---:|---:|---:|---:|');
  for (let r = 0; r < Math.max(t.small.rounds, t.large.rounds); r++) {
    for (const n of SIZES) {
      const x = t[n].runs[r];
      if (x) L.push(`| ${r + 1} | ${n} | ${f0(x.bytes)} | ${f3(x.s)} | ${x.pid ?? 'n/a'} | ${f0(x.rss_kb)} | ${f0(x.hwm_kb)} | ${f0(x.growth_kb)} |`);
    }
  }
  if (plotRef) L.push('', `![serving worker's RSS before and at its peak, per account](${plotRef})`);
  L.push('');
  L.push(`- Data: two accounts registered through the API, each with its own public community; then, with SQL on the worker's database connection (\`psql\` with its TH_DB_CONNINFO), the large account gets ${f0(f.items_large)} items and the small one ${f0(f.items_small)}, a third each posts (title "Post N"), comments (one on each of its posts) and chat messages in its community's channel, bodies of plain words ${k.export_body - 50}–${k.export_body + 49} characters long (no mention, no media); then VACUUM (ANALYZE).`);
  L.push(`- Each export: \`curl -s -o export.json -w '%{http_code} %{size_download} %{time_starttransfer} %{time_total}' -H 'Authorization: Bearer $TOKEN' $BASE/api/auth/me/export\` through nginx (which spools the response, fastcgi_buffering on, so the worker is never held by the client). Before it, for every auth worker (the children of the pool's multiwatch, ${f.auth_workers} here): VmRSS from /proc/PID/status, then \`echo 5 > /proc/PID/clear_refs\` (resets VmHWM to the present RSS); after it VmHWM. The worker that served the export is the one whose request count moved (th-poolstat on the pool's metrics file, read 0.3 s after curl ended; ${told(t)}). The idle workers' largest growth, in the table, is the floor of what these reads resolve: an idle worker's peak moves by up to ~100 KiB too (most likely the kernel's per-CPU RSS counters, which /proc sums approximately: a few dozen pages), so growths of that order are noise. The document is checked whole: 200, ends with \`}\\n\` (a document cut short ends elsewhere), and holds one \`"body"\` per seeded item. ${k.rounds} rounds alternating small → large after a warm-up of as many small exports at once as there are workers, twice (each worker has exported before: its first export pays one-time costs); medians.`);
  L.push(`- What it shows: fcgi-apps/auth/export.c reads each list in keyset pages of ${s.export_page} rows (PostgreSQL builds each item's JSON text), writes a page into libfcgi's fixed output buffer and frees it before the next, in one REPEATABLE READ READ ONLY transaction. So the worker holds at most one page whatever the account's size: its peak is the same for ${f0(f.items_small)} and ${f0(f.items_large)} items while the document is ${f2(m.bytes_ratio)} times larger.`);
  L.push(`- Machine: ${machine(res)}; curl and the stack share it. Load average (1 min) when this part started ${res.machine.loadavg_start}, when it measured ${f.loadavg_measuring}, at its end ${f.loadavg_end}.`);
  L.push(`- Settings: auth workers ${f.auth_workers}, TH_RL_EXPORT_MAX=${s.TH_RL_EXPORT_MAX} (API.md's budget is 2 an hour; lifted for this throwaway stack), nginx worker_processes ${s.nginx_workers}, TH_LOG_LEVEL=${s.TH_LOG_LEVEL}, binaries ${s.binaries}.`);
  L.push(`- Targets: ${targetsLine(goals)}.`);
  L.push(end(res.part));
  return L.join('\n');
}

// the serving worker's RSS before and at its peak, per account (MiB)
export const plot = (res) => {
  const { t } = figures(res);
  return {
    name: 'memory',
    title: 'Account export: serving auth worker, RSS before and peak (MiB)',
    categories: SIZES.map((n) => ({
      label: `${n}: ${f2(t[n].bytes / 1048576)} MiB document`,
      values: { before: mib(t[n].rss_kb), peak: mib(t[n].hwm_kb) },
    })),
    series: [{ key: 'before', label: 'before' }, { key: 'peak', label: 'peak' }],
    unit: 'MiB',
  };
};
