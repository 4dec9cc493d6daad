// Goals and their verdicts: a goal of tests/bench/scenarios.mjs names a metric (computed by
// the part's renderer from the raw result) and a bound; the verdict is decided here only.
//
//   { label, metric, atLeast: N } | { ..., atMost: N } | { ..., equals: N } | { ..., report: true }
//   gate: true   a run whose goal is not met fails (scripts/bench exits 1)

// 'met', 'not met', 'missing' (no finite value: the measurement did not happen or gave
// nothing, which never counts as met) or 'report' (a figure without a bound)
export function verdict(goal, value) {
  if (goal.report) return 'report';
  if (typeof value !== 'number' || !Number.isFinite(value)) return 'missing';
  if (goal.atLeast !== undefined) return value >= goal.atLeast ? 'met' : 'not met';
  if (goal.atMost !== undefined) return value <= goal.atMost ? 'met' : 'not met';
  if (goal.equals !== undefined) return value === goal.equals ? 'met' : 'not met';
  return 'report';
}

// goals with their values and verdicts; a goal may carry `why` (metrics[why] a string
// saying what went wrong, e.g. "cache not hit") that a 'not met' shows beside itself
export function evaluate(goals, metrics) {
  return (goals ?? []).map((g) => {
    const value = metrics[g.metric];
    const v = verdict(g, value);
    const why = g.why && metrics[g.why] ? metrics[g.why] : '';
    return { ...g, value, verdict: why && v === 'met' ? 'not met' : v, why };
  });
}

// the result cell: 'met', '**not met**', '**not met** (why)', '**not met** (no value)', '—'
export function verdictText(g) {
  if (g.verdict === 'met') return 'met';
  if (g.verdict === 'report') return '—';
  if (g.verdict === 'missing') return '**not met** (no value)';
  return g.why ? `**not met** (${g.why})` : '**not met**';
}

// true when a gating goal is not met (the run fails)
export const failed = (goals) => goals.some((g) => g.gate && g.verdict !== 'met' && g.verdict !== 'report');

// the bound as the tables write it: "≥ 0.8", "≤ 10 ms", "0"
export function boundText(g, unit = '') {
  const u = unit ? ` ${unit}` : '';
  const n = (x) => (Math.abs(x) >= 10000 ? x.toLocaleString('en-US') : String(x));
  if (g.atLeast !== undefined) return `≥ ${n(g.atLeast)}${u}`;
  if (g.atMost !== undefined) return `≤ ${n(g.atMost)}${u}`;
  if (g.equals !== undefined) return `${n(g.equals)}`;
  return 'report';
}
