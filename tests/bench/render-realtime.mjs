// The realtime-100k part's section: the real-time tier (fronts, edges, hub) holding N
// authenticated WebSocket clients beside one plain mosquitto, from the holders' own
// lines, the fan-out, ping, idle-CPU and bridge runs (scripts/lib/bench-rt.sh collects).
import { scenarios } from './scenarios.mjs';
import { evaluate, verdictText } from './verdict.mjs';
import { records, ratio, f0, f1, f2, raw } from './stats.mjs';
import { keepsUp } from './keeps-up.mjs';
import { begin, end, machine } from './section.mjs';

const sum = (xs) => xs.reduce((n, x) => n + (Number(x) || 0), 0);
const maxOf = (xs) => {
  const v = xs.map(Number).filter(Number.isFinite);
  return v.length ? Math.max(...v) : NaN;
};
const FAILS = ['connect', 'http', 'refused', 'subfail', 'timeout', 'reset'];

// the storm from each holder's lines after the kill: first drop → last holder whole
// again; NaN when a holder that lost clients never came back
export function stormBack(holders = []) {
  let tDrop = Infinity, tFull = 0, any = false;
  for (const lines of holders) {
    const d = lines.find((x) => x.tag === 'drop');
    if (!d) continue;
    any = true;
    const i = lines.indexOf(d);
    const fulls = lines.slice(i + 1).filter((x) => x.tag === 'full');
    if (!fulls.length) return NaN;
    tDrop = Math.min(tDrop, Number(d.t_ns));
    tFull = Math.max(tFull, Number(fulls.at(-1).t_ns));
  }
  return any ? (tFull - tDrop) / 1e9 : NaN;
}

// Prometheus text -> [{labels, value}] of one metric (labels '' when it has none)
function metric(text = '', name) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^[^{\s]+(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (m) out.push({ labels: m[1] ?? '', value: Number(m[2]) });
  }
  return out;
}

// one system (tier or plain), or null when it did not run
function system(res, label) {
  const t = res.tools, f = res.facts;
  const holders = t[`hold_${label}`];
  if (!holders?.length) return null;
  const ready = records(holders, 'ready'), final = records(holders, 'final');
  const snapHeld = records(t[`snap_held_${label}`], 'stat');
  const held = sum(snapHeld.map((x) => x.held));
  const a = Math.min(...ready.map((x) => Number(x.start_ns)).filter((x) => x > 0));
  const b = Math.max(...ready.map((x) => Number(x.end_ns)));
  const span = Number.isFinite(a) && b > a ? b - a : 0;
  const rss0 = f[`${label}.rss_kb.before`], rss1 = f[`${label}.rss_kb.after`];
  const idle = t[`idle_${label}`]?.[0] ?? [];
  const sp = idle.find((x) => x.tag === 'span');
  const ticks = sp ? (Number(sp.end) - Number(sp.start)) * sp.hz : NaN;
  const procs = idle.filter((x) => x.tag === 'proc');
  const top = procs.reduce((m, x) => (Number(x.ticks) > Number(m?.ticks ?? -1) ? x : m), null);
  const redis = idle.find((x) => x.tag === 'redis');
  const fanStorm = records(t[`fanstorm_${label}`], 'rate')[0];
  const ping = records(t[`ping_${label}`], 'final')[0];
  return {
    offered: f[`${label}.offered`],
    held,
    failed: sum(ready.map((x) => x.failed)),
    failKinds: FAILS.map((k) => `${k} ${sum(snapHeld.map((x) => x[k]))}`).join(', '),
    rate: span > 0 ? (sum(ready.map((x) => x.ok)) * 1e9) / span : 0,
    connectS: span / 1e9,
    rss0, rss1,
    perConn: held > 0 ? ((rss1 - rss0) * 1024) / held : 0,
    idle: sp ? `${f1((100 * sum(procs.map((x) => x.ticks))) / ticks)} % (busiest ${top?.comm}[${top?.name ?? top?.pid}] ${f1((100 * Number(top?.ticks)) / ticks)} %; Redis ${f1((100 * Number(redis?.ticks)) / ticks)} %)` : 'n/a',
    bcastN: sum(records(t[`snap_bcast_${label}`], 'stat').map((x) => x.bcast)),
    bcastMs: maxOf(final.map((x) => x.bcast_max_ms)),
    bcastP99: maxOf(final.map((x) => x.bcast_p99_ms)),
    dropped: sum(records(t[`snap_poststorm_${label}`], 'stat').map((x) => x.drops)) - sum(records(t[`snap_prestorm_${label}`], 'stat').map((x) => x.drops)),
    back: stormBack(t[`storm_${label}`]),
    lost: fanStorm ? Number(fanStorm.expected) - Number(fanStorm.deliveries) : NaN,
    stall: ping && Number(ping.pings) > 0 ? Number(ping.ping_max_ms) : NaN,
    victim: f[`${label}.victim`] ? `${f[`${label}.victim`]} (${f[`${label}.victim_conns`]} connections)` : 'none (no edges)',
    softnet: f[`${label}.softnet_drops.after`] - f[`${label}.softnet_drops.before`],
  };
}

