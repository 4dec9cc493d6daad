#!/usr/bin/env node
// Turns what scripts/bench collected for one part (a directory of raw outputs) into the
// part's JSON result: numbers only, every round kept; medians, ratios and verdicts are the
// renderer's (tests/bench/render.mjs), from this file alone.
//
//   node tests/bench/collect.mjs PART --raw DIR --out DIR     (prints the result's path)
//
// The raw directory, as scripts/bench writes it:
//   facts.tsv          KEY<TAB>VALUE lines: knobs (knob.NAME), settings (setting.NAME),
//                      counters read before/after a run, commands, machine facts; a key
//                      given twice keeps the last value; numbers become numbers
//   wrk-T.R.txt        `wrk --latency` output of target T, round R (R from 1)
//   tool-N.R.txt       a load tool's stdout, run R of N: "key value" lines
//                      (th-token_bench) or "tag k=v k=v ..." lines (th-mqtt_load,
//                      th-bridge_load, extra k=v appended by the script)
//   text-N.txt         text kept as it is (an EXPLAIN plan)
//   lat-N.us           one latency a line in µs (pgbench's per-transaction log): kept as
//                      its count and nearest-rank percentiles in ms, not every value
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseWrk } from './wrk.mjs';
import { scenarios } from './scenarios.mjs';

const num = (s) => (/^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/.test(s) ? Number(s) : s);

// "tag k=v k=v" -> {tag, k: v, ...}; "key value" -> {tag: key, value}
export function parseLines(text) {
  const out = [];
  for (const line of text.split('\n')) {
    const w = line.trim().split(/\s+/).filter(Boolean);
    if (!w.length) continue;
    // a line of k=v only (th-thumb_bench) has the empty tag
    const tagged = !w[0].includes('=');
    const rec = { tag: tagged ? w[0] : '' };
    const kv = w.slice(tagged ? 1 : 0).filter((x) => x.includes('='));
    if (kv.length) {
      for (const x of kv) {
        const i = x.indexOf('=');
        rec[x.slice(0, i)] = num(x.slice(i + 1));
      }
    } else if (w.length === 2 && tagged) rec.value = num(w[1]);
    else rec.words = w.slice(1).join(' ');
    out.push(rec);
  }
  return out;
}

// nearest-rank percentiles (ms) of latencies in µs, one a line
export function latencies(text) {
  const v = text.split('\n').filter((l) => l.trim() !== '').map(Number).filter(Number.isFinite).sort((a, b) => a - b);
  const q = (p) => {
    if (!v.length) return NaN;
    const i = Math.min(v.length, Math.max(1, Math.ceil(v.length * p)));
    return v[i - 1] / 1000;
  };
  return { n: v.length, p50: q(0.5), p75: q(0.75), p90: q(0.9), p99: q(0.99), max: q(1) };
}

export function parseFacts(text) {
  const f = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf('\t');
    if (i <= 0) continue;
    f[line.slice(0, i)] = num(line.slice(i + 1));
  }
  return f;
}

// the raw directory -> the result object (without file name)
export function collect(part, dir) {
  const names = readdirSync(dir).sort();
  const facts = names.includes('facts.tsv') ? parseFacts(readFileSync(path.join(dir, 'facts.tsv'), 'utf8')) : {};
  const byRound = (re, parse) => {
    const o = {};
    for (const n of names) {
      const m = re.exec(n);
      if (!m) continue;
      (o[m[1]] ??= [])[Number(m[2]) - 1] = parse(readFileSync(path.join(dir, n), 'utf8'));
    }
    for (const k of Object.keys(o)) o[k] = o[k].filter((x) => x !== undefined);
    return o;
  };
  const wrk = byRound(/^wrk-(.+)\.(\d+)\.txt$/, parseWrk);
  const tools = byRound(/^tool-(.+)\.(\d+)\.txt$/, parseLines);
  const text = {};
  for (const n of names) {
    const m = /^text-(.+)\.txt$/.exec(n);
    if (m) text[m[1]] = readFileSync(path.join(dir, n), 'utf8').replace(/\n+$/, '');
  }
  const lat = {};
  for (const n of names) {
    const m = /^lat-(.+)\.us$/.exec(n);
    if (m) lat[m[1]] = latencies(readFileSync(path.join(dir, n), 'utf8'));
  }
  const knobs = {}, settings = {}, rest = {};
  for (const [k, v] of Object.entries(facts)) {
    if (k.startsWith('knob.')) knobs[k.slice(5)] = v;
    else if (k.startsWith('setting.')) settings[k.slice(8)] = v;
    else rest[k] = v;
  }
  const cpu = os.cpus();
  return {
    part,
    title: scenarios[part]?.title ?? part,
    started_at: rest.started_at ?? new Date().toISOString(),
    finished_at: rest.finished_at ?? new Date().toISOString(),
    machine: {
      cpus: cpu.length, model: cpu[0]?.model ?? 'unknown', kernel: os.release(),
      loadavg_start: rest.loadavg_start ?? null, loadavg_end: os.loadavg()[0],
    },
    knobs,
    settings,
    facts: rest,
    wrk,
    tools,
    latencies: lat,
    text,
  };
}

function main() {
  const argv = process.argv.slice(2);
  let part, raw, out;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--raw') raw = argv[++i];
    else if (argv[i] === '--out') out = argv[++i];
    else part = argv[i];
  }
  if (!part || !raw || !out) throw new Error('usage: collect.mjs PART --raw DIR --out DIR');
  if (!scenarios[part]) throw new Error(`no scenario ${part}`);
  const res = collect(part, raw);
  mkdirSync(out, { recursive: true });
  const file = path.join(out, `${part}-${res.started_at.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(res, null, 2)}\n`);
  process.stdout.write(`${file}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try { main(); } catch (e) { process.stderr.write(`collect.mjs: ${e.message}\n`); process.exit(2); }
}
