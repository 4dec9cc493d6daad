#!/usr/bin/env node
// Turns benchmark results (JSON files of tests/bench/run.mjs) into their docs/benchmarks.md
// sections, between each part's markers (<!-- bench:PART:begin --> … end), and a latency plot
// per part (an SVG beside the doc, docs/bench/PART-latency.svg).
//
//   node tests/bench/render.mjs --doc docs/benchmarks.md RESULT.json ...
//   node tests/bench/render.mjs --stdout RESULT.json     (print the section, touch nothing)
//   --check: exit 1 when a gating goal of a result is not met (scripts/bench fails the run)
//
// The foundation part's result carries its medians and verdicts (tests/bench/run.mjs);
// every other part's result is raw (tests/bench/collect.mjs) and its renderer,
// tests/bench/render-PART.mjs, computes the figures and decides the goals of
// tests/bench/scenarios.mjs when it renders.
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import * as auth from './render-auth.mjs';
import * as community from './render-community.mjs';
import * as mqtt from './render-mqtt.mjs';
import * as bridge from './render-bridge.mjs';
import * as media from './render-media.mjs';
import * as exportR from './render-export.mjs';
import * as realtime from './render-realtime.mjs';
import { failed, verdictText } from './verdict.mjs';

// part -> its renderer: section(res, plotRef), plot(res) (a barChart spec or null), figures(res).goals
export const renderers = { auth, community, mqtt, bridge, media, export: exportR, 'realtime-100k': realtime };

const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const utc = (iso) => `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

// A grouped bar chart: one group per category, one bar per series; values in `unit`.
export function barChart({ title, categories, series, unit, width = 720 }) {
  const left = 230, right = 130, top = 40, barH = 14, gap = 4, groupGap = 16;
  const groupH = series.length * (barH + gap) + groupGap;
  const height = top + categories.length * groupH + 40;
  const max = Math.max(...categories.flatMap((c) => series.map((s) => c.values[s.key] ?? 0)), 1e-9);
  const scale = (width - left - right) / max;
  const colors = ['#4e79a7', '#59a14f', '#f28e2b', '#e15759', '#76b7b2', '#edc948'];
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
  ];
  categories.forEach((c, i) => {
    const y0 = top + i * groupH;
    out.push(`<text x="${left - 8}" y="${y0 + (series.length * (barH + gap)) / 2 + 4}" text-anchor="end">${esc(c.label)}</text>`);
    series.forEach((s, j) => {
      const v = c.values[s.key];
      const y = y0 + j * (barH + gap);
      const w = Number.isFinite(v) ? Math.max(1, v * scale) : 0;
      out.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${colors[j % colors.length]}"/>`);
      const fig = Number.isFinite(v) ? v.toFixed(Math.abs(v) >= 100 ? 0 : 2) : 'n/a';
      out.push(`<text x="${(left + w + 4).toFixed(1)}" y="${y + barH - 3}">${esc(s.label)} ${fig} ${esc(unit)}</text>`);
    });
  });
  out.push(`<text x="${left}" y="${height - 12}" fill="#555">bars: medians over the rounds, ${esc(unit)}</text>`, '</svg>');
  return `${out.join('\n')}\n`;
}

