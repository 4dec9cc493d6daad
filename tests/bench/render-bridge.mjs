// The bridge part's section: rate steps through the bridge until one does not keep up,
// a closed-loop window run, the broker alone in the same run, the history counted.
import { scenarios } from './scenarios.mjs';
import { evaluate, verdictText, boundText } from './verdict.mjs';
import { records, ratio, f0, f2, raw } from './stats.mjs';
import { head, end, machine, targetsLine } from './section.mjs';
import { keepsUp } from './keeps-up.mjs';

// each run's step/max record with its CPU (% of one core over the run) beside it
function runs(res, name, tag) {
  return (res.tools[name] ?? []).flatMap((lines) => {
    const c = lines.find((x) => x.tag === 'cpu');
    const pct = (t) => (c && c.ms > 0 ? (t * 100) / c.hz / (c.ms / 1000) : NaN);
    return lines.filter((x) => x.tag === tag).map((x) => ({
      ...x,
      cpu_bridge: pct(c?.bridge_ticks), cpu_pg: pct(c?.pg_ticks), cpu_broker: pct(c?.broker_ticks), cpu_load: pct(c?.load_ticks),
    }));
  });
}

export function figures(res) {
  const steps = runs(res, 'steps', 'step').map((x) => ({ ...x, keeps: keepsUp(x) }));
  const broker = runs(res, 'broker', 'step').map((x) => ({ ...x, keeps: keepsUp(x) }));
  const win = runs(res, 'window', 'max')[0] ?? {};
  const bwin = runs(res, 'brokerwin', 'max')[0] ?? {};
  const best = steps.filter((x) => x.keeps).reduce((a, x) => Math.max(a, Number(x.rate)), 0);
  const bestB = broker.filter((x) => x.keeps).reduce((a, x) => Math.max(a, Number(x.rate)), 0);
  const sent = ['warmup', 'steps', 'window'].reduce((n, t) => n + records(res.tools[t], 'total').reduce((k, x) => k + Number(x.sent || 0), 0), 0);
  const rows = Number(res.facts.messages_rows), dist = Number(res.facts.messages_distinct);
  const rates = String(res.knobs.bridge_rates).split(',').map(Number);
  const last = steps.at(-1);
  const skipped = last && !last.keeps ? rates.filter((r) => r > Number(last.rate)) : [];
  const m = {
    best,
    history: rows === sent && dist === rows ? 1 : 0,
    closed_ratio: ratio(Number(win.persisted_rate), Number(bwin.done_rate)),
  };
  const goals = evaluate(scenarios.bridge.goals, m);
  return { steps, broker, win, bwin, best, bestB, sent, rows, dist, skipped, m, goals };
}

