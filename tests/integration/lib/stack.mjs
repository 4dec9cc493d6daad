// The stack's own servers, reached directly rather than through nginx: psql on PostgreSQL
// (TH_PORT_BASE+1), redis-cli on Redis (+2), LISTEN townhall_events, and bringing the stack
// back (`scripts/stack up`) after a test stopped part of it.
// Credentials: both servers refuse unauthenticated clients (docs/stack-contract.md,
// "Credentials"). psql logs in as townhall with the password of the stack's passfile
// (PGPASSFILE, set below for every psql this process spawns), redis-cli with the stack's
// Redis password (REDISCLI_AUTH, given to each redis() call only).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  PORT_BASE, APPS, VAR_DIR, get, run, runProgram, until, request, parseProm, readPid, waitGone, LOCAL_ONLY, sleep,
} from './http.mjs';
import { show } from './assert.mjs';

const PG_PORT = PORT_BASE + 1;
const REDIS_PORT = PORT_BASE + 2;

// the stack's passfile (scripts/lib/common.sh th_keys): libpq reads it at each connect
export const PGPASSFILE = path.join(VAR_DIR, 'keys', 'pgpass');
if (!process.env.PGPASSFILE) process.env.PGPASSFILE = PGPASSFILE;
// the stack's Redis password, read at each call (the keys exist once the stack is up)
export const redisPassword = () => readFileSync(path.join(VAR_DIR, 'keys', 'redis.secret'), 'utf8').trim();

// psql's connection to the stack's database, for a spawn() of one's own (e.g. a transaction
// that holds a lock while the test acts).
export const PSQL_CONN = ['-X', '-h', '127.0.0.1', '-p', String(PG_PORT), '-U', 'townhall', 'townhall'];

// One SQL command (-At: unaligned, tuples only) -> {code, stdout, stderr}; never rejects.
// ON_ERROR_STOP: a failing statement fails the run (a non-zero code), whatever follows it.
export function psql(sql, { timeoutMs = 20000 } = {}) {
  if (LOCAL_ONLY) return Promise.resolve({ code: 'remote', stdout: '', stderr: `psql: ${LOCAL_ONLY}` });
  return runProgram('psql', [...PSQL_CONN, '-At', '-v', 'ON_ERROR_STOP=1', '-c', sql], { timeoutMs });
}

// A transaction of the test's own that holds refresh_tokens in SHARE mode until release():
// every statement that starts a session (it inserts the session and its first refresh token
// in one) or refreshes one waits on it, after the sign-in checked its credentials, for as long
// as the test needs to run something in between (a reset, a password change, a suspension:
// sessions.test.mjs, oidc.test.mjs). -> {waiting(what, n), release()}
export async function holdSessionStarts() {
  const holder = spawn('psql', [...PSQL_CONN, '-q', '-v', 'ON_ERROR_STOP=1'], { stdio: ['pipe', 'ignore', 'ignore'] });
  const done = new Promise((resolve) => holder.on('close', resolve));
  holder.stdin.write('BEGIN;\nLOCK TABLE refresh_tokens IN SHARE MODE;\n');
  const count = async (sql) => {
    const r = await psql(sql);
    return r.code === 0 ? Number(r.stdout.trim()) : 0;
  };
  const held = await until(() => count("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
    + "WHERE c.relname = 'refresh_tokens' AND l.mode = 'ShareLock' AND l.granted"), { timeoutMs: 5000, intervalMs: 50 });
  assert.ok(held, 'the test\'s transaction never held refresh_tokens');
  return {
    // until n statements whose text holds `what` wait on a lock
    async waiting(what, n = 1) {
      const ok = await until(async () => (await count('SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = '
        + `'Lock' AND pid <> pg_backend_pid() AND position('${what}' in query) > 0`)) >= n, { timeoutMs: 5000, intervalMs: 50 });
      assert.ok(ok, `no statement with "${what}" waits on the held lock`);
    },
    async release() {
      holder.stdin.end('COMMIT;\n');
      const killer = setTimeout(() => holder.kill('SIGKILL'), 10000);
      await done;
      clearTimeout(killer);
    },
  };
}

// The Redis the services use: the stack's; with TH_TEST_REDIS_CLUSTER=1 (tests/integration/run)
// the Cluster's first node, with -c to follow MOVED/ASK, and what one node cannot do done on
// every master (clusterRedis below); with TH_TEST_REDIS_SENTINEL=1 the master the sentinels
// name now.
const hostPort = (a) => ['-h', a.replace(/:\d+$/, ''), '-p', a.replace(/^.*:/, '')];
const SENTINEL_ADDR = (process.env.TH_REDIS_SENTINELS || '').split(',')[0];

// redis-cli --raw on a sentinel of TH_REDIS_SENTINELS -> {code, stdout, stderr}
export const sentinel = (...args) => runProgram('redis-cli', [...hostPort(SENTINEL_ADDR), '--raw', ...args],
  { env: { REDISCLI_AUTH: redisPassword() } });