export function section(res, plotRef) {
  const L = [];
  const b = `<!-- bench:${res.part}:begin -->`, e = `<!-- bench:${res.part}:end -->`;
  L.push(b, `### ${res.title}`, '');
  L.push(`Run ${utc(res.started_at)} with \`scripts/bench\` (\`make bench\`; \`BENCH_PARTS=${res.part}\` for this part alone); the result as data: \`${res.file}\`.`, '');
  L.push('| target | req/s (median) | p50 ms | p99 ms | errors (all rounds) |', '|---|---:|---:|---:|---:|');
  for (const n of res.order) {
    const t = res.targets[n];
    L.push(`| ${t.label} | ${f0(t.rps)} | ${f2(t.p50)} | ${f2(t.p99)} | ${t.errors} |`);
  }
  if (Object.keys(res.ratios).length) {
    L.push('', '| ratio | value |', '|---|---:|');
    for (const r of Object.values(res.ratios)) L.push(`| ${r.label} | ${f2(r.value)} |`);
  }
  const figs = Object.values(res.figures ?? {});
  if (figs.length) {
    L.push('', '| measured | value |', '|---|---:|');
    for (const f of figs) L.push(`| ${f.label} | ${Number.isFinite(f.value) ? +f.value.toFixed(2) : 'n/a'}${f.unit ? ` ${f.unit}` : ''} |`);
  }
  if (res.goals.length) {
    L.push('', '| goal | value | result |', '|---|---:|---|');
    for (const g of res.goals) {
      const bound = g.atLeast !== undefined ? `≥ ${g.atLeast}` : g.atMost !== undefined ? `≤ ${g.atMost}` : '';
      L.push(`| ${g.label} ${bound} | ${Number.isFinite(g.value) ? +g.value.toFixed(2) : 'n/a'} | ${g.verdict === 'not met' || g.verdict === 'missing' ? verdictText(g) : g.verdict} |`);
    }
  }
  if (plotRef) L.push('', `![latency percentiles of each target](${plotRef})`);
  const k = res.knobs;
  const m = res.machine;
  L.push('');
  L.push(`- Command per run: \`${res.command}\`, ${k.rounds} rounds alternating ${res.order.join(' → ')}, after ${k.warmup} s warm-up per target; each figure is the median over the rounds (p50/p99 medians taken separately).`);
  L.push(`- Machine: ${m.cpus} CPUs, ${m.model}, kernel ${m.kernel}; wrk runs on the same machine; load average (1 min) at the start ${m.loadavg[0].toFixed(2)}.`);
  const st = Object.entries(res.settings);
  if (st.length) L.push(`- Settings: ${st.map(([key, v]) => `${key} ${v}`).join(', ')}.`);
  L.push(e);
  return L.join('\n');
}

export function splice(doc, part, text) {
  const b = `<!-- bench:${part}:begin -->`, e = `<!-- bench:${part}:end -->`;
  const i = doc.indexOf(b), j = doc.indexOf(e);
  if (i < 0 || j < i) return `${doc.replace(/\n*$/, '\n')}\n${text}\n`;
  return doc.slice(0, i) + text + doc.slice(j + e.length);
}

function main() {
  const argv = process.argv.slice(2);
  let doc = null, stdout = false, check = false, bad = false;
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--doc') doc = argv[++i];
    else if (argv[i] === '--stdout') stdout = true;
    else if (argv[i] === '--check') check = true;
    else files.push(argv[i]);
  }
  if (!files.length || (!doc && !stdout)) throw new Error('usage: render.mjs (--doc FILE | --stdout) RESULT.json ...');
  let text = doc && existsSync(doc) ? readFileSync(doc, 'utf8') : '';
  for (const f of files) {
    const res = JSON.parse(readFileSync(f, 'utf8'));
    res.file = path.relative(process.cwd(), f);
    const r = renderers[res.part];
    const goals = r ? r.figures(res).goals : res.goals;
    if (failed(goals.map((g) => (r ? g : { ...g, gate: true })))) bad = true;
    let plotRef = null;
    const spec = r ? r.plot(res) : null;
    if (doc && r && spec) {
      const dir = path.join(path.dirname(doc), 'bench');
      mkdirSync(dir, { recursive: true });
      const svg = path.join(dir, `${res.part}-${spec.name ?? 'latency'}.svg`);
      writeFileSync(svg, barChart({ ...spec, title: `${spec.title} (${utc(res.started_at)})` }));
      plotRef = path.relative(path.dirname(doc), svg);
    } else if (doc && !r) {
      const dir = path.join(path.dirname(doc), 'bench');
      mkdirSync(dir, { recursive: true });
      const svg = path.join(dir, `${res.part}-latency.svg`);
      writeFileSync(svg, barChart({
        title: `${res.title}: latency percentiles (${utc(res.started_at)})`,
        categories: res.order.map((n) => ({ label: res.targets[n].label, values: res.targets[n] })),
        series: [{ key: 'p50', label: 'p50' }, { key: 'p75', label: 'p75' }, { key: 'p90', label: 'p90' }, { key: 'p99', label: 'p99' }],
        unit: 'ms',
      }));
      plotRef = path.relative(path.dirname(doc), svg);
    }
    const s = r ? r.section(res, plotRef) : section(res, plotRef);
    if (stdout) process.stdout.write(`${s}\n`);
    if (doc) text = splice(text, res.part, s);
  }
  if (doc) writeFileSync(doc, text);
  if (check && bad) process.exitCode = 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try { main(); } catch (e) { process.stderr.write(`render.mjs: ${e.message}\n`); process.exit(2); }
}
