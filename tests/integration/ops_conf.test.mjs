// The configuration an operator installs (conf/systemd, conf/prometheus, conf/grafana) checked
// against the real tools and this running stack: systemd accepts every unit with the built
// binaries in place; Prometheus accepts the scrape config and the rules, the rules' own unit
// tests pass, and a Prometheus started on the rendered config scrapes every Townhall endpoint
// of the stack; every th_* metric the rules and the dashboard name is one the stack serves.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, PORT_BASE, BIN_DIR, runProgram, until, sleep } from './lib/http.mjs';

const CONF = path.join(ROOT, 'conf');
const PROM_PORT = PORT_BASE + 35; // outside the stack's BASE..BASE+30

let work;
before(() => { work = mkdtempSync(path.join(os.tmpdir(), 'th-ops-')); });
after(() => { if (work) rmSync(work, { recursive: true, force: true }); });

// th_* metric names in a PromQL text (th_x_bucket/_sum/_count are the histogram th_x)
function metricNames(text) {
  return new Set([...text.matchAll(/\bth_[a-z0-9_]+/g)].map((m) => m[0]));
}

describe('systemd units', () => {
  test('every unit verifies with the binaries where the units name them', async () => {
    const dir = path.join(work, 'systemd');
    await runProgram('mkdir', ['-p', dir]);
    const units = readdirSync(path.join(CONF, 'systemd'));
    assert.ok(units.length >= 6, `units: ${units}`);
    for (const u of units) {
      const text = readFileSync(path.join(CONF, 'systemd', u), 'utf8');
      // the units name /opt/townhall/bin; here the build's binaries stand there
      writeFileSync(path.join(dir, u), text.replaceAll('/opt/townhall/bin', BIN_DIR));
    }
    const instances = {
      'townhall-pool@.service': ['auth', 'community', 'realtime', 'media'],
      'townhall-broker@.service': ['hub', 'e0'],
      'townhall-bridge@.service': ['1', '2'],
      'townhall-mailer@.service': ['1', '2'],
    };
    const names = [];
    for (const u of units) {
      if (instances[u]) for (const i of instances[u]) names.push(u.replace('@.', `@${i}.`));
      else names.push(u);
    }
    for (const n of names) {
      const r = await runProgram('systemd-analyze', ['verify', path.join(dir, n)], { timeoutMs: 30000 });
      // verify exits 0 on mere warnings (an unknown key is ignored, not refused): any word is a fault
      assert.equal(r.code, 0, `${n}: ${r.stderr}`);
      assert.equal(r.stderr.trim() + r.stdout.trim(), '', `${n}: systemd-analyze verify says:\n${r.stderr}${r.stdout}`);
    }
    // each pool unit runs the pool's own binary
    for (const p of instances['townhall-pool@.service']) {
      const r = await runProgram('test', ['-x', path.join(BIN_DIR, `th-${p}`)]);
      assert.equal(r.code, 0, `th-${p} missing`);
    }
  });
});

