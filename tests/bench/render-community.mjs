// The community part's section: the cached feed against the bare responder, the uncached
// feed query under pgbench on the seeded posts (and through nginx), post creation.
import { scenarios } from './scenarios.mjs';
import { evaluate, verdictText, boundText } from './verdict.mjs';
import { wrkSummary, ratio, delta, f0, f1, f2, raw } from './stats.mjs';
import { head, end, wrkTable, machine, targetsLine } from './section.mjs';

const TARGETS = ['fcgi_feed', 'feed', 'uncached', 'fcgi_create', 'create'];

// what the EXPLAIN of one feed query says: the feed index used, Sort nodes above the
// first SubPlan (per-post subqueries may sort their own rows; a Sort above them would
// sort the feed)
export function explainFacts(text = '') {
  const index = text.includes('Index Scan using posts_feed_idx on posts p');
  let sorts = 0;
  for (const line of text.split('\n')) {
    if (line.includes('SubPlan')) break;
    if (line.includes('Sort')) sorts++;
  }
  return { index, sorts };
}

export function figures(res) {
  const w = Object.fromEntries(TARGETS.map((n) => [n, wrkSummary(res.wrk[n])]));
  const f = res.facts;
  const pg = res.latencies?.pgbench ?? { n: 0, p50: NaN, p99: NaN, max: NaN };
  const hits = delta(f, 'feed_hits');
  const ex = explainFacts(res.text?.explain);
  const m = {
    feed_fcgi: ratio(w.feed.rps, w.fcgi_feed.rps),
    feed_p99: w.feed.p99,
    create_fcgi: ratio(w.create.rps, w.fcgi_create.rps),
    pg_p99: pg.p99,
    create_errors: w.create.errors,
    errors_total: TARGETS.reduce((n, t) => n + w[t].errors, 0),
    // every measured feed request a hit (warm-up requests count too; a miss per
    // TH_FEED_CACHE_TTL is the entry expiring)
    cache_hit: w.feed.requests > 0 && hits >= w.feed.requests ? 1 : 0,
    feed_index: ex.index ? 1 : 0,
  };
  m.cache_miss = m.cache_hit ? '' : 'cache not hit';
  m.pg_failed = Number(f['pgbench.failed'] || 0) > 0 ? 'failed transactions' : '';
  m.create_failed = m.create_errors > 0 ? `${m.create_errors} errors` : '';
  const goals = evaluate(scenarios.community.goals, m);
  return { w, m, pg, hits, ex, goals };
}

