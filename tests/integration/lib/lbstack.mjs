// Moving the stack's pools between unix sockets and TCP (TH_FCGI_BIND) for the lb* tests:
// the pools and nginx are stopped and `scripts/stack up` starts them again with the given
// setting (nginx's upstreams are rendered at its start). Everything else keeps running.
import assert from 'node:assert/strict';
import {
  PORT_BASE, run, readPid, isAlive, waitGone,
} from './http.mjs';
import { healthyRun } from './stack.mjs';

export const POOLS = ['auth', 'community', 'realtime', 'media', 'bench'];
// docs/stack-contract.md: the pools' TCP ports
export const POOL_PORT = {
  auth: PORT_BASE + 26, community: PORT_BASE + 27, realtime: PORT_BASE + 28, media: PORT_BASE + 29, bench: PORT_BASE + 30,
};

async function stopNginx() {
  let pid;
  try { pid = readPid('run/nginx.pid'); } catch { return; }
  if (!isAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  assert.ok(await waitGone(pid, 15000), `nginx (pid ${pid}) did not stop`);
}

// bind: an IPv4 address (pools on TCP) or '' (unix sockets); env: more of the pools' settings
export async function poolsOn(bind, env = {}) {
  const e = { TH_FCGI_BIND: bind, ...env };
  await stopNginx();
  for (const pool of POOLS) {
    const r = await run('scripts/fcgi-pool', ['stop', pool], { env: e, timeoutMs: 60000 });
    assert.equal(r.code, 0, `fcgi-pool stop ${pool}:\n${r.stdout}\n${r.stderr}`);
  }
  const up = await run('scripts/stack', ['up'], { env: e, timeoutMs: 120000 });
  assert.equal(up.code, 0, `scripts/stack up (TH_FCGI_BIND=${bind}):\n${up.stdout}\n${up.stderr}`);
  for (const app of ['auth', 'community', 'realtime', 'media']) {
    const { ok, last } = await healthyRun(app);
    assert.ok(ok, `${app} not healthy on ${bind || 'unix sockets'}: ${last && last.text}`);
  }
}