export function section(res, plotRef) {
  const F = figures(res);
  const { steps, broker, win, bwin, best, bestB, sent, rows, dist, skipped, m, goals } = F;
  const g = Object.fromEntries(goals.map((x) => [x.metric, x]));
  const k = res.knobs, s = res.settings, f = res.facts;
  const low = steps[0] ?? {};
  const at = steps.find((x) => Number(x.rate) === best) ?? low;
  const c0 = (x) => f0(x);
  const L = head(res, 'Bridge: sustained persistence rate, the broker alone, publish → stored latency');
  L.push('| measure | value | target | result |', '|---|---:|---:|---|');
  L.push(`| highest offered rate the bridge persisted without growing lag | ${best} msg/s | ${boundText(g.best, 'msg/s')} | ${verdictText(g.best)} |`);
  L.push(`| bridge, closed loop (window ${k.bridge_window} messages not yet receipted) | ${f0(Number(win.persisted_rate))} msg/s persisted | report | — |`);
  L.push(`| broker alone: highest offered rate one QoS 1 subscriber received without growing backlog | ${bestB} msg/s | report | — |`);
  L.push(`| broker alone, closed loop (window ${k.bridge_window} messages not yet delivered) | ${f0(Number(bwin.done_rate))} msg/s delivered | report | — |`);
  L.push(`| bridge / broker alone (closed loop) | ${f2(m.closed_ratio)} | report | — |`);
  for (const x of [low, at]) {
    L.push(`| publish → stored receipt at ${raw(x.rate)} msg/s: p50 · p99 · max | ${raw(x.p50_ms)} · ${raw(x.p99_ms)} · ${raw(x.max_ms)} ms | report | — |`);
  }
  L.push(`| rows in messages / messages sent through the bridge (distinct ids) | ${rows} / ${sent} (${dist}) | equal | ${verdictText(g.history)} |`);
  L.push('');
  L.push('| through | offered msg/s | sent msg/s | persisted (delivered) msg/s during the step | backlog at mid · end | th_lag_ms max · end | avg batch | caught up after | p50 ms | p99 ms | max ms | CPU % bridge · PostgreSQL · broker · load gen | keeps up |');
  L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|');
  const cpu4 = (x) => `${c0(x.cpu_bridge)} · ${c0(x.cpu_pg)} · ${c0(x.cpu_broker)} · ${c0(x.cpu_load)}`;
  const cpu2 = (x) => `– · – · ${c0(x.cpu_broker)} · ${c0(x.cpu_load)}`;
  const lat = (x) => `${raw(x.catchup_ms)} ms | ${raw(x.p50_ms)} | ${raw(x.p99_ms)} | ${raw(x.max_ms)}`;
  for (const x of steps) {
    L.push(`| bridge | ${x.rate} | ${f0(Number(x.send_rate))} | ${f0(Number(x.persisted_rate))} | ${x.backlog_mid} · ${x.backlog_end} | ${raw(x.lag_ms_max)} · ${raw(x.lag_ms_end)} | ${raw(x.avg_batch)} | ${lat(x)} | ${cpu4(x)} | ${x.keeps ? 'yes' : '**no**'} |`);
  }
  L.push(`| bridge, window ${k.bridge_window} | — | ${f0(Number(win.send_rate))} | ${f0(Number(win.persisted_rate))} | — | ${raw(win.lag_ms_max)} · ${raw(win.lag_ms_end)} | ${raw(win.avg_batch)} | ${lat(win)} | ${cpu4(win)} | — |`);
  for (const x of broker) {
    L.push(`| broker alone | ${x.rate} | ${f0(Number(x.send_rate))} | ${f0(Number(x.done_rate))} | ${x.backlog_mid} · ${x.backlog_end} | — | — | ${lat(x)} | ${cpu2(x)} | ${x.keeps ? 'yes' : '**no**'} |`);
  }
  L.push(`| broker alone, window ${k.bridge_window} | — | ${f0(Number(bwin.send_rate))} | ${f0(Number(bwin.done_rate))} | — | — | — | ${lat(bwin)} | ${cpu2(bwin)} | — |`);
  if (plotRef) L.push('', `![offered, sent and persisted msg/s per step](${plotRef})`);
  const rule = scenarios.bridge.keepsUp;
  L.push('');
  L.push(`- Load generator: \`tests/load/bridge_load.c\` (\`th-bridge_load\`): MQTT 3.1.1 over TCP to the broker's listener on BASE+3, one epoll thread, on the same machine. ${k.bridge_users} users registered through the API, each a member of one of ${k.bridge_channels} public communities, each publishing as itself (its access token as password, so the plugin's ACL and chat-payload checks run on every message) to \`chat/<#general of its community>/<its uid>\`, QoS 1, round-robin over the users; payload \`{"id": uuid, "body": "bench <seq> xxx…"}\` (~170 bytes), the uuid carrying a run nonce and the sequence number.`);
  L.push(`- Steps: \`th-bridge_load -S receipts -M BASE -r RATE -d ${k.bridge_step} -g ${k.bridge_gap}\` for RATE in ${k.bridge_rates}, one process per step after a ${k.warmup} s warm-up at 2000 msg/s: open loop for ${k.bridge_step} s (send time = scheduled time), then up to ${k.bridge_gap} s until every message is receipted. "Persisted during the step" and the backlog (messages sent − \`th_messages_persisted_total\` increase since the step began, read from \`GET /metrics/bridge\` once a second and at mid/end) come from the bridge's metrics; \`th_lag_ms\` is the bridge's own (oldest message of the last batch: receive → commit), which does not see messages still queued in the broker — hence the backlog. A step **keeps up** when it actually sent ≥ ${rule.sent * 100} % of the offered rate, the backlog at its end is ≤ ${rule.backlogEnd} s worth of the rate, and the backlog grew by ≤ ${rule.backlogGrowth} s worth over its second half.`);
  L.push(`- Latency: publish → \`stored\` receipt: a service-account subscriber on \`user/+/inbox\` (QoS 1) takes the receipt the bridge publishes per sender right after each commit as "visible in history"; every message of the step is timed (1 µs histogram, nearest rank). The window row: for ${k.bridge_step} s at most ${k.bridge_window} messages sent and not yet receipted (closed loop: what the bridge persists flat out).`);
  L.push(`- Broker alone, same run: th-bridge stopped (SIGTERM via its pid file) and its persistent session discarded (\`th-bridge_load -K <client id>\`: a clean-session CONNECT under its id; otherwise the broker queues every chat message for the offline session), then \`th-bridge_load -S sub -r RATE -d ${k.bridge_step} -g ${k.bridge_gap}\` with the same publishers and one plain QoS 1 subscriber (service account, \`chat/+/+\`, clean session) instead of the bridge; "delivered" = messages that reached it. Then \`scripts/stack up\` started the bridge again.`);
  L.push(`- History: \`SELECT count(*), count(DISTINCT id) FROM messages\` over the bench channels after the bridge runs: ${rows} rows, ${dist} distinct, ${sent} messages sent (warm-up, steps and window run).`);
  L.push(`- Machine: ${machine(res)}; the load generator, broker, bridge, PostgreSQL, Redis and nginx share it. Before measuring: ${f.quiet}. Load average (1 min) when measuring began: ${raw(f.loadavg_measuring)}; at the end: ${raw(f.loadavg_end)}.`);
  L.push(`- Settings: TH_BRIDGE_BATCH_MAX=${s.TH_BRIDGE_BATCH_MAX}, TH_BRIDGE_BATCH_WAIT_MS=${s.TH_BRIDGE_BATCH_WAIT_MS}, one bridge (shared subscription \`$share/bridge/chat/+/+\`, MQTT 5 receive maximum 3 × batch max, at most 5000: one batch commits while the next is read, PUBACKs held until their commit), mosquitto ${s.mosquitto} with conf/mosquitto as \`scripts/stack\` renders it (max_inflight_messages 100 for the v3.1.1 subscriber), PostgreSQL as \`scripts/stack\` configures it, TH_LOG_LEVEL=${s.TH_LOG_LEVEL}, binaries ${s.binaries}.`);
  L.push(`- Target: ≥ 50,000 msg/s persisted without growing lag on this 2-core machine: ${verdictText(g.best)} (highest step that kept up: ${best} msg/s; steps ${k.bridge_rates}${skipped.length ? `; not run after the first step that did not keep up: ${skipped.join(',')}` : ''}). Every goal: ${targetsLine(goals)}.`);
  L.push(end(res.part));
  return L.join('\n');
}

// throughput per step: offered, sent and persisted (delivered) msg/s, bridge and broker
export const plot = (res) => {
  const { steps, broker } = figures(res);
  const cat = (who, x, done) => ({
    label: `${who} ${x.rate}/s`,
    values: { offered: Number(x.rate), sent: Number(x.send_rate), done: Number(x[done]) },
  });
  return {
    name: 'steps',
    title: 'Bridge: msg/s per step',
    categories: [...steps.map((x) => cat('bridge', x, 'persisted_rate')), ...broker.map((x) => cat('broker alone', x, 'done_rate'))],
    series: [{ key: 'offered', label: 'offered' }, { key: 'sent', label: 'sent' }, { key: 'done', label: 'persisted / delivered' }],
    unit: 'msg/s',
  };
};
