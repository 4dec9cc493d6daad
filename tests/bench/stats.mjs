// Figures from a raw result (tests/bench/collect.mjs): medians over the rounds of a wrk
// target or of a load tool's lines, ratios, and the number formats of the tables.
import { median } from './wrk.mjs';

export { median };

// one wrk target's rounds -> {rps, p50, p75, p90, p99, errors, requests, rounds}
export function wrkSummary(rounds = []) {
  const m = (f) => median(rounds.map(f));
  return {
    rounds: rounds.length,
    rps: m((x) => x.rps),
    p50: m((x) => x.latency?.p50),
    p75: m((x) => x.latency?.p75),
    p90: m((x) => x.latency?.p90),
    p99: m((x) => x.latency?.p99),
    errors: rounds.reduce((n, x) => n + (x.errors ?? 0), 0),
    requests: rounds.reduce((n, x) => n + (x.requests ?? 0), 0),
  };
}

// the records tagged `tag` over every run of a tool (runs: arrays of parsed lines)
export const records = (runs = [], tag) => runs.flatMap((r) => r.filter((x) => x.tag === tag));
// one key of those records, as numbers
export const values = (runs, tag, key = 'value') => records(runs, tag).map((x) => Number(x[key]));
export const medianOf = (runs, tag, key = 'value') => median(values(runs, tag, key));

export const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN);
export const delta = (facts, name) => {
  const a = facts[`${name}.before`], b = facts[`${name}.after`];
  return Number.isFinite(a) && Number.isFinite(b) ? b - a : NaN;
};

export const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
export const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
export const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
export const f3 = (x) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
// a value as the load tools print it (no reformatting), 'n/a' when absent
export const raw = (x) => (x === undefined || x === null || (typeof x === 'number' && !Number.isFinite(x)) ? 'n/a' : String(x));
export const utc = (iso) => `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
