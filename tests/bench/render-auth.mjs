// The auth part's section: token verification in process, /api/auth/me against the bare
// responder, logins against bare argon2id verifies (scripts/bench collects, this decides).
import { scenarios } from './scenarios.mjs';
import { evaluate, verdictText, boundText } from './verdict.mjs';
import { wrkSummary, medianOf, ratio, delta, f0, f1, f2 } from './stats.mjs';
import { head, end, wrkTable, machine, targetsLine } from './section.mjs';

export function figures(res) {
  const sc = scenarios.auth;
  const w = Object.fromEntries(['fcgi', 'me', 'login'].map((n) => [n, wrkSummary(res.wrk[n])]));
  const m = {
    verify_cached: medianOf(res.tools.verify, 'cached_per_s'),
    verify_uncached: medianOf(res.tools.verify, 'uncached_per_s'),
    argon2: medianOf(res.tools.argon2, 'argon2_verify_per_s'),
  };
  m.me_fcgi = ratio(w.me.rps, w.fcgi.rps);
  m.me_p99 = w.me.p99;
  m.login_argon2 = ratio(w.login.rps, m.argon2);
  m.login_errors = w.login.errors;
  m.login_failed = w.login.errors > 0 ? 'failed logins' : '';
  m.errors_total = w.fcgi.errors + w.me.errors + w.login.errors;
  // every target and tool measured: a run that measured nothing has no errors either
  m.measured = ['fcgi', 'me', 'login'].every((n) => w[n].rounds > 0) && res.tools.verify?.length && res.tools.argon2?.length ? 1 : 0;
  const goals = evaluate(sc.goals, m);
  return { w, m, goals };
}

export function section(res, plotRef) {
  const { w, m, goals } = figures(res);
  const g = Object.fromEntries(goals.map((x) => [x.metric, x]));
  const k = res.knobs, s = res.settings, f = res.facts;
  const row = (label, value, goal) => `| ${label} | ${value} | ${goal ? boundText(goal, goal.unit) : ''} | ${goal ? verdictText(goal) : ''} |`;
  const L = head(res, res.title, ', on the same stack, after the foundation part');
  L.push('| measure | value (median) | target | result |', '|---|---:|---:|---|');
  L.push(row('token_verify, cached (in-process, 1 thread)', `${f0(m.verify_cached)} /s`, g.verify_cached));
  L.push(`| token_verify_uncached (ES256 verify + checks) | ${f0(m.verify_uncached)} /s | report | — |`);
  L.push(row('GET /api/auth/me', `${f0(w.me.rps)} req/s`));
  L.push(row('/bench/fcgi, same rounds', `${f0(w.fcgi.rps)} req/s`));
  L.push(row('me / fcgi', f2(m.me_fcgi), g.me_fcgi));
  L.push(row(`me p99 at ${k.connections} connections`, `${f2(m.me_p99)} ms`, g.me_p99));
  L.push(row('POST /api/auth/login, successful', `${f1(w.login.rps)} /s`));
  L.push(row(`argon2id verify, ${k.argon2_procs} processes, same rounds`, `${f1(m.argon2)} /s`));
  L.push(row('logins / argon2id verifies', f2(m.login_argon2), g.login_argon2));
  L.push('', ...wrkTable([
    [`/bench/fcgi (bare libfcgi), ${k.connections} connections`, w.fcgi],
    [`/api/auth/me (token + per-worker cache), ${k.connections} connections`, w.me],
    [`/api/auth/login (argon2id + PG + Redis), ${k.login_connections} connections`, w.login, 1],
  ]));
  if (plotRef) L.push('', `![latency percentiles of /bench/fcgi and /api/auth/me](${plotRef})`);
  L.push('');
  L.push(`- Token verification: \`th-token_bench verify ${k.verify_seconds}\` (tests/load/token_bench.c) with the TH_* environment of a live auth worker: one token issued, then token_verify() (cached) for ${k.verify_seconds} s and token_verify_uncached() for ${k.verify_seconds} s on one thread while the stack is idle; every call must return TH_OK. Both include the expiry and revocation checks (local revoked set, synced from Redis at most once a second). ${res.tools.verify?.length ?? 0} runs, median.`);
  L.push(`- /api/auth/me: \`wrk -t${k.threads} -c${k.connections} -d${k.duration}s --latency -H 'Authorization: Bearer $TOKEN' URL\` with the access token of a registered user, ${k.rounds} rounds alternating fcgi → me after ${k.warmup} s warm-up each (the Authorization header goes to /bench/fcgi too); medians over the rounds, p99 is wrk's. One user, so this is the cached path: each worker keeps the /me body for TH_ME_CACHE_TTL_MS=${s.TH_ME_CACHE_TTL_MS} ms (TH_ME_CACHE_SLOTS=${s.TH_ME_CACHE_SLOTS}), and \`/metrics/auth\` counted ${delta(f, 'me_cache_hits')} hits and ${delta(f, 'me_cache_misses')} misses over the warm-up and runs; a miss adds one PostgreSQL round trip.`);
  L.push(`- Logins: \`wrk -t${k.threads} -c${k.login_connections} -d${k.duration}s --timeout 10s --latency -s login.lua URL\` (body \`{"login", "password"}\` of that user, each request naming another client address in \`X-Real-IP\`, believed from loopback (TH_HTTP_TRUSTED_PROXIES=${s.TH_HTTP_TRUSTED_PROXIES}), so that nginx's per-address flood guard on the credential routes, 20/s, does not answer them 429; any non-200 response counts as an error), each round followed at once by \`th-token_bench argon2 ${k.duration} ${k.argon2_procs}\`: argon2id verifies of one hash with the pool's cost settings in ${k.argon2_procs} processes, one per core, because logins are CPU-bound and the 4 auth workers share those cores. The workers run at most TH_ARGON2_CONCURRENCY=${s.TH_ARGON2_CONCURRENCY} hashes at once (lib/slots.c); ${delta(f, 'argon2_slot_waits')} logins waited for a hash slot, ${delta(f, 'argon2_slot_busy')} gave up (503). ${k.rounds} rounds, ratio of the medians.`);
  L.push(`- Machine: ${machine(res)}; wrk runs on the same machine.`);
  L.push(`- Settings: workers per pool 4, nginx worker_processes ${s.nginx_workers}, TH_JWT_ALG=${s.TH_JWT_ALG}, TH_ARGON2_OPSLIMIT=${s.TH_ARGON2_OPSLIMIT}, TH_ARGON2_MEMLIMIT=${s.TH_ARGON2_MEMLIMIT}, TH_ACCESS_TTL=${s.TH_ACCESS_TTL} (one token must outlive the run), TH_LOG_LEVEL=${s.TH_LOG_LEVEL} (the stack default: every request also writes an access line, one write(2), included in the figures), binaries ${s.binaries}.`);
  L.push(`- Targets: ${targetsLine(goals)}.`);
  L.push(end(res.part));
  return L.join('\n');
}

// the latency plot: fcgi and me (logins take tens of ms and would flatten them)
export const plot = (res) => {
  const { w } = figures(res);
  return {
    title: `${res.title}: latency percentiles`,
    categories: [
      { label: '/bench/fcgi', values: w.fcgi },
      { label: '/api/auth/me', values: w.me },
    ],
    series: [{ key: 'p50', label: 'p50' }, { key: 'p75', label: 'p75' }, { key: 'p90', label: 'p90' }, { key: 'p99', label: 'p99' }],
    unit: 'ms',
  };
};
