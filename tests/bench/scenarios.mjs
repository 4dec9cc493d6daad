// Benchmark scenarios as data: what each part runs, against which reference, for how long,
// and the goals its verdicts check. tests/bench/run.mjs runs a scenario and writes one JSON
// result; tests/bench/render.mjs turns results into docs/benchmarks.md sections and plots.
// Durations, rounds and connections come from the BENCH_* knobs of scripts/bench (defaults
// in run.mjs and at the head of scripts/bench); a scenario may pin its own.
//
// Goals (tests/bench/verdict.mjs): `metric` names a figure the part's renderer computes
// from the raw result (tests/bench/render-PART.mjs, figures()); atLeast / atMost / equals
// the bound; `short` the words of the Targets line; `unit` the bound's unit in the table;
// `why` a figure that, when set, says why the goal is not met whatever the value;
// `gate: true` fails the run (scripts/bench exits 1) when not met.

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
  notify: {
    title: 'Unread counts and notifications: one caller with 1,000 channels and 10,000 notifications',
    kind: 'wrk',
    // the caller's token goes with the auth targets (scripts/bench bench_notify seeds the
    // caller's channels, markers and notifications, then runs this)
    targets: [
      { name: 'fcgi', label: '/bench/fcgi (bare libfcgi)', path: '/bench/fcgi' },
      { name: 'unread', label: 'GET /api/me/unread (1,000 channels)', path: '/api/me/unread', auth: true },
      // what nginx alone moves of the same bytes: scripts/bench saves one answer of each
      // route into the stack's bench-files/ (served by /bench/files/, sendfile) before the
      // rounds; the evidence of what this machine allows for an answer of that size
      { name: 'static_unread', label: 'the same bytes as unread, nginx static file', path: '/bench/files/unread.json' },
      // the same size from the bare libfcgi responder (fcgi-apps/bench): what moving that
      // many bytes through FastCGI costs before any route code runs
      { name: 'fcgi_unread', label: 'the same size as unread, bare libfcgi', path: '/bench/fcgi?bytes=', pathFigure: 'unread_bytes' },
      { name: 'notifications', label: 'GET /api/notifications (10,000 kept)', path: '/api/notifications', auth: true },
      { name: 'static_notifications', label: 'the same bytes as notifications, nginx static file', path: '/bench/files/notifications.json' },
    ],
    ratios: [
      { name: 'unread_fcgi', label: 'unread / fcgi', num: 'unread', den: 'fcgi' },
      { name: 'notifications_fcgi', label: 'notifications / fcgi', num: 'notifications', den: 'fcgi' },
      { name: 'unread_static', label: 'unread / same-size static file', num: 'unread', den: 'static_unread' },
      { name: 'notifications_static', label: 'notifications / same-size static file', num: 'notifications', den: 'static_notifications' },
      { name: 'static_unread_fcgi', label: 'same-size static file of unread / fcgi (the ceiling of unread / fcgi here)', num: 'static_unread', den: 'fcgi' },
      { name: 'unread_fcgi_same', label: 'unread / same-size bare libfcgi (what the route costs over the transport of its bytes)', num: 'unread', den: 'fcgi_unread' },
      { name: 'fcgi_same_fcgi', label: 'same-size bare libfcgi / fcgi (the ceiling of unread / fcgi through FastCGI)', num: 'fcgi_unread', den: 'fcgi' },
    ],
    // measured by scripts/bench around one post in a community of BENCH_NOTIFY_MEMBERS
    // members whose level is `all` (tests/bench/fanout.mjs)
    figures: [
      { name: 'unread_bytes', label: 'bytes of one GET /api/me/unread answer (and of its static copy)', unit: 'B' },
      { name: 'notifications_bytes', label: 'bytes of one GET /api/notifications answer (and of its static copy)', unit: 'B' },
      { name: 'fanout_members', label: 'members told of the post (level all)' },
      { name: 'fanout_post_ms', label: 'POST of that post (its transaction writes every notification)', unit: 'ms' },
      { name: 'fanout_last_ms', label: 'post sent → the last inbox event received', unit: 'ms' },
      { name: 'fanout_events', label: 'inbox events received for it' },
      { name: 'fanout_missing', label: 'members whose inbox event did not come' },
      { name: 'fanout_rows', label: 'rows the post inserted (notifications, outbox events, the post)' },
      { name: 'fanout_wal_kb', label: 'WAL the post wrote', unit: 'KiB' },
    ],
    goals: [
      { label: 'unread / fcgi', metric: 'unread_fcgi', atLeast: 0.7 },
      { label: 'notifications / fcgi', metric: 'notifications_fcgi', atLeast: 0.7 },
      // what the route itself can be asked: its answer is ~88 KB, and moving that through
      // FastCGI alone is ~0.6 of /bench/fcgi on this machine (fcgi_same_fcgi)
      { label: 'unread / same-size bare libfcgi', metric: 'unread_fcgi_same', atLeast: 0.7 },
      { label: 'unread p99 ms', metric: 'unread_p99', atMost: 10 },
      { label: 'notifications p99 ms', metric: 'notifications_p99', atMost: 10 },
      { label: 'inbox events for every member', metric: 'fanout_missing', atMost: 0 },
      { label: 'errors in every round of every target', metric: 'errors_total', atMost: 0 },
    ],
  },
  auth: {
    title: 'Auth: token verification, /api/auth/me, logins',
    kind: 'raw',
    // the targets of the wrk rounds (fcgi and me alternate; login rounds each followed
    // by the argon2id reference, th-token_bench argon2)
    targets: [
      { name: 'fcgi', label: '/bench/fcgi (bare libfcgi)', path: '/bench/fcgi' },
      { name: 'me', label: '/api/auth/me (token + per-worker cache)', path: '/api/auth/me' },
      { name: 'login', label: '/api/auth/login (argon2id + PG + Redis)', path: '/api/auth/login' },
    ],
    references: { me: 'fcgi', login: 'th-token_bench argon2 (bare argon2id verifies, one process a core)' },
    goals: [
      { metric: 'verify_cached', short: 'cached verification ≥ 1,000,000/s', atLeast: 1000000, unit: '/s' },
      { metric: 'me_fcgi', short: 'me/fcgi ≥ 0.8', atLeast: 0.8 },
      { metric: 'me_p99', short: 'me p99 ≤ 10 ms', atMost: 10, unit: 'ms' },
      { metric: 'login_argon2', short: 'logins/argon2id ≥ 0.9', atLeast: 0.9, why: 'login_failed' },
      { metric: 'errors_total', short: 'no error in any round', equals: 0, gate: true },
      { metric: 'measured', short: 'every target and reference measured', equals: 1, gate: true },
    ],
  },
  community: {
    title: 'Community: cached feed, uncached feed query, post creation',
    kind: 'raw',
    // wrk rounds: fcgi_feed and feed alternate (before the seeding), then uncached
    // (cursor pages through nginx), then fcgi_create and create alternate; pgbench runs
    // the feed SELECT of the th-community binary on the seeded posts
    targets: [
      { name: 'fcgi_feed', label: '/bench/fcgi (bare libfcgi), rounds with the feed', path: '/bench/fcgi' },
      { name: 'feed', label: 'GET /api/communities/:id/posts, cached', path: '/api/communities/:id/posts' },
      { name: 'uncached', label: 'GET /api/communities/:id/posts?cursor=, uncached', path: '/api/communities/:id/posts?cursor=' },
      { name: 'fcgi_create', label: '/bench/fcgi (bare libfcgi), rounds with post creation', path: '/bench/fcgi' },
      { name: 'create', label: 'POST /api/communities/:id/posts', path: '/api/communities/:id/posts' },
    ],
    references: { feed: 'fcgi_feed', create: 'fcgi_create' },
    goals: [
      { metric: 'feed_fcgi', short: 'feed/fcgi ≥ 0.7', atLeast: 0.7, why: 'cache_miss' },
      { metric: 'feed_p99', short: 'cached feed p99 ≤ 10 ms', atMost: 10, unit: 'ms', why: 'cache_miss' },
      { metric: 'pg_p99', short: 'uncached feed query p99 ≤ 5 ms', atMost: 5, unit: 'ms', why: 'pg_failed' },
      { metric: 'create_errors', short: 'post creation without errors', equals: 0, why: 'create_failed' },
      { metric: 'errors_total', short: 'no error in any round', equals: 0, gate: true },
      { metric: 'cache_hit', short: 'every measured feed request a cache hit', equals: 1, gate: true },
      { metric: 'feed_index', short: 'the feed query scans posts_feed_idx', equals: 1, gate: true },
    ],
  },
  mqtt: {
    title: 'MQTT over WebSocket: subscribers, fan-out, plugin and nginx cost',
    kind: 'raw',
    // fan-out rounds rotate plain -> direct -> nginx (each leads one round); then the
    // connection runs (direct with a fan-out before and while held, nginx, the cap run)
    targets: [
      { name: 'plain', label: 'plain mosquitto, no plugin, its WebSocket listener (BASE+7)' },
      { name: 'direct', label: 'the tier: th-wsfront (BASE+4) → edge e0 + plugin' },
      { name: 'nginx', label: 'the tier through nginx /mqtt' },
    ],
    references: { direct: 'plain', nginx: 'direct' },
    goals: [
      { metric: 'conns_held', short: 'every subscriber held', equals: 1, why: 'conns_why', gate: true },
      { metric: 'bcast_all', short: 'broadcast to every one', equals: 1, why: 'bcast_why', gate: true },
      { metric: 'fan_p99', short: 'fan-out p99 ≤ 10 ms', atMost: 10, unit: 'ms' },
      { metric: 'fan_nginx_p99', short: 'through nginx ≤ 10 ms', atMost: 10, unit: 'ms' },
      { metric: 'fan_held_p99', short: 'with the subscribers held ≤ 10 ms', atMost: 10, unit: 'ms', why: 'held_why' },
      { metric: 'plugin_cost', short: 'plugin cost ≤ 1.3', atMost: 1.3 },
    ],
  },
  bridge: {
    title: 'Bridge: sustained persistence rate, the broker alone, publish → stored latency',
    kind: 'raw',
    // rate steps (BENCH_BRIDGE_RATES) through the bridge, stopping after the first that
    // does not keep up, then a closed-loop window run; the same against the broker alone
    // (bridge stopped, one plain QoS 1 subscriber) in the same run
    targets: [
      { name: 'steps', label: 'bridge, stored receipts (-S receipts)' },
      { name: 'window', label: 'bridge, closed loop (-W)' },
      { name: 'broker', label: 'broker alone, one QoS 1 subscriber (-S sub)' },
      { name: 'brokerwin', label: 'broker alone, closed loop' },
    ],
    references: { steps: 'broker', window: 'brokerwin' },
    // a step keeps up: sent ≥ 95 % of the offered rate, backlog at its end ≤ 0.25 s worth
    // of the rate, backlog growth over its second half ≤ 0.05 s worth
    keepsUp: { sent: 0.95, backlogEnd: 0.25, backlogGrowth: 0.05 },
    goals: [
      { metric: 'best', short: '≥ 50,000 msg/s persisted without growing lag', atLeast: 50000 },
      { metric: 'history', short: 'every message sent stored exactly once', equals: 1, gate: true },
    ],
  },
  media: {
    title: 'Media: 10 MiB uploads, thumbnails of a 12 MP JPEG, ranged downloads',
    kind: 'raw',
    // uploads in pairs /bench/upload then /api/media (curl, one at a time); thumbnails in
    // process (th-thumb_bench); ranged wrk rounds alternating these targets
    targets: [
      { name: 'static', label: '/bench/files/big.mp4 (nginx alone)' },
      { name: 'signed', label: '/media/:id/original?exp=&sig=' },
      { name: 'bearer', label: '/media/:id/original + Authorization: Bearer' },
      { name: 'auth', label: 'signed URL + If-None-Match (304)' },
      { name: 'fcgi', label: '/bench/fcgi' },
      { name: 'open_static', label: 'open-ended ranges, nginx alone' },
      { name: 'open_signed', label: 'open-ended ranges, signed URL' },
    ],
    references: { upload: '/bench/upload', signed: 'static', bearer: 'static', auth: 'fcgi', open_signed: 'open_static' },
    goals: [
      { metric: 'up_med', short: '10 MiB upload median ≤ 0.2 s', atMost: 0.2, unit: 's' },
      { metric: 'up_worst', short: 'worst < 5 s', atMost: 5, unit: 's' },
      { metric: 'signed', short: 'signed ranges ≥ 0.9 of nginx alone', atLeast: 0.9 },
      { metric: 'open', short: 'open-ended ranges ≥ 0.9 of nginx alone', atLeast: 0.9 },
      { metric: 'upload_errors', short: 'every upload answered 201 (200 for /bench/upload)', equals: 0, gate: true },
      { metric: 'errors_total', short: 'no error in any ranged round', equals: 0, gate: true },
      { metric: 'measured', short: 'uploads, references and every ranged target measured', equals: 1, gate: true },
    ],
  },
  export: {
    title: 'Account export: worker memory against the account\'s size',
    kind: 'raw',
    // rounds alternate small → large (scripts/lib/bench-export.sh): one GET
    // /api/auth/me/export each through nginx, every auth worker's VmRSS before and its
    // peak (VmHWM, reset before) after; the worker whose request count moved served it
    targets: [
      { name: 'small', label: 'account with a tenth of the items (the reference)' },
      { name: 'large', label: 'account with BENCH_EXPORT_ITEMS items' },
    ],
    references: { large: 'small' },
    goals: [
      // the document really is ~10 times larger, or the memory figures prove nothing
      { metric: 'bytes_ratio', short: 'large ÷ small document ≥ 9', atLeast: 9, gate: true },
      // constant memory: ten times the data moves the serving worker's peak by at most
      // 10 % (a worker whose memory followed the document would grow ~10×)
      { metric: 'peak_ratio', short: 'peak RSS large ÷ small ≤ 1.1', atMost: 1.1 },
      // and what the extra data adds to the peak growth is under 1 % of its bytes
      { metric: 'held_per_byte', short: 'extra peak growth ≤ 1 % of the extra bytes', atMost: 0.01 },
      { metric: 'peak_large_mib', short: 'worker peak during the large export ≤ 32 MiB', atMost: 32, unit: 'MiB' },
      { metric: 'whole', short: 'every export 200, whole, every item in it', equals: 1, gate: true },
    ],
  },
  'realtime-100k': {
    title: 'Real time for 100,000 clients: the tier beside one plain broker',
    kind: 'raw',
    // two systems in one run: the plain mosquitto (BENCH_RT_PLAIN_CONNS clients), then the
    // tier (BENCH_RT_CONNS): hold, idle, fan-out while held, one message to all, a storm;
    // then chat persisted by two bridges against the hub alone
    targets: [
      { name: 'tier', label: 'the tier: th-wsfront (BASE+4) → edges + plugin, hub' },
      { name: 'plain', label: 'plain mosquitto, one process, WebSocket (BASE+32)' },
    ],
    references: { tier: 'plain', bridges: 'the hub alone (rt-hub steps)' },
    goals: [
      { metric: 'held_short', short: 'every client held', atMost: 0 },
      { metric: 'per_conn', short: 'memory per connection ≤ 10 KB', atMost: 10240 },
      { metric: 'fan_one', short: 'fan-out p99, one edge, ≤ 10 ms', atMost: 10 },
      { metric: 'fan_spread', short: 'fan-out p99, spread, ≤ 10 ms', atMost: 10 },
      { metric: 'bcast_ms', short: 'one message to all ≤ 2 s', atMost: 2000, why: 'bcast_why' },
      { metric: 'bridge_ratio', short: 'bridges ÷ hub alone ≥ 0.9', atLeast: 0.9 },
      { metric: 'back_s', short: 'storm: all back ≤ 30 s', atMost: 30 },
      { metric: 'lost', short: 'storm: no fan-out delivery missing', atMost: 0 },
      { metric: 'stall_ms', short: 'storm: longest ping ≤ 1 s', atMost: 1000 },
      { metric: 'history', short: 'every persisted message stored once', equals: 1, gate: true },
    ],
  },
};