// the port of the master the sentinels name now (TH_TEST_REDIS_SENTINEL=1)
export async function sentinelMaster() {
  const r = await sentinel('SENTINEL', 'get-master-addr-by-name', 'townhall');
  assert.equal(r.code, 0, `SENTINEL get-master-addr-by-name: ${r.stderr}`);
  return Number(r.stdout.trim().split('\n')[1]);
}

async function redisArgs() {
  if (process.env.TH_REDIS_CLUSTER) return ['-c', ...hostPort(process.env.TH_REDIS_CLUSTER.split(',')[0])];
  if (SENTINEL_ADDR) return ['-h', '127.0.0.1', '-p', String(await sentinelMaster())];
  return ['-h', '127.0.0.1', '-p', String(REDIS_PORT)];
}

// redis-cli --raw with these connection arguments -> its output without the last newline
// (exit 0 asserted)
const redisCli = (conn, args) => runProgram('redis-cli', [...conn, '--raw', ...args],
  { env: { REDISCLI_AUTH: redisPassword() } })
  .then((r) => { assert.equal(r.code, 0, `redis-cli ${args.join(' ')}: ${r.stderr}`); return r.stdout.replace(/\n$/, ''); });

// host:port of every master of the Cluster now (CLUSTER NODES; failed ones left out)
async function clusterMasters() {
  const out = await redisCli(await redisArgs(), ['CLUSTER', 'NODES']);
  return out.split('\n').map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 8 && /master/.test(f[2]) && !/fail/.test(f[2]))
    .map((f) => f[1].replace(/@.*/, ''));
}

// On a Cluster, what one node cannot answer for all: FLUSHALL/FLUSHDB and --scan on every
// master (the keys live on all of them), and EXISTS/DEL/UNLINK of several keys one key at a
// time (keys of several slots: CROSSSLOT), summed. undefined: a command -c handles as is.
async function clusterRedis(args) {
  const cmd = String(args[0]).toUpperCase();
  if (cmd === 'FLUSHALL' || cmd === 'FLUSHDB' || cmd === '--SCAN') {
    const outs = [];
    for (const node of await clusterMasters()) outs.push(await redisCli(hostPort(node), args));
    if (cmd === '--SCAN') return outs.filter(Boolean).join('\n');
    assert.ok(outs.length > 0 && outs.every((o) => o === 'OK'), `${cmd} on every master: ${outs.join(' ')}`);
    return 'OK';
  }
  if (['EXISTS', 'DEL', 'UNLINK'].includes(cmd) && args.length > 2) {
    let n = 0;
    for (const key of args.slice(1)) n += Number(await redisCli(await redisArgs(), [args[0], key]));
    return String(n);
  }
  return undefined;
}

// redis-cli --raw on the services' Redis -> its output without the last newline (exit 0 asserted)
export async function redis(...args) {
  assert.ok(!LOCAL_ONLY, `redis: ${LOCAL_ONLY}`);
  if (process.env.TH_REDIS_CLUSTER) {
    const out = await clusterRedis(args);
    if (out !== undefined) return out;
  }
  return redisCli(await redisArgs(), args);
}

// Redis MONITOR on every server the services' keys live on (each master of a Cluster), until
// stop() -> the commands seen, one line each ('<time> [<db> <addr>] "CMD" "arg" ...'). Resolves
// once every monitor has answered OK, so nothing sent after it is missed.
export async function redisMonitor() {
  assert.ok(!LOCAL_ONLY, `redisMonitor: ${LOCAL_ONLY}`);
  const conns = process.env.TH_REDIS_CLUSTER ? (await clusterMasters()).map(hostPort) : [await redisArgs()];
  const mons = await Promise.all(conns.map((conn) => new Promise((resolve, reject) => {
    const child = spawn('redis-cli', [...conn, 'MONITOR'], {
      stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, REDISCLI_AUTH: redisPassword() },
    });
    let out = '';
    const t = setTimeout(() => { child.kill(); reject(new Error(`redis-cli MONITOR: no OK (${out})`)); }, 5000);
    child.stdout.on('data', (d) => {
      out += d;
      if (/^OK$/m.test(out)) { clearTimeout(t); resolve({ child, text: () => out }); }
    });
    child.on('error', (e) => { clearTimeout(t); reject(e); });
  })));
  return {
    async stop() {
      await sleep(200); // what the server sent last reaches the pipe
      for (const m of mons) m.child.kill();
      return mons.flatMap((m) => m.text().split('\n').filter((l) => l.includes('"')));
    },
  };
}