describe('prometheus', () => {
  let prom;
  let rendered;
  after(async () => {
    if (prom && prom.exitCode === null) {
      prom.kill('SIGTERM');
      await until(() => prom.exitCode !== null || prom.signalCode !== null, { timeoutMs: 10000 });
    }
  });

  test('scrape config and rules pass promtool, and the rules\' unit tests pass', async () => {
    const dir = path.join(work, 'prom');
    await runProgram('mkdir', ['-p', dir]);
    rendered = readFileSync(path.join(CONF, 'prometheus', 'prometheus.yml.in'), 'utf8')
      .replaceAll('@PORT_HTTP@', String(PORT_BASE))
      .replaceAll('@PORT_MQTT_WS@', String(PORT_BASE + 4))
      .replaceAll('@HOSTNAME@', 'test');
    assert.doesNotMatch(rendered, /@[A-Z_]+@/, 'a placeholder is left unrendered');
    writeFileSync(path.join(dir, 'prometheus.yml'), rendered);
    for (const f of ['townhall-rules.yml', 'townhall-rules.test.yml']) {
      writeFileSync(path.join(dir, f), readFileSync(path.join(CONF, 'prometheus', f)));
    }
    let r = await runProgram('promtool', ['check', 'config', path.join(dir, 'prometheus.yml')]);
    assert.equal(r.code, 0, `promtool check config:\n${r.stdout}${r.stderr}`);
    r = await runProgram('promtool', ['test', 'rules', path.join(dir, 'townhall-rules.test.yml')]);
    assert.equal(r.code, 0, `promtool test rules:\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /SUCCESS/);
  });

  test('a Prometheus on the rendered config scrapes every Townhall endpoint of the stack', async () => {
    const dir = path.join(work, 'prom');
    // the same config with a 1 s interval, so the test waits seconds, not minutes
    writeFileSync(path.join(dir, 'fast.yml'), rendered
      .replace(/scrape_interval: 15s/, 'scrape_interval: 1s')
      .replace(/scrape_timeout: 5s/, 'scrape_timeout: 1s'));
    prom = spawn('prometheus', [
      `--config.file=${path.join(dir, 'fast.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${PROM_PORT}`,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    prom.stderr.on('data', (d) => { log = (log + d).slice(-8000); });
    const api = async (q) => {
      try {
        const res = await fetch(`http://127.0.0.1:${PROM_PORT}/api/v1/${q}`, { signal: AbortSignal.timeout(3000) });
        return res.ok ? (await res.json()).data : null;
      } catch { return null; }
    };
    // every target of a townhall-* job up (the exporters' jobs are not part of the test stack)
    const targets = await until(async () => {
      const d = await api('targets');
      if (!d) return null;
      const ours = d.activeTargets.filter((t) => t.labels.job.startsWith('townhall-'));
      return ours.length === 8 && ours.every((t) => t.health === 'up') ? ours : null;
    }, { timeoutMs: 40000, intervalMs: 500 });
    if (!targets) {
      const d = await api('targets');
      assert.fail(`targets not all up: ${JSON.stringify(d?.activeTargets?.map((t) => [t.scrapeUrl, t.health, t.lastError]))}\n${log}`);
    }
    const urls = targets.map((t) => new URL(t.scrapeUrl).pathname).sort();
    assert.deepEqual(urls, ['/metrics', '/metrics/auth', '/metrics/bridge', '/metrics/community',
      '/metrics/mailer', '/metrics/media', '/metrics/pusher', '/metrics/realtime']);

    // every th_* name in the rules and the dashboard is a series Prometheus now holds
    await sleep(1500);
    const served = new Set((await api('label/__name__/values')) || []);
    const named = new Set([
      ...metricNames(readFileSync(path.join(CONF, 'prometheus', 'townhall-rules.yml'), 'utf8')),
      ...metricNames(readFileSync(path.join(CONF, 'grafana', 'townhall-dashboard.json'), 'utf8')),
    ]);
    assert.ok(named.size >= 10, `names found: ${[...named]}`);
    const missing = [...named].filter((n) => !served.has(n)
      && !served.has(`${n}_bucket`) && !(n.endsWith('_bucket') && served.has(n)));
    assert.deepEqual(missing, [], `named in the rules or the dashboard but served by no endpoint: ${missing}`);
  });
});

describe('grafana dashboard', () => {
  test('is a dashboard whose every panel queries the chosen Prometheus', () => {
    const d = JSON.parse(readFileSync(path.join(CONF, 'grafana', 'townhall-dashboard.json'), 'utf8'));
    assert.equal(d.uid, 'townhall-overview');
    const graphs = d.panels.filter((p) => p.type !== 'row');
    assert.ok(graphs.length >= 10);
    const ids = new Set(d.panels.map((p) => p.id));
    assert.equal(ids.size, d.panels.length, 'panel ids are unique');
    for (const p of graphs) {
      assert.equal(p.datasource.uid, '${datasource}', p.title);
      assert.ok(p.targets.length >= 1, p.title);
      for (const t of p.targets) assert.ok(t.expr && t.refId, p.title);
    }
    assert.ok(d.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource'));
  });
});
