// PgBouncer in transaction mode between the pools and PostgreSQL (issue 19, "PostgreSQL"):
// Debian's PgBouncer 1.18 does not carry named prepared statements from one server
// connection to another, so the pools run with TH_DB_PREPARE=0 (lib/db.c: unnamed
// statements only, no session SET). PgBouncer listens on BASE+45 (never its default :6432),
// with fewer server connections than workers so that transactions of different workers share
// them, and logs in to the stack's PostgreSQL with the role's scram password (its auth_file).
// A smoke of auth and community routes passes through it; with PgBouncer gone the pools
// answer 503, not 500.
// Client addresses: registrations from 127.53.x.y (lib/fixtures.mjs).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { PORT_BASE, VAR_DIR, run, until } from './lib/http.mjs';
import { show, assertError, assertStatus } from './lib/assert.mjs';
import { api, fixtures, uniq } from './lib/fixtures.mjs';
import { healthyRun } from './lib/stack.mjs';
import { sqlAt } from './lib/pgreplica.mjs';

const { newUser, community } = fixtures({ net: 53, slug: 'pgb', name: 'Bouncer' });

const BOUNCER_PORT = PORT_BASE + 45;
const DIR = path.join(VAR_DIR, 'pgbouncer');
const IS_ROOT = process.getuid() === 0;

async function restartPools(env) {
  for (const pool of ['auth', 'community']) {
    const r = await run('scripts/fcgi-pool', ['restart', pool], { env, timeoutMs: 60000 });
    assert.equal(r.code, 0, `scripts/fcgi-pool restart ${pool}:\n${r.stdout}\n${r.stderr}`);
    const { ok, last } = await healthyRun(pool);
    assert.ok(ok, `${pool} not healthy after the restart: ${last && show(last)}`);
  }
}

const listening = (port) => new Promise((resolve) => {
  const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
  s.on('error', () => resolve(false));
});

