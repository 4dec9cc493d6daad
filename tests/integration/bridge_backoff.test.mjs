// th-bridge backs off when the hub refuses its connection (realtime-bridge/bridge/main.c
// backoff_failed): a refused CONNACK used to be followed by a new connect at once, a tight loop
// of TCP connects, CONNECTs and authentications against the hub for as long as the refusal
// lasted (a rotated service secret, a limit).
//
// A second bridge is started beside the stack's, from the same binary and environment, with its
// own client id, no metrics file (no TH_VAR_DIR: the stack's bridge owns that file) and a wrong
// service secret: the hub refuses every CONNECT. It never subscribes, so it takes no chat away
// from the stack's bridge. Its log counts its attempts: each ends in one "broker connection lost"
// line (the hub answers CONNACK 0x86 and closes; the bridge sees either the refusal and then the
// failed read, or the close first), or "cannot reach the broker" when the connect itself fails.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readPid, sleep, waitGone } from './lib/http.mjs';
import { rnd } from './lib/fixtures.mjs';
import { waitFor } from './lib/mqtt.mjs';

const WATCH_MS = 4000;
// 100, 200, 400, 800 ms, then 1 s apart: about 7 attempts in 4 s; without a back-off it was
// one every few milliseconds. The bound leaves room for a slow machine either way (a slower
// one makes fewer attempts, never more).
const MAX_ATTEMPTS = 12;

describe('a bridge the hub refuses backs off', { timeout: 60000 }, () => {
  test('a wrong service secret: refused again and again, at most a dozen attempts in 4 s, and it keeps trying', async () => {
    const pid = readPid('run/bridge.pid');
    const exe = readlinkSync(`/proc/${pid}/exe`);
    const env = Object.fromEntries(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')
      .filter((kv) => kv.includes('=')).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    const dir = mkdtempSync(path.join(os.tmpdir(), 'th-bridge-refused-'));
    const secret = path.join(dir, 'secret');
    writeFileSync(secret, `not-the-service-secret-${rnd(8)}\n`, { mode: 0o600 });
    delete env.TH_VAR_DIR;
    Object.assign(env, { TH_BRIDGE_ID: `th-bridge-refused-${rnd(3)}`, TH_MQTT_SERVICE_SECRET_FILE: secret });
    let log = '';
    const child = spawn(exe, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d) => { log += d; });
    child.stderr.on('data', (d) => { log += d; });
    const refusals = () => (log.match(/broker connection lost|cannot reach the broker/g) ?? []).length;
    try {
      await waitFor(() => refusals() > 0, 15000, () => `the hub to refuse the bridge's CONNECT: ${log.slice(-2000)}`);
      const first = refusals();
      await sleep(WATCH_MS);
      const attempts = refusals() - first;
      assert.ok(attempts <= MAX_ATTEMPTS, `${attempts} refused connections in ${WATCH_MS} ms: no back-off`);
      assert.ok(attempts >= 2, `${attempts} refused connections in ${WATCH_MS} ms: it stopped trying\n${log.slice(-2000)}`);
      assert.equal(child.exitCode, null, `the bridge exited: ${log.slice(-2000)}`);
    } finally {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        if (!(await waitGone(child.pid, 10000))) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
