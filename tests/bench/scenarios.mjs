// Benchmark scenarios as data: what each part runs, against which reference, for how long,
// and the goals its verdicts check. tests/bench/run.mjs runs a scenario and writes one JSON
// result; tests/bench/render.mjs turns results into docs/benchmarks.md sections and plots.
// Durations, rounds and connections come from the BENCH_* knobs of scripts/bench (defaults
// in run.mjs); a scenario may pin its own.

export const scenarios = {
  foundation: {
    title: 'Foundation: transport ceiling, floor and a real route',
    kind: 'wrk',
    // rounds alternate the targets in this order, so a burst of noise hits all of them
    targets: [
      { name: 'static', label: '/bench/static (nginx constant)', path: '/bench/static' },
      { name: 'fcgi', label: '/bench/fcgi (bare libfcgi)', path: '/bench/fcgi' },
      { name: 'route', label: '/api/auth/health (PG + Redis)', path: '/api/auth/health' },
    ],
    ratios: [
      { name: 'fcgi_static', label: 'fcgi / static (what the FastCGI hop costs)', num: 'fcgi', den: 'static' },
      { name: 'route_fcgi', label: 'route / fcgi (what our library + PG + Redis cost)', num: 'route', den: 'fcgi' },
    ],
    // a run with any error (non-2xx, socket errors) fails the part
    goals: [
      { label: 'errors in every round of every target', metric: 'errors_total', atMost: 0 },
    ],
  },
};