export function section(res, plotRef) {
  const { w, m, pg, hits, ex, goals } = figures(res);
  const g = Object.fromEntries(goals.map((x) => [x.metric, x]));
  const k = res.knobs, s = res.settings, f = res.facts;
  const row = (label, value, goal) => `| ${label} | ${value} | ${goal ? boundText(goal, goal.unit) : ''} | ${goal ? verdictText(goal) : ''} |`;
  const seedS = Number(f['seed.end']) - Number(f['seed.start']);
  const unc = delta(f, 'unc_hits') + delta(f, 'unc_misses');
  const L = head(res, `Community: cached feed, uncached feed query on ${f.seeded_posts} posts, post creation`, ', on the same stack, after the parts before it');
  L.push('| measure | value (median) | target | result |', '|---|---:|---:|---|');
  L.push(row('GET /api/communities/:id/posts, cached (20 posts, authenticated)', `${f0(w.feed.rps)} req/s`));
  L.push(row('/bench/fcgi, same rounds', `${f0(w.fcgi_feed.rps)} req/s`));
  L.push(row('feed / fcgi', f2(m.feed_fcgi), g.feed_fcgi));
  L.push(row(`cached feed p99 at ${k.connections} connections`, `${f2(m.feed_p99)} ms`, g.feed_p99));
  L.push(row(`feed query, uncached, ${f.seeded_posts} posts in ${k.seed_communities} communities: p99 (pgbench, ${k.pgbench_clients} clients)`, `${f2(pg.p99)} ms`, g.pg_p99));
  L.push(`| feed query, uncached: p50 · mean · max · throughput | ${f2(pg.p50)} ms · ${raw(f['pgbench.latency_avg_ms'])} ms · ${f2(pg.max)} ms · ${f0(Number(f['pgbench.tps']))} /s | report | — |`);
  L.push(`| POST /api/communities/:id/posts | ${f0(w.create.rps)} posts/s | report | — |`);
  L.push(row('/bench/fcgi, same rounds', `${f0(w.fcgi_create.rps)} req/s`));
  L.push(`| posts / fcgi | ${f2(m.create_fcgi)} | report | — |`);
  L.push(row('post creation errors (non-2xx, all rounds)', String(m.create_errors), g.create_errors));
  L.push('', ...wrkTable([
    ['/bench/fcgi (bare libfcgi), rounds with the feed', w.fcgi_feed],
    ['GET /api/communities/:id/posts, cached', w.feed],
    ['GET /api/communities/:id/posts?cursor=, uncached (random community and cursor)', w.uncached],
    ['/bench/fcgi (bare libfcgi), rounds with post creation', w.fcgi_create],
    ['POST /api/communities/:id/posts', w.create],
  ]));
  if (plotRef) L.push('', `![latency percentiles: the cached feed, the bare responder, the uncached feed query](${plotRef})`);
  L.push('');
  L.push(`- Cached feed: \`wrk -t${k.threads} -c${k.connections} -d${k.duration}s --latency -H 'Authorization: Bearer $TOKEN' URL\`, URL \`/api/communities/:id/posts\` (default limit 20) of a public community holding 20 posts written through the API, read with the access token of a member who reacted to 3 of the 20 posts (each hit is one Redis MGET — over the stack's unix socket, TH_REDIS_SOCKET — : the community's feed and access versions, the member's cached read verdict and reactions; the page itself is the worker's own copy of the entry, which the MGET confirms is current; the member's reactions are spliced into it; no PostgreSQL: ${delta(f, 'xacts')} transactions committed or rolled back in the stack's database from 11 s after the fixtures were made to the end of these runs (\`pg_stat_database\`; the bridge's once-a-second outbox poll and these two queries included)), ${k.rounds} rounds alternating fcgi → feed after ${k.warmup} s warm-up each, the same header on /bench/fcgi, before the seeding below (its autovacuum and checkpoints are not the steady state); medians over the rounds, p99 is wrk's. Cache check (\`th_feed_cache_hits_total\` / \`th_feed_cache_misses_total\` of \`/metrics/community\`): ${hits} hits, ${delta(f, 'feed_misses')} misses over the cached-feed runs (${w.feed.requests} measured requests + warm-up).`);
  L.push(`- Seeding: \`tests/load/seed-feed\` (${k.seed_communities} users, ${k.seed_communities} public communities, ${f.seeded_posts} posts round-robin over them so a community's posts are interleaved with all the others', three reactions on every 20th post (the counting trigger off for the bulk insert, the counts on the posts set in one pass), INSERT … SELECT generate_series in one transaction with the GIN and feed indexes rebuilt after the load, then VACUUM ANALYZE): ${f1(seedS)} s, then a CHECKPOINT.`);
  L.push(`- Uncached feed query: \`pgbench -n -M simple -D prepared=0 -f feed.pgbench -T ${k.pgbench_seconds} -c ${k.pgbench_clients} -j ${k.pgbench_jobs} --log\` on the stack's database, after a ${k.warmup} s warm-up; the statement is the feed SELECT taken from the th-community binary (\`strings\`), prepared once per connection like the app's db layer does, run with a random seeded community and a random cursor (always a full page: \`LIMIT 21\`, as the route fetches limit + 1). p50/p99/max are nearest-rank over the ${pg.n} per-transaction latencies of the \`--log\` files (client-side, including the round trip); the mean is pgbench's. ${k.pgbench_clients} clients share the 2 cores with PostgreSQL.`);
  L.push(`- The same through nginx: \`wrk -t${k.threads} -c${k.connections} -d${k.duration}s --latency -s uncached.lua URL\`: \`GET /api/communities/:id/posts?cursor=…\` with a random seeded community and cursor (pages after the first are never cached: ${unc} cache lookups during these runs), member token; ${k.rounds} rounds after ${k.warmup} s warm-up, for reference (the target is on the query).`);
  L.push(`- Post creation: \`wrk -t${k.threads} -c${k.connections} -d${k.duration}s --latency -s create.lua URL\`: \`POST /api/communities/:id/posts\` with \`{"body": "Benchmark post N: …"}\` and a member's token, round-robin over ${k.create_communities} communities, every request a new post (INSERT + pg_notify in one transaction, commit, feed version bump in Redis, the post read back); any non-2xx counts as an error. ${k.rounds} rounds alternating fcgi → create after ${k.warmup} s warm-up each; medians.`);
  L.push(`- Machine: ${machine(res)}; wrk and pgbench run on the same machine. Load average (1 min) when this part started: ${raw(res.machine.loadavg_start)} (the parts before it included). Other integration-test stacks (th-it.*) or wrk runs seen on the machine before each phase: ${f.foreign}.`);
  L.push(`- Settings: community workers ${s.community_workers} (one a core; /bench/fcgi: 4), nginx worker_processes ${s.nginx_workers}, TH_FEED_CACHE_TTL=${s.TH_FEED_CACHE_TTL} s, no read replica, PostgreSQL as \`scripts/stack\` configures it, TH_LOG_LEVEL=${s.TH_LOG_LEVEL} (an access line per request, and an audit line per created post), binaries ${s.binaries}.`);
  L.push(`- Targets: ${targetsLine(goals)}.`);
  L.push('', `One feed query (a community and a cursor in the middle of the seeded ranges), after the runs: index scan on posts_feed_idx: ${ex.index ? 'yes' : 'no'}; Sort nodes (outside any per-post subquery): ${ex.sorts}.`);
  L.push('', '```text', res.text?.explain ?? '', '```');
  L.push(end(res.part));
  return L.join('\n');
}

export const plot = (res) => {
  const { w, pg } = figures(res);
  return {
    title: 'Community: latency percentiles',
    categories: [
      { label: '/bench/fcgi (feed rounds)', values: w.fcgi_feed },
      { label: 'cached feed', values: w.feed },
      { label: 'feed query (pgbench)', values: pg },
    ],
    series: [{ key: 'p50', label: 'p50' }, { key: 'p75', label: 'p75' }, { key: 'p90', label: 'p90' }, { key: 'p99', label: 'p99' }],
    unit: 'ms',
  };
};