// LISTEN townhall_events for `seconds` in psql; done resolves with the parsed payloads
// (psql prints one "Asynchronous notification ..." line per event) and psql's output.
export function listen(seconds) {
  const child = spawn('psql', [...PSQL_CONN,
    '-c', 'LISTEN townhall_events', '-c', `SELECT pg_sleep(${seconds})`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const done = new Promise((resolve) => child.on('close', () => {
    const events = [];
    for (const m of out.matchAll(/Asynchronous notification "townhall_events" with payload "(.*)" received/g)) {
      events.push(JSON.parse(m[1]));
    }
    resolve({ events, out });
  }));
  return { done, child };
}
// true once the psql session of `listen` is in its pg_sleep (its LISTEN is active)
export async function listening() {
  const r = await runProgram('psql', [...PSQL_CONN, '-At',
    '-c', "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(%' AND state = 'active'"]);
  return r.code === 0 && Number(r.stdout.trim()) > 0;
}
// listen() around fn(): {events, v} where v is what fn returned
export async function withEvents(seconds, fn) {
  const l = listen(seconds);
  assert.ok(await until(listening, { timeoutMs: 4000, intervalMs: 50 }), 'psql LISTEN did not start');
  const v = await fn();
  const { events } = await l.done;
  return { events, v };
}

// `scripts/stack up` (idempotent: starts what is not running), exit 0 asserted.
export async function stackUp() {
  const up = await run('scripts/stack', ['up']);
  assert.equal(up.code, 0, `scripts/stack up failed:\n${up.stdout}\n${up.stderr}`);
  return up;
}

// Whether `app` answers a run of n consecutive health 200s within 20 s: a pool's workers
// take requests in turn, so enough of them in a row reach every worker. statusOk: the
// body's status must also be "ok" (a 200 with a degraded check would not do).
// -> {ok, last} (last: the last response, for a failure message)
export async function healthyRun(app, { n = 9, statusOk = false } = {}) {
  let last;
  const ok = await until(async () => {
    for (let i = 0; i < n; i++) {
      last = await get(`/api/${app}/health`);
      if (last.status !== 200 || (statusOk && last.json?.status !== 'ok')) return false;
    }
    return true;
  }, { timeoutMs: 20000, intervalMs: 250 });
  return { ok, last };
}

// Every worker of every app back after a dependency came back: workers reconnect by
// themselves, with a backoff (up to 5 s in lib/db.c and lib/cache.c), so within a bound each
// app answers a run of 9 consecutive health 200s (3 workers a pool). what: in the message.
export async function appsBack(what, { statusOk = false } = {}) {
  for (const app of APPS) {
    const { ok, last } = await healthyRun(app, { statusOk });
    assert.ok(ok, `${app} health not back ${what}: ${last && show(last)}`);
  }
}

// GET /metrics/<pool> (from 127.0.0.1, 200 asserted) -> {name: value summed over labels}
export async function poolMetrics(pool) {
  const r = await request('GET', `/metrics/${pool}`);
  assert.equal(r.status, 200, `/metrics/${pool}: ${show(r)}`);
  const out = {};
  for (const s of parseProm(r.text)) out[s.name] = (out[s.name] ?? 0) + s.value;
  return out;
}
export const metric = (m, name) => m[name] ?? 0;

// --- the real-time tier: a hub broker and TH_MQTT_EDGES edge brokers (scripts/stack) ---------
// Users' connections, and so their limits (TH_MQTT_*, TH_RL_MSG_*), presence and kicks, live on
// the edges; th-bridge and its persistent session on the hub.
export const EDGES = Number(process.env.TH_MQTT_EDGES || 2);
export const HUB_PORT = PORT_BASE + 3;
export const edgePort = (i) => PORT_BASE + 10 + i;
export const edgeUrl = (i) => `mqtt://127.0.0.1:${edgePort(i)}`;
export const HUB_URL = `mqtt://127.0.0.1:${HUB_PORT}`;
// 'hub', 'e0', 'e1', ...
export const BROKERS = ['hub', ...Array.from({ length: EDGES }, (_, i) => `e${i}`)];
export const brokerPid = (name) => readPid(`run/mosquitto-${name}.pid`);
export const brokerLog = (name) => path.join(VAR_DIR, 'log', `mosquitto-${name}.log`);
// the persistence file (the hub's holds th-bridge's session)
export const brokerDb = (name) => path.join(VAR_DIR, 'mosquitto', name, 'mosquitto.db');

// Stop one broker with `signal` (SIGKILL: a crash) and wait until it is gone -> its pid.
export async function killBroker(name, signal = 'SIGKILL') {
  const pid = brokerPid(name);
  process.kill(pid, signal);
  assert.ok(await waitGone(pid, 10000), `mosquitto-${name} (pid ${pid}) still alive after ${signal}`);
  return pid;
}

// Start what is not running (`scripts/stack up`: a hub that comes back waits for every edge's
// bridge to reconnect, a new edge for its own) and check that `name` runs under a new pid when
// `oldPid` is given.
export async function startBroker(name, oldPid) {
  await stackUp();
  if (oldPid !== undefined) assert.notEqual(brokerPid(name), oldPid, `mosquitto-${name} was not restarted`);
}

// Restart every broker (SIGTERM: each saves its persistence file), e.g. so that they read
// changed TH_* limits from this process's environment.
export async function restartBrokers() {
  for (const name of [...BROKERS].reverse()) await killBroker(name, 'SIGTERM');
  await stackUp();
}
