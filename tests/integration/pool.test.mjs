// Pool administration: status, graceful reload under load, scaling.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { BASE_URL, get, run, readPid, childrenOf, until, sleep, wrk, assertWrkClean } from './lib/http.mjs';

const POOL = 'auth';

// Ground truth from /proc: the live workers are the children of the pool's multiwatch.
const workers = () => childrenOf(readPid(`run/${POOL}.pid`));

async function status() {
  const res = await run('scripts/fcgi-pool', ['status', POOL]);
  assert.equal(res.code, 0, `scripts/fcgi-pool status ${POOL} failed:\n${res.stdout}\n${res.stderr}`);
  return res.stdout;
}

// status must list exactly the live workers, n of them, each with its pid
async function assertWorkers(n) {
  const pids = await until(() => { const w = workers(); return w.length === n ? w : null; }, { timeoutMs: 15000 });
  assert.ok(pids, `expected ${n} live workers of ${POOL}, /proc shows ${JSON.stringify(workers())}`);
  const out = await status();
  for (const pid of pids) assert.match(out, new RegExp(`\\b${pid}\\b`), `status does not list worker ${pid}:\n${out}`);
  // it must not list more workers than are alive (e.g. stale entries of replaced ones)
  const countMatch = /\b(\d+)\s+workers?\b|\bworkers?\s*[:=]\s*(\d+)/i.exec(out);
  if (countMatch) assert.equal(Number(countMatch[1] ?? countMatch[2]), n, `status count:\n${out}`);
  return pids;
}

describe('fcgi-pool', () => {
  test(`status ${POOL} lists 3 workers with pids`, async () => {
    await assertWorkers(3);
  });

  test('graceful reload under load drops no request and replaces every worker', async (t) => {
    const before = await assertWorkers(3);
    const load = wrk(['-t2', '-c16', '-d20s', '--latency', `${BASE_URL}/api/${POOL}/health`]);
    await sleep(6000);
    const reload = await run('scripts/fcgi-pool', ['reload', POOL], { timeoutMs: 60000 });
    assert.equal(reload.code, 0, `reload failed:\n${reload.stdout}\n${reload.stderr}`);
    const { requests, out } = assertWrkClean(await load);
    const after = await until(() => {
      const w = workers();
      return w.length === 3 && w.every((p) => !before.includes(p)) ? w : null;
    }, { timeoutMs: 15000 });
    assert.ok(after, `workers before ${JSON.stringify(before)}, after ${JSON.stringify(workers())}: not all replaced`);
    await assertWorkers(3);
    t.diagnostic(`wrk: ${requests} requests, ${/Requests\/sec:\s*(\S+)/.exec(out)?.[1]} req/s; workers ${before.join(',')} -> ${after.join(',')}`);
  });

  test(`scale ${POOL} 5 then back to 3`, async () => {
    const up = await run('scripts/fcgi-pool', ['scale', POOL, '5'], { timeoutMs: 60000 });
    assert.equal(up.code, 0, `scale 5 failed:\n${up.stdout}\n${up.stderr}`);
    await assertWorkers(5);
    for (let i = 0; i < 10; i++) assert.equal((await get(`/api/${POOL}/health`)).status, 200);
    const down = await run('scripts/fcgi-pool', ['scale', POOL, '3'], { timeoutMs: 60000 });
    assert.equal(down.code, 0, `scale 3 failed:\n${down.stdout}\n${down.stderr}`);
    await assertWorkers(3);
    for (let i = 0; i < 10; i++) assert.equal((await get(`/api/${POOL}/health`)).status, 200);
  });
});
