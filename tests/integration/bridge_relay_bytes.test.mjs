// The relay's byte bound (realtime-bridge/bridge/relay.c, TH_BRIDGE_RELAY_MAX_BYTES): a batch
// publishes events up to that many bytes (payload and topic, once per publish); the events
// beyond are handed back unpublished ("deferred", th_events_deferred_total) and lead the next
// batch. The default (32 MiB) is too much to reach on a test machine, so this file restarts the
// stack's bridge with a bound of 16 KiB, and gives the next file a bridge at the default again.
//
// The events are written straight into event_outbox in one transaction (one NOTIFY: one claim
// takes them all), each with user_id = a test user, so each is one publish on that user's inbox
// (an `inbox` array adds one publish per recipient). The user reads its inbox over MQTT as a
// browser does; what the bridge did is read from /metrics/bridge.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readPid, waitGone, sleep } from './lib/http.mjs';
import { fixtures } from './lib/fixtures.mjs';
import { psql, stackUp, poolMetrics, metric } from './lib/stack.mjs';
import {
  DELIVER_MS, closeClients, connect, end, mustSubscribe, waitFor,
} from './lib/mqtt.mjs';

const BOUND = 16384;
const KNOB = 'TH_BRIDGE_RELAY_MAX_BYTES';
const { newUser } = fixtures({ net: 82, slug: 'brb', name: 'RelayBytes' });

const parsed = (m) => { try { return JSON.parse(m.payload); } catch { return null; } };

async function sql(text) {
  const r = await psql(text);
  assert.equal(r.code, 0, `psql: ${text}\n${r.stderr}`);
  return r.stdout.trim();
}

// Stops the stack's bridge (SIGTERM: it finishes what it holds) and starts it again with this
// process's environment (scripts/stack passes every TH_* variable on to it).
async function restartBridge() {
  const pid = readPid('run/bridge.pid');
  process.kill(pid, 'SIGTERM');
  assert.ok(await waitGone(pid, 15000), `bridge (pid ${pid}) still alive after SIGTERM`);
  await stackUp();
  return readPid('run/bridge.pid');
}

const SUITE = process.env[KNOB];
before(async () => {
  process.env[KNOB] = String(BOUND);
  const pid = await restartBridge();
  const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  assert.ok(env.includes(`${KNOB}=${BOUND}`), `the restarted bridge has no ${KNOB}=${BOUND}`);
}, { timeout: 60000 });
after(async () => {
  await closeClients();
  if (SUITE === undefined) delete process.env[KNOB];
  else process.env[KNOB] = SUITE;
  await restartBridge();
}, { timeout: 60000 });

// The events of user uid the inbox connection w received, by their n
const received = (w, uid) => w.messages.map(parsed)
  .filter((o) => o && o.type === 'relay_bytes_test' && o.user_id === uid).map((o) => o.n);

// Event n of user uid as SQL: pad bytes of padding, inbox its other recipients
const payload = (uid, n, pad, inbox = []) => `jsonb_build_object('type', 'relay_bytes_test',
  'user_id', ${uid}, 'n', ${n}, 'inbox', '${JSON.stringify(inbox)}'::jsonb, 'pad', repeat('x', ${pad}))`;

// Writes the events, one transaction and one NOTIFY; pads[i]: the padding of event n = i + 1,
// inboxes[i]: its other recipients (none when absent)
async function queue(uid, pads, inboxes = []) {
  const rows = pads.map((pad, i) => `(${payload(uid, i + 1, pad, inboxes[i])})`);
  await sql(`BEGIN;
    INSERT INTO event_outbox (payload) VALUES ${rows.join(', ')};
    SELECT pg_notify('townhall_events', '{"type":"relay_bytes_test"}');
    COMMIT;`);
}

