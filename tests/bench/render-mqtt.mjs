// The mqtt part's section: N authenticated WebSocket subscribers held (connect rate,
// memory, a broadcast), fan-out against a plain mosquitto and through nginx, and the
// limits a run runs into (scripts/bench collects; this sums, decides and writes).
import { scenarios } from './scenarios.mjs';
import { evaluate, verdictText, boundText } from './verdict.mjs';
import { records, median, ratio, f0, f2, f3, raw } from './stats.mjs';
import { head, end, machine, targetsLine } from './section.mjs';

const FAN = ['plain', 'direct', 'nginx'];
const LABEL = {
  plain: 'plain mosquitto, no plugin, straight to its WebSocket listener',
  direct: 'the tier: th-wsfront (BASE+4) → edge e0 + plugin',
  nginx: 'the tier through nginx /mqtt',
};
const sum = (xs) => xs.reduce((n, x) => n + (Number(x) || 0), 0);
const maxOf = (xs) => {
  const v = xs.map(Number).filter(Number.isFinite);
  return v.length ? Math.max(...v) : NaN;
};

// one fan-out target over its rounds: medians of the rate and max phases, broker and
// nginx CPU per delivery, deliveries missing over every run
export function fanSummary(runs = []) {
  const rate = records(runs, 'rate'), max = records(runs, 'max');
  const cpu = runs.map((r) => {
    const c = r.find((x) => x.tag === 'cpu'), t = r.find((x) => x.tag === 'total');
    const d = Number(t?.deliveries);
    return {
      broker: c && d > 0 ? (c.broker_ticks * 1e6) / c.hz / d : NaN,
      nginx: c && d > 0 ? (c.nginx_ticks * 1e6) / c.hz / d : NaN,
    };
  });
  return {
    runs: runs.length,
    p50: median(rate.map((x) => x.p50_ms)),
    p99: median(rate.map((x) => x.p99_ms)),
    max: median(rate.map((x) => x.max_ms)),
    mps: median(max.map((x) => x.msgs_per_s)),
    dps: median(max.map((x) => x.deliveries_per_s)),
    p99_at_max: median(max.map((x) => x.p99_ms)),
    cpu: median(cpu.map((x) => x.broker)),
    cpu_nginx: median(cpu.map((x) => x.nginx)),
    lost: runs.length ? sum([...rate, ...max].map((x) => x.expected)) - sum([...rate, ...max].map((x) => x.deliveries)) : NaN,
  };
}

// one connection run: the processes' ready/recv lines summed (latencies: the highest of
// the processes' own), the run line's RSS and nginx counts
export function connSummary(procRuns, runRuns) {
  if (!procRuns?.length || !runRuns?.length) return null;
  const run = runRuns[0].find((x) => x.tag === 'run') ?? {};
  const ready = records(procRuns, 'ready'), recv = records(procRuns, 'recv');
  const ok = sum(ready.map((x) => x.ok));
  const t0 = Math.min(...ready.map((x) => Number(x.start_ns)).filter((x) => x > 0));
  const t1 = Math.max(...ready.map((x) => Number(x.end_ns)));
  const secs = Number.isFinite(t0) && t1 > t0 ? (t1 - t0) / 1e9 : 0;
  return {
    asked: run.asked, ok, failed: sum(ready.map((x) => x.failed)), refused: sum(ready.map((x) => x.refused)),
    subfail: sum(ready.map((x) => x.subfail)), secs, rate: secs > 0 ? ok / secs : 0,
    rss0: run.rss_before_kb, rss1: run.rss_after_kb,
    per: ok > 0 ? ((run.rss_after_kb - run.rss_before_kb) * 1024) / ok : 0,
    got: sum(recv.map((x) => x.conns_all)), msgs: sum(recv.map((x) => x.msgs)),
    extra: sum(recv.map((x) => x.extra)), closed: sum(recv.map((x) => x.closed)),
    p50: maxOf(recv.map((x) => x.p50_ms)), p99: maxOf(recv.map((x) => x.p99_ms)), max: maxOf(recv.map((x) => x.max_ms)),
    nginx_short: run.nginx_short_after - run.nginx_short_before,
  };
}

const rateLine = (runs) => records(runs ?? [], 'rate')[0] ?? null;