let bouncer;
let bouncerExited;
before(async () => {
  // PgBouncer refuses to run as root: as root it runs as the OS user postgres (setpriv, so
  // that the pid we hold is PgBouncer's own)
  mkdirSync(DIR, { recursive: true, mode: 0o700 });
  const password = readFileSync(path.join(VAR_DIR, 'keys', 'pg-townhall.secret'), 'utf8').trim();
  const ini = path.join(DIR, 'pgbouncer.ini');
  const users = path.join(DIR, 'userlist.txt');
  writeFileSync(users, `"townhall" "${password}"\n`, { mode: 0o600 });
  writeFileSync(ini, [
    '[databases]',
    `townhall = host=127.0.0.1 port=${PORT_BASE + 1} dbname=townhall`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${BOUNCER_PORT}`,
    'unix_socket_dir =',
    'auth_type = scram-sha-256',
    `auth_file = ${users}`,
    'pool_mode = transaction',
    // 6 workers (auth and community, 3 each) share 2 server connections
    'default_pool_size = 2',
    'max_client_conn = 50',
    `logfile = ${path.join(DIR, 'pgbouncer.log')}`,
    'ignore_startup_parameters = extra_float_digits',
    '',
  ].join('\n'), { mode: 0o600 });
  let cmd = 'pgbouncer';
  let args = [ini];
  if (IS_ROOT) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    for (const f of [DIR, ini, users]) chownSync(f, uid, gid);
    cmd = 'setpriv';
    args = ['--reuid', String(uid), '--regid', String(gid), '--clear-groups', '--', 'pgbouncer', ini];
  }
  bouncer = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  bouncer.stderr.on('data', (d) => { err += d; });
  bouncerExited = new Promise((resolve) => bouncer.on('exit', resolve));
  assert.ok(await until(() => listening(BOUNCER_PORT), { timeoutMs: 10000, intervalMs: 100 }),
    `pgbouncer does not listen on ${BOUNCER_PORT}: ${err}`);
  // the role logs in through it
  const q = await sqlAt(BOUNCER_PORT, 'SELECT 1');
  assert.equal(q.code, 0, `psql through pgbouncer: ${q.stderr}`);
  await restartPools({
    TH_WORKER_DB_CONNINFO: `host=127.0.0.1 port=${BOUNCER_PORT} dbname=townhall user=townhall `
      + `passfile=${path.join(VAR_DIR, 'keys', 'pgpass')}`,
    TH_DB_PREPARE: '0',
  });
}, { timeout: 120000 });
after(async () => {
  if (bouncer && bouncer.exitCode === null) {
    bouncer.kill('SIGTERM');
    await bouncerExited;
  }
  await restartPools({});
}, { timeout: 120000 });

describe('PgBouncer in transaction mode (TH_DB_PREPARE=0)', { timeout: 180000 }, () => {
  test('a smoke of auth and community routes passes through it', async () => {
    // several rounds: every worker's statements meet every server connection
    for (let round = 0; round < 3; round++) {
      const owner = await newUser('pgb');
      const member = await newUser('pgb');
      assertStatus(await api('POST', '/api/auth/login', null, { login: owner.username, password: owner.password }), 200, 'login:');
      assertStatus(await api('POST', '/api/auth/refresh', null, { refresh_token: owner.refresh }), 200, 'refresh:');
      assertStatus(await api('GET', '/api/auth/me', owner), 200, 'me:');
      const c = await community(owner, 'public', [member]);
      assertStatus(await api('GET', `/api/communities/${c.id}`, member), 200, 'community:');
      assertStatus(await api('GET', `/api/communities/${c.id}/members`, member), 200, 'members:');
      const word = uniq('bouncer').replace('-', '');
      const p = assertStatus(await api('POST', `/api/communities/${c.id}/posts`, owner, { title: 't', body: `hello ${word}` }), 201, 'post:').json;
      assertStatus(await api('PATCH', `/api/posts/${p.id}`, owner, { body: `edited ${word}` }), 200, 'patch:');
      const cm = assertStatus(await api('POST', `/api/posts/${p.id}/comments`, member, { body: 'a comment' }), 201, 'comment:').json;
      assertStatus(await api('PUT', `/api/posts/${p.id}/reactions/${encodeURIComponent('👍')}`, member), 204, 'reaction:');
      const got = assertStatus(await api('GET', `/api/posts/${p.id}`, member), 200, 'get post:');
      assert.equal(got.json.body, `edited ${word}`);
      const list = assertStatus(await api('GET', `/api/communities/${c.id}/posts`, member), 200, 'list:');
      assert.ok(list.json.items.some((x) => x.id === p.id), 'the post is not listed');
      const comments = assertStatus(await api('GET', `/api/posts/${p.id}/comments`, owner), 200, 'comments:');
      assert.equal(comments.json.items.length, 1);
      const found = assertStatus(await api('GET', `/api/communities/${c.id}/search?q=${word}`, member), 200, 'search:');
      assert.equal(found.json.items.length, 1, `search: ${found.text.slice(0, 300)}`);
      assertStatus(await api('DELETE', `/api/comments/${cm.id}`, member), 204, 'delete comment:');
      assertStatus(await api('POST', `/api/communities/${c.id}/bans`, owner, { user_id: member.id }), 201, 'ban:');
      assertStatus(await api('GET', '/api/communities', owner), 200, 'communities:');
    }
  });

  test('PgBouncer gone: 503 with Retry-After, not 500', async () => {
    const owner = await newUser('pgb');
    bouncer.kill('SIGTERM');
    await bouncerExited;
    for (let i = 0; i < 6; i++) {
      const r = await api('GET', '/api/communities', owner);
      assertError(r, 503, 'unavailable');
      assert.ok(Number(r.headers['retry-after']) >= 1, `no Retry-After: ${show(r)}`);
    }
  });
});
