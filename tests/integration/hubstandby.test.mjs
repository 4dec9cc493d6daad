// The standby hub (TH_MQTT_HUB_STANDBY=1; conf/mosquitto/hub-standby.conf.in, docs/scaling.md
// "Real time"): hub-b on BASE+31 is bridged to the hub; the edges' bridges list the hub, then
// hub-b, and th-bridge does the same (realtime-bridge/bridge/hubs.c). Killing the hub (SIGKILL)
// under a steady chat load moves every edge and th-bridge to hub-b: chat keeps crossing edges
// and being stored (receipts arrive) while the hub is down; when the hub is back every edge and
// th-bridge return to it; every message is receipted and stored exactly once.
//
// This file restarts the edges and th-bridge with the standby on, and with it off again at the
// end (the other files run without it); it stops hub-b itself.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, rmSync } from 'node:fs';
import path from 'node:path';
import { VAR_DIR, readPid, waitGone, sleep, run } from './lib/http.mjs';
import { uuid, fixtures, fullHistory } from './lib/fixtures.mjs';
import {
  psql, stackUp, EDGES, edgeUrl, brokerPid, brokerLog, killBroker, startBroker, restartBrokers,
} from './lib/stack.mjs';
import { closeClients, connect, end, mustSubscribe, publish, waitFor, hasPayload, DELIVER_MS } from './lib/mqtt.mjs';
import { ChatSender } from './lib/sender.mjs';

const MOVE_MS = 20000;   // an edge's bridge retries within 1..5 s, probes the hub every 5 s
const STORED_MS = 30000; // every receipt of the run arrives within this
const E_LAST = EDGES - 1;

const { newUser, community } = fixtures({ net: 33, slug: 'hsb', name: 'Standby', general: true });

const bridgeLog = path.join(VAR_DIR, 'log', 'bridge.log');
const logSize = (f) => { try { return statSync(f).size; } catch { return 0; } };
const logSince = (f, from) => readFileSync(f, 'utf8').slice(from);

// th-bridge is started by `scripts/stack up` with the environment of this process
async function restartBridge() {
  const pid = readPid('run/bridge.pid');
  process.kill(pid, 'SIGTERM');
  assert.ok(await waitGone(pid, 15000), 'th-bridge did not stop');
  await stackUp();
}

async function standby(on) {
  process.env.TH_MQTT_HUB_STANDBY = on ? '1' : '0';
  await restartBrokers(); // the edges render their bridge's addresses anew
  await restartBridge();
}

before(async () => { await standby(true); }, { timeout: 120000 });
after(async () => {
  await closeClients();
  const b = (() => { try { return brokerPid('hub-b'); } catch { return null; } })();
  await standby(false);
  if (b) {
    process.kill(b, 'SIGTERM');
    assert.ok(await waitGone(b, 15000), 'hub-b did not stop');
    rmSync(path.join(VAR_DIR, 'run', 'mosquitto-hub-b.pid'), { force: true });
  }
  // the stack is whole again without the standby
  const st = await run('scripts/stack', ['status']);
  assert.equal(st.code, 0, `scripts/stack status after the standby is gone:\n${st.stdout}${st.stderr}`);
  assert.doesNotMatch(st.stdout, /hub-b/);
}, { timeout: 120000 });