export function figures(res) {
  const t = res.tools, k = res.knobs;
  const fan = Object.fromEntries(FAN.map((n) => [n, fanSummary(t[`fan_${n}`])]));
  const C = connSummary(t.conns_direct, t.connsrun_direct) ?? {};
  const NX = connSummary(t.conns_nginx, t.connsrun_nginx);
  const CAP = connSummary(t.conns_cap, t.connsrun_cap);
  const held = rateLine(t.fan_held), before = rateLine(t.fan_before);
  const m = {
    conns_held: C.ok === k.mqtt_conns ? 1 : 0,
    bcast_all: C.ok > 0 && C.got === C.ok ? 1 : 0,
    fan_p99: fan.direct.p99,
    fan_held_p99: held ? Number(held.p99_ms) : NaN,
    fan_nginx_p99: fan.nginx.p99,
    plugin_cost: ratio(fan.plain.mps, fan.direct.mps),
    plugin_cpu: ratio(fan.direct.cpu, fan.plain.cpu),
    nginx_cost: ratio(fan.direct.mps, fan.nginx.mps),
  };
  m.conns_why = m.conns_held ? '' : `${C.ok ?? 0} of ${k.mqtt_conns}`;
  m.bcast_why = m.bcast_all ? '' : `${C.got ?? 0} of ${C.ok ?? 0} received it`;
  m.held_why = held ? '' : 'no run';
  const goals = evaluate(scenarios.mqtt.goals, m);
  return { fan, C, NX, CAP, held, before, m, goals };
}

// what stops the runs and what to do about it, from the figures
function findings(res, { C, NX, CAP, held, before, goals }) {
  const k = res.knobs, s = res.settings, f = res.facts;
  const g = Object.fromEntries(goals.map((x) => [x.metric, x]));
  const L = ['', 'Limits found by this run:', ''];
  if (held && g.fan_held_p99.verdict !== 'met') {
    L.push(`- **Debian's WebSocket listener (mosquitto 2.0.11 with libwebsockets) does not hold ${C.ok} subscribers with fan-out p99 ≤ 10 ms**: with them connected and idle, fan-out at ${k.mqtt_rate} msg/s to ${k.mqtt_subs} subscribers went from p50 ${raw(before?.p50_ms)} / p99 ${raw(before?.p99_ms)} ms (just before they connected) to p50 ${raw(held.p50_ms)} / p99 ${raw(held.p99_ms)} ms; one broadcast to all of them took ${raw(C.max)} ms to reach the last one. The cost grows with the number of WebSocket connections, not with traffic, which fits how 2.0.11 drives WebSockets: its main loop calls libwebsockets' own service function once per pass instead of putting those sockets into its epoll set (upstream's comment there: "websockets clients are second class citizens"). Proposed fix: keep WebSocket out of the broker's loop — terminate WebSocket in a small epoll relay in front of the broker's TCP listener (framing only, one TCP connection per client, so the plugin still sees each client; \`tests/load/mqtt_load.c\` holds the client half of that framing), behind nginx's \`/mqtt\`; or run a mosquitto whose WebSocket support lives in its own epoll loop (the built-in WebSocket of the 2.1 series) instead of Debian's libwebsockets build. Then re-run this part; until then one broker should hold far fewer WebSocket clients than ${C.ok} (shard communities over brokers).`);
  }
  if (NX && NX.asked > 0 && NX.ok < NX.asked) {
    L.push(`- **nginx held ${NX.ok} of ${NX.asked} WebSocket clients**: its worker_connections ${s.nginx_worker_connections || '?'} (× ${s.nginx_workers} workers, two connections per proxied client) stop it ("worker_connections are not enough" ${NX.nginx_short} times in its log), not the open-files cap. To reach the cap: worker_connections 10000 and worker_rlimit_nofile 20000 in conf/nginx (about 2 × 9,990 clients).`);
  }
  if (CAP && CAP.ok < CAP.asked) {
    L.push(`- **One broker held ${CAP.ok} of ${CAP.asked} connections**: its open-files limit (${f.broker_open_files || 20000}, a hard limit) stops it, not the code: the rest are listeners, the log, Redis and PostgreSQL connections. At the cap the broker cannot open files either (log: ${f.cap_log || 'nothing'}), so its autosave fails too: a production broker needs headroom below the limit (\`max_connections\` on the listeners).`);
  }
  return L.length > 3 ? L : [];
}

