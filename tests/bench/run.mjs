#!/usr/bin/env node
// Runs one benchmark scenario of tests/bench/scenarios.mjs against a running stack and writes
// its result as JSON (one file per run). scripts/bench starts the stack and calls this.
//
//   node tests/bench/run.mjs PART --base URL --out DIR [--setting key=value ...]
//        [--header 'Name: value'] [--figure name=value ...]
//
// --header goes with every request to a target that says `auth: true` (a bearer token the
// launcher made); --figure adds a figure the launcher measured itself (the scenario's
// `figures` name and label them) to the result, its goals and its section.
//
// Knobs (environment, as scripts/bench documents them): BENCH_ROUNDS (3), BENCH_DURATION
// (10 s), BENCH_THREADS (2), BENCH_CONNECTIONS (64), BENCH_WARMUP (3 s).
// Prints the result file's path; exits 1 when a goal is not met or wrk fails.
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { scenarios } from './scenarios.mjs';
import { parseWrk, median } from './wrk.mjs';
import { verdict } from './verdict.mjs';

const run = promisify(execFile);
const log = (s) => process.stderr.write(`[bench] ${s}\n`);

function args(argv) {
  const a = { settings: {}, figures: {}, header: null };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--base') a.base = argv[++i];
    else if (k === '--out') a.out = argv[++i];
    else if (k === '--header') a.header = argv[++i];
    else if (k === '--figure') {
      const [key, v] = argv[++i].split('=');
      a.figures[key] = Number(v);
    } else if (k === '--setting') {
      const [key, ...v] = argv[++i].split('=');
      a.settings[key] = v.join('=');
    } else a.part = k;
  }
  if (!a.part || !a.base || !a.out) throw new Error('usage: run.mjs PART --base URL --out DIR');
  return a;
}

const knob = (name, def, min, max) => {
  const v = process.env[name] === undefined || process.env[name] === '' ? def : Number(process.env[name]);
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`${name} must be an integer in ${min}..${max}`);
  return v;
};

async function wrk(s, url, seconds, latency, header) {
  const argv = [`-t${s.threads}`, `-c${s.connections}`, `-d${seconds}s`];
  if (latency) argv.push('--latency');
  if (header) argv.push('-H', header);
  argv.push(url);
  // bounded: wrk stops itself after -d; the timeout only catches a stuck one
  const { stdout } = await run('wrk', argv, { timeout: (seconds + 30) * 1000, maxBuffer: 1 << 20 });
  return stdout;
}

async function main() {
  const a = args(process.argv.slice(2));
  const sc = scenarios[a.part];
  if (!sc) throw new Error(`no scenario ${a.part} (have: ${Object.keys(scenarios).join(', ')})`);
  const s = {
    rounds: sc.rounds ?? knob('BENCH_ROUNDS', 3, 1, 50),
    duration: sc.duration ?? knob('BENCH_DURATION', 10, 1, 600),
    threads: sc.threads ?? knob('BENCH_THREADS', 2, 1, 64),
    connections: sc.connections ?? knob('BENCH_CONNECTIONS', 64, 1, 10000),
    warmup: sc.warmup ?? knob('BENCH_WARMUP', 3, 0, 600),
  };
  // pathFigure: the path ends with a figure the launcher measured (a size: /bench/fcgi?bytes=N)
  const url = (t) => {
    if (t.pathFigure && !Number.isFinite(a.figures[t.pathFigure])) throw new Error(`target ${t.name} needs --figure ${t.pathFigure}=N`);
    return a.base.replace(/\/$/, '') + t.path + (t.pathFigure ? String(a.figures[t.pathFigure]) : '');
  };
  const hdr = (t) => (t.auth ? a.header : null);
  for (const t of sc.targets) {
    if (t.auth && !a.header) throw new Error(`target ${t.name} needs --header`);
    const h = hdr(t) ? { [hdr(t).split(':')[0]]: hdr(t).slice(hdr(t).indexOf(':') + 1).trim() } : {};
    const r = await fetch(url(t), { headers: h });
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`${url(t)} answers ${r.status}, not 200`);
  }
  const started = new Date();
  log(`${a.part}: warm-up ${s.warmup} s per target`);
  if (s.warmup > 0) for (const t of sc.targets) await wrk(s, url(t), s.warmup, false, hdr(t));
  const rounds = Object.fromEntries(sc.targets.map((t) => [t.name, []]));
  for (let r = 1; r <= s.rounds; r++) {
    for (const t of sc.targets) {
      log(`${a.part}: round ${r}/${s.rounds}: ${t.name}`);
      const o = parseWrk(await wrk(s, url(t), s.duration, true, hdr(t)));
      if (!Number.isFinite(o.rps)) throw new Error(`wrk gave no Requests/sec for ${url(t)}`);
      rounds[t.name].push(o);
    }
  }
  const targets = {};
  for (const t of sc.targets) {
    const rs = rounds[t.name];
    targets[t.name] = {
      label: t.label,
      path: t.path + (t.pathFigure ? String(a.figures[t.pathFigure]) : ''),
      rounds: rs,
      rps: median(rs.map((x) => x.rps)),
      p50: median(rs.map((x) => x.latency.p50)),
      p75: median(rs.map((x) => x.latency.p75)),
      p90: median(rs.map((x) => x.latency.p90)),
      p99: median(rs.map((x) => x.latency.p99)),
      errors: rs.reduce((n, x) => n + x.errors, 0),
    };
  }
  const ratios = {};
  for (const q of sc.ratios ?? []) {
    const den = targets[q.den].rps;
    ratios[q.name] = { label: q.label, value: den > 0 ? targets[q.num].rps / den : NaN };
  }
  const metrics = { errors_total: Object.values(targets).reduce((n, t) => n + t.errors, 0) };
  for (const [k, v] of Object.entries(ratios)) metrics[k] = v.value;
  for (const [k, t] of Object.entries(targets)) metrics[`${k}_p99`] = t.p99;
  const figures = {};
  for (const f of sc.figures ?? []) {
    figures[f.name] = { label: f.label, unit: f.unit ?? '', value: a.figures[f.name] ?? NaN };
    metrics[f.name] = figures[f.name].value;
  }
  const goals = (sc.goals ?? []).map((g) => ({ ...g, value: metrics[g.metric], verdict: verdict(g, metrics[g.metric]) }));
  const cpu = os.cpus();
  const result = {
    part: a.part,
    title: sc.title,
    started_at: started.toISOString(),
    finished_at: new Date().toISOString(),
    command: `wrk -t${s.threads} -c${s.connections} -d${s.duration}s --latency URL`,
    knobs: s,
    order: sc.targets.map((t) => t.name),
    machine: { cpus: cpu.length, model: cpu[0]?.model ?? 'unknown', kernel: os.release(), loadavg: os.loadavg() },
    settings: a.settings,
    targets,
    ratios,
    figures,
    goals,
  };
  mkdirSync(a.out, { recursive: true });
  const file = path.join(a.out, `${a.part}-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${file}\n`);
  if (goals.some((g) => g.verdict === 'not met' || g.verdict === 'missing')) {
    log(`${a.part}: a goal is not met (see ${file})`);
    process.exitCode = 1;
  }
}

main().catch((e) => {
  log(`run.mjs: ${e.message}`);
  process.exit(2);
});