describe('a standby hub takes over while the hub is down', { timeout: 240000 }, () => {
  test('kill -9 the hub under load: edges and th-bridge move to hub-b, chat crosses and is stored, all move back; each message stored once', async (t) => {
    assert.ok(brokerPid('hub-b') > 0, 'hub-b runs');
    const A = await newUser('hsa');
    const B = await newUser('hsb');
    const c = await community(A, 'public', [B]);
    const senders = [
      new ChatSender(A, c.channel, { urls: [edgeUrl(0)] }),
      new ChatSender(B, c.channel, { urls: [edgeUrl(E_LAST)] }),
    ];
    const a = await connect(A, { url: edgeUrl(0) });
    const b = await connect(B, { url: edgeUrl(E_LAST) });
    const diag = () => senders.map((s) => s.diag()).join('\n');
    let hubPid;
    try {
      await mustSubscribe(b, `chat/${c.channel}/+`);
      await Promise.all(senders.map((s) => s.start()));
      const load = Promise.all(senders.map((s) => s.load(6, 24000)));
      await sleep(2500);

      const standbyLog = brokerLog('hub-b');
      const sbFrom = logSize(standbyLog);
      const brFrom = logSize(bridgeLog);
      hubPid = await killBroker('hub');
      const killedAt = Date.now();
      // every edge's bridge and th-bridge attach to hub-b
      for (let i = 0; i < EDGES; i++) {
        await waitFor(() => logSince(standbyLog, sbFrom).includes(` as edge-e${i} (`), MOVE_MS, `edge e${i} on hub-b`);
      }
      await waitFor(() => /connected \(session \w+\) to the standby hub/.test(logSince(bridgeLog, brFrom)), MOVE_MS,
        () => `th-bridge on hub-b:\n${logSince(bridgeLog, brFrom)}`);
      const movedMs = Date.now() - killedAt;
      // with the hub down: a message from edge 0 reaches edge E_LAST, and messages sent now are stored
      const live = JSON.stringify({ id: uuid(), body: 'through the standby' });
      assert.ok(await publish(a, `chat/${c.channel}/${A.id}`, live) < 0x80, 'publish while the hub is down');
      await waitFor(() => hasPayload(b, live), DELIVER_MS, `edge 0 -> edge ${E_LAST} through hub-b`);
      const mark = senders.map((s) => s.sent.length);
      await sleep(1500);
      const fresh = senders.flatMap((s, i) => s.sent.slice(mark[i], mark[i] + 3));
      assert.ok(fresh.length > 0, 'the senders sent nothing while the hub was down');
      await waitFor(() => fresh.every((id) => senders.some((s) => s.stored.has(id))), STORED_MS,
        () => `receipts, while the hub is down, for ${fresh.join(' ')}\n${diag()}`);
      assert.ok(Number.isInteger(brokerPid('hub-b')));

      // the hub comes back: th-bridge and every edge return to it
      const hubLog = brokerLog('hub');
      const hubFrom = logSize(hubLog);
      const brBack = logSize(bridgeLog);
      await startBroker('hub', hubPid);
      await waitFor(() => /connected \(session \w+\) to the hub /.test(logSince(bridgeLog, brBack)), MOVE_MS,
        () => `th-bridge back on the hub:\n${logSince(bridgeLog, brBack)}`);
      for (let i = 0; i < EDGES; i++) {
        await waitFor(() => logSince(hubLog, hubFrom).includes(` as edge-e${i} (`), MOVE_MS, `edge e${i} back on the hub`);
      }
      await load;
      const until = Date.now() + STORED_MS;
      while (Date.now() < until && !senders.every((s) => s.pending.size === 0)) await sleep(100);
      const pending = senders.flatMap((s) => [...s.pending.keys()]);
      assert.equal(pending.length, 0, `not every message receipted within ${STORED_MS} ms\n${diag()}`);
      const sent = [...senders.flatMap((s) => s.sent), JSON.parse(live).id];
      const ids = (await fullHistory(c.channel, A)).map((m) => m.id);
      assert.equal(ids.length, new Set(ids).size, `a message is in the history twice\n${diag()}`);
      assert.deepEqual([...ids].sort(), [...sent].sort(), `history differs from what was sent\n${diag()}`);
      const rows = await psql(`SELECT count(*) FROM messages WHERE channel_id = ${Number(c.channel)}`);
      assert.equal(Number(rows.stdout.trim()), sent.length, 'rows in messages');
      t.diagnostic(`moved to hub-b in ${movedMs} ms; ${sent.length} messages, each stored once; ${diag().replace(/\n/g, ' | ')}`);
    } finally {
      for (const s of senders) s.stop();
      await end(a, b);
      if (hubPid) await stackUp();
    }
  });
});