const fanP99 = (res, name) => Number(records(res.tools[`fan_${name}`], 'rate')[0]?.p99_ms);

export function figures(res) {
  const k = res.knobs;
  const tier = system(res, 'tier') ?? {}, plain = system(res, 'plain');
  const steps = records(res.tools['rt-bsteps'], 'step'), hub = records(res.tools['rt-hub'], 'step');
  const bestOf = (xs) => xs.filter((x) => keepsUp(x)).reduce((a, x) => Math.max(a, Number(x.rate)), 0);
  const best = bestOf(steps), hubBest = bestOf(hub);
  const sent = ['rt-bwarm', 'rt-bsteps'].reduce((n, t) => n + sum(records(res.tools[t], 'total').map((x) => x.sent)), 0);
  const rows = Number(res.facts.bridge_rows), dist = Number(res.facts.bridge_distinct);
  const m = {
    held_short: Number(k.rt_conns) - tier.held,
    per_conn: tier.perConn,
    fan_one: fanP99(res, 'tier-one'),
    fan_spread: fanP99(res, 'tier-spread'),
    bcast_ms: tier.bcastMs,
    bridge_ratio: ratio(best, hubBest),
    back_s: tier.back,
    lost: tier.lost,
    stall_ms: tier.stall,
    history: rows === sent && dist === rows ? 1 : 0,
  };
  m.bcast_why = tier.bcastN === tier.held ? '' : `${tier.bcastN} of ${tier.held} received`;
  const goals = evaluate(scenarios['realtime-100k'].goals, m);
  return { tier, plain, best, hubBest, sent, rows, dist, m, goals };
}

