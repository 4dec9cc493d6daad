// A streaming replica of the test stack's PostgreSQL, made in the test with pg_basebackup
// (tests/integration/pg*.test.mjs), and the superuser commands a failover test needs: pause
// replay (a lagging replica), promote, stop and start a server.
//
// As root, the servers and their tools run as the OS user postgres (as scripts/stack runs
// the stack's cluster); the superuser logs in on the unix socket only, by peer
// authentication (conf/postgres/pg_hba.conf.in, map "admin"). The replica's data directory
// and log live in the stack's var dir, so the run's teardown removes them.
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readFileSync, rmSync, chownSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { PORT_BASE, VAR_DIR, runProgram, until } from './http.mjs';

const PG_BIN = process.env.TH_PG_BIN || '/usr/lib/postgresql/15/bin';
const IS_ROOT = process.getuid() === 0;
export const PRIMARY_PORT = PORT_BASE + 1;
export const PRIMARY_DATA = path.join(VAR_DIR, 'pg', 'data');
const SOCKET_DIR = path.join(VAR_DIR, 'pg', 'run');
const pgUid = () => Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
const pgGid = () => Number(execFileSync('id', ['-g', 'postgres']).toString().trim());

// A program of PostgreSQL's as the cluster's OS user -> {code, stdout, stderr}
function asPg(prog, args, o = {}) {
  const file = path.join(PG_BIN, prog);
  return IS_ROOT ? runProgram('runuser', ['-u', 'postgres', '--', file, ...args], o) : runProgram(file, args, o);
}

// One SQL command as the superuser on the server of `port` (-At) -> stdout trimmed.
export async function adminSql(port, sql) {
  const r = await asPg('psql', ['-X', '-At', '-v', 'ON_ERROR_STOP=1', '-h', SOCKET_DIR, '-p', String(port),
    '-U', 'postgres', '-d', 'townhall', '-c', sql], { timeoutMs: 20000 });
  assert.equal(r.code, 0, `psql :${port} ${sql}: ${r.stderr}`);
  return r.stdout.trim();
}

// One SQL command as townhall over TCP (the stack's passfile) -> {code, stdout, stderr}
export function sqlAt(port, sql) {
  return runProgram('psql', ['-X', '-h', '127.0.0.1', '-p', String(port), '-U', 'townhall', '-d', 'townhall',
    '-At', '-v', 'ON_ERROR_STOP=1', '-c', sql], { timeoutMs: 20000 });
}

export const pgCtl = (data, ...args) => asPg('pg_ctl', ['-D', data, ...args], { timeoutMs: 60000 });

const ready = async (port) => (await runProgram(path.join(PG_BIN, 'pg_isready'),
  ['-q', '-h', '127.0.0.1', '-p', String(port), '-t', '1'])).code === 0;

// Start the server of `data` (its log: var/log/postgres-<name>.log) and wait until it
// accepts connections.
export async function startServer(data, port, name) {
  const log = path.join(VAR_DIR, 'log', `postgres-${name}.log`);
  if (!existsSync(log)) {
    appendFileSync(log, '');
    if (IS_ROOT) chownSync(log, pgUid(), pgGid());
  }
  const r = await pgCtl(data, 'start', '-l', log, '-w', '-t', '30');
  assert.equal(r.code, 0, `pg_ctl start ${data}: ${r.stderr}\n${readFileSync(log, 'utf8').slice(-2000)}`);
  assert.ok(await until(() => ready(port), { timeoutMs: 30000, intervalMs: 200 }), `postgres :${port} not ready`);
}

export async function stopServer(data, mode = 'fast') {
  const r = await pgCtl(data, 'stop', '-m', mode, '-w', '-t', '30');
  assert.equal(r.code, 0, `pg_ctl stop ${data}: ${r.stderr}`);
}

// A hot standby of the stack's primary on `port`, streaming; resolves its data directory.
// The primary's pg_hba.conf gains a line for the superuser's replication connection over the
// socket (scripts/stack rewrites the file at its next up; connections made stay).
export async function startReplica(port, name = `replica-${port}`) {
  const data = path.join(VAR_DIR, 'pg', name);
  const hba = path.join(PRIMARY_DATA, 'pg_hba.conf');
  const line = 'local   replication postgres               peer map=admin\n';
  if (!readFileSync(hba, 'utf8').includes(line)) {
    appendFileSync(hba, line);
    const r = await pgCtl(PRIMARY_DATA, 'reload');
    assert.equal(r.code, 0, `pg_ctl reload: ${r.stderr}`);
  }
  rmSync(data, { recursive: true, force: true });
  mkdirSync(data, { mode: 0o700 });
  if (IS_ROOT) chownSync(data, pgUid(), pgGid());
  // -R: standby.signal + primary_conninfo (the socket, as postgres); -c fast: no wait for
  // a checkpoint
  const b = await asPg('pg_basebackup', ['-h', SOCKET_DIR, '-p', String(PRIMARY_PORT), '-U', 'postgres',
    '-D', data, '-R', '-X', 'stream', '-c', 'fast'], { timeoutMs: 120000 });
  assert.equal(b.code, 0, `pg_basebackup: ${b.stderr}`);
  // postgresql.auto.conf is read last: the port wins over the copied townhall.conf
  appendFileSync(path.join(data, 'postgresql.auto.conf'), `port = ${port}\nhot_standby_feedback = on\n`);
  await startServer(data, port, name);
  // streaming: the primary lists it
  assert.ok(await until(async () => Number(await adminSql(PRIMARY_PORT,
    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")) > 0,
  { timeoutMs: 30000, intervalMs: 250 }), 'the replica does not stream');
  return data;
}

// Whether the replica of `port` has replayed everything the primary had written when asked.
export async function caughtUp(port) {
  const lsn = await adminSql(PRIMARY_PORT, 'SELECT pg_current_wal_lsn()');
  return until(async () => (await adminSql(port, `SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn`)) === 't',
    { timeoutMs: 20000, intervalMs: 100 });
}

export const pauseReplay = (port) => adminSql(port, 'SELECT pg_wal_replay_pause()');
export const resumeReplay = (port) => adminSql(port, 'SELECT pg_wal_replay_resume()');

// Remove a replica for good (stopped first when it runs).
export async function dropReplica(data) {
  if (existsSync(path.join(data, 'postmaster.pid'))) await pgCtl(data, 'stop', '-m', 'immediate', '-w', '-t', '30');
  rmSync(data, { recursive: true, force: true });
}