describe('the relay publishes a batch up to TH_BRIDGE_RELAY_MAX_BYTES and defers the rest', { timeout: 120000 }, () => {
  // 40 events of about 2 KB, 5 times the bound, claimed together: at most 7 of them fit a
  // batch (16384 / their payload alone), so the relay publishes them in at least 6 batches
  // and defers at least 33 + 26 + 19 + 12 + 5 = 95 (each deferred event counts once per batch
  // that hands it back). Ignoring the bound, one batch publishes all 40 and defers none.
  test('40 events of 2 KB with a 16 KiB bound: each delivered once, in order, over several batches', async (t) => {
    const N = 40;
    const u = await newUser('brb');
    const uid = Number(u.id);
    const w = await connect(u);
    try {
      await mustSubscribe(w, `user/${uid}/inbox`);
      const m0 = await poolMetrics('bridge');
      // the smallest event's payload as the relay reads it (jsonb's text)
      const size = Number(await sql(`SELECT octet_length((${payload(uid, 1, 2000)})::text)`));
      await queue(uid, Array(N).fill(2000));
      await waitFor(() => received(w, uid).length >= N, DELIVER_MS * 3,
        () => `${N} events on the inbox (got ${received(w, uid).length})`);
      await sleep(500); // a duplicate would arrive meanwhile
      assert.deepEqual(received(w, uid), Array.from({ length: N }, (_, i) => i + 1),
        'the inbox did not get each event once, in the outbox\'s order');
      assert.equal(await sql(`SELECT count(*) FROM event_outbox WHERE payload->>'user_id' = '${uid}'`), '0',
        'outbox rows left');
      const m1 = await poolMetrics('bridge');
      assert.ok('th_events_deferred_total' in m1, `no th_events_deferred_total in /metrics/bridge: ${Object.keys(m1).join(', ')}`);
      // the topic's bytes left out: more events fit than do, so this is a lower bound
      const fit = Math.max(1, Math.floor(BOUND / size));
      let least = 0;
      for (let left = N - fit; left > 0; left -= fit) least += left;
      const deferred = metric(m1, 'th_events_deferred_total') - metric(m0, 'th_events_deferred_total');
      t.diagnostic(`${deferred} deferred (at least ${least}: ${fit} events of ${size} bytes a batch)`);
      assert.ok(deferred >= least, `${deferred} events deferred, at least ${least} expected (${fit} of ${size} bytes a batch): the byte bound was not applied`);
      assert.ok(metric(m1, 'th_events_published_total') - metric(m0, 'th_events_published_total') >= N);
    } finally {
      await end(w);
    }
  });

  // An event whose publishes alone pass the bound (one to the user's inbox and 20 to other
  // inboxes, about 25 KB of payloads) still goes: as the first of its batch. Three small events before
  // it go in a batch of their own (it is deferred behind them), the three after it in the
  // next: nothing stalls behind it, and the order holds.
  test('an event larger than the bound goes alone, the events around it go before and after it', async (t) => {
    const u = await newUser('brb');
    const uid = Number(u.id);
    const others = Array.from({ length: 20 }, (_, i) => 900000000000 + i); // nobody's inboxes
    const w = await connect(u);
    try {
      await mustSubscribe(w, `user/${uid}/inbox`);
      const m0 = await poolMetrics('bridge');
      await queue(uid, [100, 100, 100, 800, 100, 100, 100], [[], [], [], others]);
      await waitFor(() => received(w, uid).length >= 7, DELIVER_MS * 2,
        () => `7 events on the inbox (got ${received(w, uid).join(',')})`);
      await sleep(500);
      assert.deepEqual(received(w, uid), [1, 2, 3, 4, 5, 6, 7], 'not each event once, in order');
      assert.equal(await sql(`SELECT count(*) FROM event_outbox WHERE payload->>'user_id' = '${uid}'`), '0',
        'outbox rows left');
      const m1 = await poolMetrics('bridge');
      const deferred = metric(m1, 'th_events_deferred_total') - metric(m0, 'th_events_deferred_total');
      t.diagnostic(`${deferred} deferred`);
      // the large one and the three after it, then those three again
      assert.ok(deferred >= 7, `${deferred} events deferred, at least 7 expected`);
    } finally {
      await end(w);
    }
  });
});