export function section(res, plotRef) {
  const F = figures(res);
  const { fan, C, NX, CAP, held, before, m, goals } = F;
  const g = Object.fromEntries(goals.map((x) => [x.metric, x]));
  const k = res.knobs, s = res.settings, f = res.facts;
  const v = (goal) => `${boundText(goal, goal.unit)} | ${verdictText(goal)}`;
  const L = head(res, `MQTT over WebSocket: ${k.mqtt_conns} subscribers, fan-out, plugin and nginx cost`,
    `, here with BENCH_MQTT_CONNS=${k.mqtt_conns} BENCH_MQTT_NGINX_CONNS=${k.mqtt_nginx_conns} BENCH_MQTT_CAP_CONNS=${k.mqtt_cap_conns} BENCH_ROUNDS=${k.rounds} BENCH_DURATION=${k.duration} BENCH_WARMUP=${k.warmup}`);
  L.push('| measure | value | target | result |', '|---|---:|---:|---|');
  L.push(`| authenticated WebSocket subscribers held at once, straight to the fronts (the tier, 1 edge) | ${C.ok} of ${k.mqtt_conns} | ${k.mqtt_conns} | ${verdictText(g.conns_held)} |`);
  L.push(`| connect rate (TCP + WebSocket upgrade + CONNECT with token + SUBSCRIBE) | ${f0(C.rate)} conn/s (${f2(C.secs)} s) | report | — |`);
  L.push(`| broker memory per connection (RSS ${C.rss0} → ${C.rss1} KiB) | ${f0(C.per)} bytes | report | — |`);
  L.push(`| broadcast (1 message per channel, by their owner) received by | ${C.got} of ${C.ok} connections | all | ${verdictText(g.bcast_all)} |`);
  L.push(`| broadcast publish → deliver over all ${C.msgs} deliveries: p50 · p99 · max | ${raw(C.p50)} · ${raw(C.p99)} · ${raw(C.max)} ms | report | — |`);
  L.push(`| fan-out p99 at ${k.mqtt_rate} msg/s to ${k.mqtt_subs} subscribers, the tier (fronts → edge + plugin) | ${f3(fan.direct.p99)} ms | ${v(g.fan_p99)} |`);
  L.push(`| the same while the ${C.ok} subscribers above are held (p50 ${raw(held?.p50_ms)} ms) | ${raw(held?.p99_ms)} ms | ${v(g.fan_held_p99)} |`);
  L.push(`| the same just before they connected (p50 ${raw(before?.p50_ms)} ms), for comparison | ${raw(before?.p99_ms)} ms | | |`);
  L.push(`| the same through nginx /mqtt | ${f3(fan.nginx.p99)} ms | ${v(g.fan_nginx_p99)} |`);
  L.push(`| plugin cost: plain / plugin max msg/s (window ${k.mqtt_window}) | ${f2(m.plugin_cost)} | ${v(g.plugin_cost)} |`);
  L.push(`| plugin cost in broker CPU: plugin / plain, CPU µs per delivery (${f3(fan.direct.cpu)} / ${f3(fan.plain.cpu)}) | ${f2(m.plugin_cpu)} | report | — |`);
  L.push(`| nginx cost: straight / through nginx, max msg/s | ${f2(m.nginx_cost)} | report | — |`);
  L.push(`| subscribers held through nginx /mqtt | ${NX ? NX.ok : 0} of ${NX ? NX.asked : 0} | report | — |`);
  L.push('');
  L.push(`| fan-out target (${k.mqtt_subs} subscribers) | p50 ms at ${k.mqtt_rate} msg/s | p99 ms | max ms | max msg/s (window ${k.mqtt_window}) | deliveries/s | p99 ms at max | broker CPU µs/delivery | nginx CPU µs/delivery | not delivered 3 s after a run (all runs) |`);
  L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const n of FAN) {
    const x = fan[n];
    L.push(`| ${LABEL[n]} | ${f3(x.p50)} | ${f3(x.p99)} | ${f3(x.max)} | ${f0(x.mps)} | ${f0(x.dps)} | ${f3(x.p99_at_max)} | ${f3(x.cpu)} | ${f3(x.cpu_nginx)} | ${raw(x.lost)} |`);
  }
  L.push('');
  L.push('| connection run | asked | subscribed | failed (CONNACK refused, SUBACK refused) | seconds | conn/s | broker RSS before → after KiB | bytes/conn | got the broadcast | broadcast p99 ms |');
  L.push('|---|---:|---:|---|---:|---:|---|---:|---:|---:|');
  const crow = (label, x, bc) => `| ${label} | ${x.asked} | ${x.ok} | ${x.failed} (${x.refused}, ${x.subfail}) | ${f2(x.secs)} | ${f0(x.rate)} | ${x.rss0} → ${x.rss1} | ${f0(x.per)} | ${bc ? x.got : 'not sent (cap run)'} | ${bc ? raw(x.p99) : '—'} |`;
  L.push(crow('straight to the fronts (BASE+4)', C, true));
  if (CAP) L.push(crow('straight to the broker, up to the open-files cap', CAP, false));
  if (NX) L.push(crow('through nginx /mqtt', NX, true));
  if (plotRef) L.push('', `![fan-out latency percentiles per target](${plotRef})`);
  L.push('');
  L.push(`- Load generator: \`tests/load/mqtt_load.c\` (\`th-mqtt_load\`): MQTT 3.1.1 over WebSocket (subprotocol \`mqtt\`, masked frames), one epoll thread per process, on the same machine. Fixtures through the API: ${k.mqtt_users} users registered (the access token of their registration, TH_ACCESS_TTL=${s.TH_ACCESS_TTL}; TH_RL_REGISTER_MAX lifted on this stack), each joined to one of ${k.mqtt_channels} public communities; connection i uses user i mod ${k.mqtt_users} with client id \`u<uid>-<i>\` and subscribes to \`chat/<channel>/+\` of its community's #general (QoS 0, clean session, keepalive 600 s).`);
  L.push(`- Connections: \`th-mqtt_load conn -b 127.0.0.<2+k> -s <first> -n <count> -C 256 -k 600 -e 1\`, ${Math.ceil(k.mqtt_conns / k.mqtt_per_proc)} processes of at most ${k.mqtt_per_proc} connections, each bound to its own source address 127.0.0.<2+k>, at most 256 handshakes in flight per process. Connect rate = subscribed connections / (last SUBACK − first connect). Memory = VmRSS of the edge (not the fronts; part realtime-100k sums every process) 2 s after all are subscribed minus 2 s before the first, per connection. Broadcast: \`th-mqtt_load pub\` as the channels' owner (a user), straight to the fronts' port, publishes one chat message per channel (${k.mqtt_channels}); every connection must receive exactly one (extra deliveries: ${C.extra}; connections the broker closed: ${C.closed}); latency from the publisher's timestamp, p50/p99 the highest of the load-generator processes' own. nginx logged "worker_connections are not enough" ${NX ? NX.nginx_short : 0} times during the run through it. Runs after the first reuse memory the broker freed, so only the first run's RSS per connection counts. The held fan-out run is the fan-out below (rate phase only, \`-W 0\`) while the N subscribers stay connected, and the same run just before they connect.`);
  if (CAP) L.push(`- Cap run: ${k.mqtt_cap_conns} connections straight to the broker, whose open-files limit is ${f.broker_open_files}; broker log lines during it: ${f.cap_log || 'none'}.`);
  L.push(`- Fan-out: \`th-mqtt_load fan -n ${k.mqtt_subs} -r ${k.mqtt_rate} -w ${k.warmup} -d ${k.duration} -W ${k.mqtt_window}\`: ${k.mqtt_subs} subscribers (users with 10 connections each) of one channel and a publisher (the community's owner, a member: the plugin checks each publish and validates its payload) on the same endpoint. Payload \`{"id": uuid, "body": "bench <phase> <seq> <t_ns> …"}\` (~150 bytes) with a CLOCK_MONOTONIC timestamp; latency = receipt − scheduled send time, over every delivery (open loop at ${k.mqtt_rate} msg/s for ${k.duration} s after ${k.warmup} s warm-up), nearest-rank from a 1 µs histogram. Throughput: for ${k.duration} s the publisher keeps at most ${k.mqtt_window} messages not yet delivered to all subscribers. ${k.rounds} rounds alternating plain → plugin direct → plugin via nginx; medians. The plain broker is Debian's same mosquitto binary started by this script on port BASE+7: \`allow_anonymous true\`, no plugin, no persistence, the same queue limits and \`set_tcp_nodelay\`, its WebSocket listener (and an unused TCP listener on BASE+8: 2.0.11 does not start with WebSocket listeners only).`);
  L.push('- The stack\'s bridge (realtime-bridge/bridge) runs as in production: it subscribes to every chat topic of the plugin broker with QoS 1 and stores every fan-out message in PostgreSQL, on the same 2 cores; the plain broker has no such subscriber.');
  L.push(`- Machine: ${machine(res)}; the load generator, nginx, both brokers, Redis and PostgreSQL share it. Before measuring: ${f.quiet}. Load average (1 min) when measuring began: ${raw(f.loadavg_measuring)}.`);
  L.push(`- Settings: mosquitto ${s.mosquitto} (Debian 12, libwebsockets ${s.libwebsockets} linked into the binary), conf/mosquitto as \`scripts/stack\` renders it, TH_MQTT_ACL_TTL_MS default (5000), nginx worker_processes ${s.nginx_workers} with worker_connections ${s.nginx_worker_connections}, open files ${s.open_files}, binaries ${s.binaries}.`);
  L.push(`- Targets: ${targetsLine(goals)}.`);
  L.push(...findings(res, F));
  L.push(end(res.part));
  return L.join('\n');
}

export const plot = (res) => {
  const { fan } = figures(res);
  return {
    name: 'fanout-latency',
    title: `MQTT fan-out at ${res.knobs.mqtt_rate} msg/s to ${res.knobs.mqtt_subs} subscribers: latency`,
    categories: FAN.map((n) => ({ label: n === 'plain' ? 'plain mosquitto' : n === 'direct' ? 'the tier (fronts)' : 'the tier via nginx', values: fan[n] })),
    series: [{ key: 'p50', label: 'p50' }, { key: 'p99', label: 'p99' }, { key: 'max', label: 'max' }],
    unit: 'ms',
  };
};