export function section(res) {
  const { tier, plain, best, hubBest, sent, rows, dist, m, goals } = figures(res);
  const g = Object.fromEntries(goals.map((x) => [x.metric, x]));
  const k = res.knobs, s = res.settings, f = res.facts;
  const p = plain ?? {};
  const na = (x, fmt = raw) => (plain ? fmt(x) : 'n/a');
  const last = String(k.rt_bridge_rates).split(',').at(-1);
  const atLeastLast = (x) => (String(x) === last ? `≥ ${x}` : String(x));
  const fan = (n) => raw(fanP99(res, n));
  const totalS = Math.round((Date.parse(res.finished_at) - Date.parse(res.started_at)) / 1000);
  const edgeConns = metric(res.text?.front_held, 'th_wsfront_edge_connections').map((x) => x.value);
  const spread = edgeConns.length ? `${edgeConns.length} edges, ${Math.min(...edgeConns)}–${Math.max(...edgeConns)} clients each` : 'n/a';
  const closes = metric(res.text?.front_end, 'th_wsfront_closes_total').filter((x) => x.value > 0)
    .map((x) => `${/reason="([^"]*)"/.exec(x.labels)?.[1]} ${x.value}`).join(', ');
  const L = [begin(res.part), '### Real time for 100,000 clients: the tier beside one plain broker', ''];
  L.push(`Run ${res.started_at.slice(0, 10)} ${res.started_at.slice(11, 16)} UTC with \`BENCH_PARTS=realtime-100k scripts/bench\` (not in the default parts: this run took ${totalS} s), here with BENCH_RT_CONNS=${k.rt_conns} BENCH_RT_PER_PROC=${k.rt_per_proc} BENCH_RT_PLAIN_CONNS=${k.rt_plain_conns} TH_MQTT_EDGES=${s.TH_MQTT_EDGES} TH_WS_FRONTS=${s.TH_WS_FRONTS} BENCH_DURATION=${k.duration} BENCH_WARMUP=${k.warmup}; the result as data: \`${res.file}\`.`, '');
  L.push(`| measurement | tier (${f.edges} edges, ${f.front_workers} front workers, hub) | plain mosquitto (one process, WebSocket) | goal | verdict (tier) |`, '|---|---:|---:|---|---|');
  L.push(`| clients held (offered) | ${tier.held} (${k.rt_conns}) | ${na(p.held)} (${k.rt_plain_conns}) | ${k.rt_conns} | ${verdictText(g.held_short)} |`);
  L.push(`| first-attempt failures (by kind after retries) | ${tier.failed} (${tier.failKinds}) | ${na(p.failed)} (${na(p.failKinds)}) | — | — |`);
  L.push(`| connect rate, clients/s (time to connect all) | ${f0(tier.rate)} (${f1(tier.connectS)} s) | ${na(p.rate, f0)} (${na(p.connectS, f1)} s) | report | — |`);
  L.push(`| memory per connection, bytes (RSS KiB before → after, every process) | ${f0(tier.perConn)} (${tier.rss0} → ${tier.rss1}) | ${na(p.perConn, f0)} (${na(p.rss0)} → ${na(p.rss1)}) | ≤ 10 KB | ${verdictText(g.per_conn)} |`);
  const quiet = (l) => (f[`${l}.idle_quiet_s`] ? `, from ${f[`${l}.idle_quiet_s`]} s after the last connect` : '');
  L.push(`| CPU while the clients idle ${k.rt_idle_s} s${f['tier.idle_quiet_s'] ? ' (once the servers were under half a core for a second)' : ''}, % of one core: every server process (busiest; Redis) | ${tier.idle}${quiet('tier')} | ${plain ? `${p.idle}${quiet('plain')}` : 'n/a'} | ~0 | — |`);
  L.push(`| fan-out p99 ms at ${k.mqtt_rate} msg/s to ${k.mqtt_subs} subscribers while held, one user (same edge) | ${fan('tier-one')} | ${na(fanP99(res, 'plain-one'))} | ≤ 10 ms | ${verdictText(g.fan_one)} |`);
  L.push(`| the same, subscribers of 10 users (spread over edges) | ${fan('tier-spread')} | ${na(fanP99(res, 'plain-spread'))} | ≤ 10 ms | ${verdictText(g.fan_spread)} |`);
  L.push(`| the same through nginx /mqtt: one user / spread | ${fan('nginx-one')} / ${fan('nginx-spread')} | — | report | — |`);
  L.push(`| one message to every held subscriber: last receipt after, ms (p99) | ${raw(tier.bcastMs)} (${raw(tier.bcastP99)}), ${tier.bcastN} received | ${na(p.bcastMs)} (${na(p.bcastP99)}), ${na(p.bcastN)} received | ≤ 2000 ms | ${verdictText(g.bcast_ms)} |`);
  L.push(`| chat persisted by ${f.bridges} bridges, highest step kept up ÷ the hub alone (msg/s) | ${f2(m.bridge_ratio)} (${atLeastLast(best)} ÷ ${atLeastLast(hubBest)}) | — | ≥ 0.9 | ${verdictText(g.bridge_ratio)} |`);
  L.push(`| reconnect storm: killed | ${tier.victim} | the broker, restarted at once | — | — |`);
  L.push(`| storm: clients dropped, all back after s | ${tier.dropped}, ${Number.isFinite(tier.back) ? f1(tier.back) : 'n/a'} | ${na(p.dropped)}, ${plain && Number.isFinite(p.back) ? f1(p.back) : 'n/a'} | ≤ 30 s | ${verdictText(g.back_s)} |`);
  L.push(`| storm: fan-out deliveries missing (one user's ${k.mqtt_subs} subscribers, not on the killed edge) | ${raw(tier.lost)} | ${plain ? `${raw(p.lost)} (its clients were on the killed broker)` : 'n/a'} | 0 | ${verdictText(g.lost)} |`);
  L.push(`| storm: longest ping round trip on the hub (plain: the broker), ms | ${raw(tier.stall)} | ${na(p.stall)} | ≤ 1000 ms | ${verdictText(g.stall_ms)} |`);
  L.push('');
  L.push(`- Clients: \`tests/load/rt_hold.c\` (\`th-rt_hold -b <2 addresses> -s <first> -n <count> -C ${k.rt_inflight} -k 600 -R\`), ${f.hold_procs} processes of at most ${k.rt_per_proc}, each bound to two source addresses of 127.0.2.0/24 (plain: 127.0.3.0/24), MQTT 3.1.1 over WebSocket to the fronts' port BASE+4 (plain: its own WebSocket listener), client id \`u<uid>-h<i>\`, one user each, subscribed to \`chat/<#general>/+\` of one community they all belong to; reconnect after 0.5 s doubling to 8 s, jittered ×0.5–1.5. Connect rate = first-attempt successes / (last ready − first connect).`);
  L.push(`- Users: ${k.rt_conns} seeded with SQL (generate_series, one transaction: users, one live session each, memberships), \`scripts/mirror-rebuild\`, access tokens signed by \`th-rt_tokens\` with the stack's key in ${f1(Number(f['tokens.end']) - Number(f['tokens.start']))} s (no logins).`);
  L.push('- Memory: VmRSS summed over the front master and workers, the edges and the hub (plain: its one process), 2 s before the first connect and 3 s after all are subscribed, per held client.');
  L.push(`- Fan-out: \`th-mqtt_load fan -n ${k.mqtt_subs} -r ${k.mqtt_rate} -w ${k.warmup} -d ${k.duration} -W 0\` while the clients are held, on a second community: "one user" = the publisher and all ${k.mqtt_subs} subscribers are one user (one edge); "spread" = 10 users' subscribers (the rendezvous hash puts them on several edges) and an 11th user publishing.`);
  L.push('- Broadcast: `th-mqtt_load pub` as one member (through the path under test) publishes one chat message to the community; the latency is receipt − send time (CLOCK_MONOTONIC, system-wide), the largest of every holder\'s.');
  L.push(`- Persistence: \`th-bridge_load -S receipts -r RATE -d ${k.rt_bridge_step} -g 20\` on the first edge's TCP port (e0, BASE+10: users' chat reaches the hub through an edge's bridge; the hub's port when there is no edge) (11 members of one community publishing QoS 1 as themselves; a message counts when the bridge's stored receipt names it), steps ${k.rt_bridge_rates} msg/s until one does not keep up (the bridge part's rule, tests/bench/scenarios.mjs), then ${k.rt_bridge_refine ?? 0} more, each halving the gap between the highest rate kept up with and the lowest not (rounded down to 250 msg/s; steps run: ${records(res.tools['rt-bsteps'], 'step').map((x) => x.rate).join(', ') || 'none'} with the bridges, ${records(res.tools['rt-hub'], 'step').map((x) => x.rate).join(', ') || 'none'} without), with ${f.bridges} th-bridge processes in one \`$share\` group (a second one started by this part when the stack runs one); then every bridge stopped and its session discarded, and the same steps with \`-S sub -s ${f.bridge_sink_port ?? 'the same port'}\` (a plain QoS 1 subscriber on ${f.bridge_sink_port && String(f.bridge_sink_port) !== String(f.bridge_port) ? 'the last edge\'s port: every message it counts crossed e0, the hub and that edge' : 'the same port'}): the path's own throughput (the edge and the hub forwarding to every other edge, without persistence). Stored: ${sent} sent, ${rows} rows, ${dist} distinct. After the clients are gone.`);
  L.push('- Storm: the edge with the most clients by the fronts\' count (`th_wsfront_edge_connections`; not the fan-out user\'s, found in the edges\' connection log) gets SIGKILL; the plain broker gets SIGKILL and is started again at once. "All back" = first client closed → last holder whole again. Meanwhile a fan-out run (as above, 20 s, then up to 30 s for late deliveries: `-G 30`) through the same port counts deliveries missing, and one client pings every 20 ms over raw TCP on the hub (plain: the broker\'s TCP listener): its longest round trip bounds the longest stall.');
  const viaPort = (t) => metric(t, 'th_wsfront_edge_via_port_total')[0]?.value;
  const via = viaPort(res.text?.front_held) === undefined ? '' : `; connects that took an edge's TCP port because its unix socket was full: ${viaPort(res.text?.front_held)} of the held clients (${viaPort(res.text?.front_end)} over the whole run)`;
  L.push(`- Fronts (\`/metrics\` on BASE+4): with the clients held, ${spread}${via}; closes and refusals by reason over the whole run (the clients' own stop included): ${closes || 'none'}.`);
  if (f.brokers_epshim) L.push(`- Brokers: the tier's hub and edges with the epoll shim loaded (\`realtime-bridge/epshim\`, TH_MQTT_EPSHIM=1: each delivery's epoll_ctl() calls kept in memory, the net change applied before the broker waits): ${f.brokers_epshim}; the plain broker is Debian's mosquitto as it is.`);
  L.push(`- Kernel: ${f.sysctl} (old values; restored at exit). Packets dropped by the per-CPU input backlogs (/proc/net/softnet_stat, every process on the machine) during the tier's run: ${raw(tier.softnet)}; the plain broker's: ${plain ? raw(p.softnet) : 'n/a'}.`);
  L.push(`- Machine: ${machine(res)}; every process on it.`);
  L.push(end(res.part));
  return L.join('\n');
}

export const plot = () => null;
