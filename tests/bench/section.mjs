// Pieces every part's section shares: its markers and heading, the line saying how the run
// was made and where its data is, the wrk target table, the machine line.
import { f0, f1, f2, utc } from './stats.mjs';

export const begin = (part) => `<!-- bench:${part}:begin -->`;
export const end = (part) => `<!-- bench:${part}:end -->`;

// marker, heading, "Run <time> with scripts/bench ...; the result as data: <file>."
export function head(res, title = res.title, extra = '') {
  return [
    begin(res.part),
    `### ${title}`,
    '',
    `Run ${utc(res.started_at)} with \`scripts/bench\` (\`make bench\`; \`BENCH_PARTS=${res.part}\` for this part alone)${extra}; the result as data: \`${res.file}\`.`,
    '',
  ];
}

// | target | req/s (median) | p50 ms | p99 ms | errors (all rounds) | over [label, summary, rpsDigits]
export function wrkTable(rows) {
  const L = ['| target | req/s (median) | p50 ms | p99 ms | errors (all rounds) |', '|---|---:|---:|---:|---:|'];
  for (const [label, s, digits = 0] of rows) {
    L.push(`| ${label} | ${digits === 1 ? f1(s.rps) : f0(s.rps)} | ${f2(s.p50)} | ${f2(s.p99)} | ${s.errors} |`);
  }
  return L;
}

export const machine = (res) => `${res.machine.cpus} CPUs, ${res.machine.model}, kernel ${res.machine.kernel}`;

// "feed/fcgi ≥ 0.7 met; ..." for the Targets line
export const targetsLine = (goals) => goals.filter((g) => g.verdict !== 'report')
  .map((g) => `${g.short ?? g.label} ${g.verdict === 'met' ? 'met' : g.verdict === 'missing' ? '**not met** (no value)' : `**not met**${g.why ? ` (${g.why})` : ''}`}`).join('; ');
