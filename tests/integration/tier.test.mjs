// The real-time tier (issue 18; docs/scaling.md, "Real time"): edge brokers bridged in a star
// to a hub where th-bridge attaches. Users on different edges talk as if on one broker:
// chat both ways, each message stored exactly once; typing and signal cross; server events and
// `stored` receipts published at the hub reach every edge; a logout kicks the session's sockets
// on every edge within 5 s; killing an edge or the hub (SIGKILL) loses no message a client keeps
// re-sending until its receipt (API.md, MQTT), and the restarted broker rejoins the star.
// The brokers run with the shim scripts/stack preloads (realtime-bridge/epshim).
// Presence is counted over every broker (lib/presence.h): a user with tabs
// on two edges goes offline only when both close, and the users of a killed edge go offline
// once its lease (TH_MQTT_PRESENCE_LEASE_MS, 10 s) ended, unless connected elsewhere.
//
// Design notes
// - Clients connect with raw MQTT over TCP straight to an edge's port (edgePort(i)): that is
//   how "two users on different edges" is forced whatever th-wsfront would choose; one test
//   goes through nginx's /mqtt and th-wsfront as a browser does.
// - Client addresses: registrations come from 127.31.x.y (tests/integration/lib/fixtures.mjs).
// - Rates: API.md's chat limit (10/s, burst 30 a user) applies on the edges; the load here
//   stays under it (8 messages a second a user), so the stack's limits are not touched.
// - Time. Every wait has a deadline; killed brokers are brought back with `scripts/stack up`
//   before the test ends, and every client is closed in `finally`/`after`.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { sleep, VAR_DIR, runProgram } from './lib/http.mjs';
import { show } from './lib/assert.mjs';
import { rnd, uuid, api, fixtures, fullHistory } from './lib/fixtures.mjs';
import {
  psql, EDGES, edgeUrl, HUB_URL, killBroker, startBroker, brokerPid, brokerLog,
} from './lib/stack.mjs';
import {
  WS_URL, CONNECT_MS, DELIVER_MS, clients, closeClients, cid, connect, end, mustSubscribe, publish, waitFor, hasPayload,
} from './lib/mqtt.mjs';
import { ChatSender } from './lib/sender.mjs';

const STORED_MS = 30000; // every receipt of a run arrives within this
const RESEND_MS = 5000;  // a client re-sends what waited this long for its receipt (townhall.js)

const { newUser, community } = fixtures({ net: 31, slug: 'tier', name: 'Tier', general: true });

const parsed = (m) => { try { return JSON.parse(m.payload); } catch { return null; } };
const chat = (body) => JSON.stringify({ id: uuid(), body });
const idOf = (payload) => JSON.parse(payload).id;

// rows of `messages` with these ids (the stored-once check straight in PostgreSQL)
async function storedRows(ids) {
  const list = ids.map((id) => `'${id.replace(/[^0-9a-f-]/g, '')}'`).join(',');
  const r = await psql(`SELECT count(*) FROM messages WHERE id IN (${list})`);
  assert.equal(r.code, 0, r.stderr);
  return Number(r.stdout.trim());
}

// Two senders (one per edge given) at 8 msg/s for 8 s; disrupt() runs ~2.5 s in. Afterwards
// every message is receipted, and in the history and in PostgreSQL exactly once.
async function lossRun(what, urlsA, urlsB, disrupt) {
  const a = await newUser('tla');
  const b = await newUser('tlb');
  const c = await community(a, 'public', [b]);
  const senders = [new ChatSender(a, c.channel, { urls: urlsA, resendMs: RESEND_MS }), new ChatSender(b, c.channel, { urls: urlsB, resendMs: RESEND_MS })];
  const diag = () => `${what}\n${senders.map((s) => s.diag()).join('\n')}`;
  try {
    await Promise.all(senders.map((s) => s.start()));
    const load = Promise.all(senders.map((s) => s.load(8, 8000)));
    await sleep(2500);
    await disrupt();
    await load;
    const end0 = Date.now() + STORED_MS;
    while (Date.now() < end0 && !senders.every((s) => s.pending.size === 0)) await sleep(100);
    const items = await fullHistory(c.channel, a);
    const sent = senders.flatMap((s) => s.sent);
    const pending = senders.flatMap((s) => [...s.pending.keys()]);
    const inHist = new Set(items.map((m) => m.id));
    assert.equal(pending.length, 0, `not every message receipted within ${STORED_MS} ms: ${pending.length} pending, ${pending.filter((id) => inHist.has(id)).length} of them stored (receipt lost)\n${diag()}`);
    const ids = items.map((m) => m.id);
    assert.equal(ids.length, new Set(ids).size, `a message is in the history twice\n${diag()}`);
    assert.deepEqual([...ids].sort(), [...sent].sort(), `history differs from what was sent\n${diag()}`);
    assert.equal(await storedRows(sent), sent.length, 'rows in messages');
    return diag();
  } finally {
    for (const s of senders) s.stop();
  }
}

after(closeClients);

// Users A and B, members of one community, A on edge 0 and B on the last edge.
const E0 = 0;
const E1 = EDGES - 1;

// one edge (TH_MQTT_EDGES=1, the smallest tier) has nothing to cross
const SKIP = EDGES < 2 && 'needs TH_MQTT_EDGES >= 2';

// The shim scripts/stack preloads into every broker (realtime-bridge/epshim; TH_MQTT_EPSHIM=0
// leaves it out): mapped into the hub and each edge, and an edge's unix listener, where the
// fronts connect, queues a burst of connects (4096) instead of mosquitto's 10.
describe('the brokers run with the shim', { skip: process.env.TH_MQTT_EPSHIM === '0' && 'TH_MQTT_EPSHIM=0' }, () => {
  test('in the hub and every edge; an edge\'s unix listener has a backlog of 4096', async (t) => {
    for (const name of ['hub', ...Array.from({ length: EDGES }, (_, i) => `e${i}`)]) {
      const maps = readFileSync(`/proc/${brokerPid(name)}/maps`, 'utf8');
      assert.match(maps, /th-epshim\.so/, `mosquitto-${name} runs without the shim`);
    }
    const sock = path.join(VAR_DIR, 'mosquitto', 'e0', 'edge.sock');
    // scripts/stack gives an edge no unix socket when the path is too long for one
    if (sock.length >= 100) return t.skip(`${sock}: too long for a unix socket`);
    const r = await runProgram('ss', ['-xlH']);
    assert.equal(r.code, 0, r.stderr);
    const line = r.stdout.split('\n').find((l) => l.split(/\s+/).includes(sock));
    assert.ok(line, `no listener on ${sock}:\n${r.stdout}`);
    // u_str LISTEN <queued> <backlog> <path> ...
    assert.equal(Number(line.trim().split(/\s+/)[3]), 4096, line);
  });
});

describe('users on different edges', { timeout: 120000, skip: SKIP }, () => {
  let A; let B; let c;
  before(async () => {
    A = await newUser('tra');
    B = await newUser('trb');
    c = await community(A, 'public', [B]);
  }, { timeout: 60000 });

  test('chat crosses edges both ways; each message is stored once and receipted on its sender\'s edge', async (t) => {
    const a = await connect(A, { url: edgeUrl(E0) });
    const b = await connect(B, { url: edgeUrl(E1) });
    try {
      for (const [x, u] of [[a, A], [b, B]]) {
        await mustSubscribe(x, `chat/${c.channel}/+`);
        await mustSubscribe(x, `user/${u.id}/inbox`);
      }
      const fromA = Array.from({ length: 5 }, (_, i) => chat(`a->b ${i}`));
      const fromB = Array.from({ length: 5 }, (_, i) => chat(`b->a ${i}`));
      const t0 = Date.now();
      for (let i = 0; i < 5; i++) {
        assert.ok(await publish(a, `chat/${c.channel}/${A.id}`, fromA[i]) < 0x80, 'publish on edge 0');
        assert.ok(await publish(b, `chat/${c.channel}/${B.id}`, fromB[i]) < 0x80, 'publish on the other edge');
      }
      for (const p of fromA) await waitFor(() => hasPayload(b, p), DELIVER_MS, `B (other edge) to receive ${p}`);
      for (const p of fromB) await waitFor(() => hasPayload(a, p), DELIVER_MS, `A (edge 0) to receive ${p}`);
      const crossMs = Date.now() - t0;
      // each delivered once to each subscriber (its own edge and the other one): no loop
      await sleep(500);
      for (const x of [a, b]) {
        for (const p of [...fromA, ...fromB]) {
          assert.equal(x.messages.filter((m) => m.payload === p).length, 1, `${x.clientId} received ${p} more than once`);
        }
      }
      const receipted = (x, ids) => ids.every((id) => x.messages.some((m) => parsed(m)?.type === 'stored' && parsed(m).ids?.includes(id)));
      await waitFor(() => receipted(a, fromA.map(idOf)), STORED_MS, 'A\'s receipts (published at the hub) on edge 0');
      await waitFor(() => receipted(b, fromB.map(idOf)), STORED_MS, 'B\'s receipts on the other edge');
      const ids = [...fromA, ...fromB].map(idOf);
      const items = await fullHistory(c.channel, A);
      for (const id of ids) assert.equal(items.filter((m) => m.id === id).length, 1, `${id} in the history once`);
      assert.equal(await storedRows(ids), ids.length, 'rows in messages (stored once)');
      t.diagnostic(`10 messages (published one after another, each PUBACK awaited) crossed edges within ${crossMs} ms`);
    } finally {
      await end(a, b);
    }
  });

  test('a receipt goes to its sender\'s edge alone (the hub\'s stamp); a user cannot forge the stamp', async () => {
    const a = await connect(A, { url: edgeUrl(E0) });
    const aElsewhere = await connect(A, { url: edgeUrl(E1) });
    const aHub = await connect(A, { url: HUB_URL });
    const b = await connect(B, { url: edgeUrl(E1) });
    try {
      for (const x of [a, aElsewhere, aHub]) await mustSubscribe(x, `user/${A.id}/inbox`);
      await mustSubscribe(b, `chat/${c.channel}/+`);
      const out = chat('receipt to edge 0 only');
      assert.ok(await publish(a, `chat/${c.channel}/${A.id}`, out) < 0x80, 'publish on edge 0');
      const stored = (x) => x.messages.some((m) => parsed(m)?.type === 'stored' && parsed(m).ids?.includes(idOf(out)));
      await waitFor(() => stored(a), STORED_MS, 'the receipt on the sender\'s edge');
      // the message reached the other edge stamped with the edge it came in through
      await waitFor(() => hasPayload(b, out), DELIVER_MS, 'B (other edge) to receive it');
      const got = b.messages.find((m) => m.payload === out);
      assert.equal(got.userProperties?.['th-edge'], `e${E0}`, 'the hub stamped the origin edge');
      await sleep(1000);
      assert.ok(!stored(aElsewhere), 'the sender\'s tab on another edge got no receipt for it');
      assert.ok(!stored(aHub), 'a client of the hub got no receipt for it');
      // a user's own th-edge property is refused (PUBACK >= 0x80), never stored or delivered
      const forged = chat('forged origin');
      const code = await publish(a, `chat/${c.channel}/${A.id}`, forged, { properties: { userProperties: { 'th-edge': `e${E1}` } } });
      assert.ok(code >= 0x80, `a forged stamp refused (PUBACK 0x${code.toString(16)})`);
      await sleep(1000);
      assert.ok(!hasPayload(b, forged), 'the forged message was not delivered');
      assert.equal(await storedRows([idOf(forged)]), 0, 'nor stored');
      // a chat message published at the hub itself (no edge): its receipt goes to every edge
      const atHub = chat('published at the hub');
      assert.ok(await publish(aHub, `chat/${c.channel}/${A.id}`, atHub) < 0x80, 'publish at the hub');
      for (const x of [a, aElsewhere, aHub]) {
        await waitFor(() => x.messages.some((m) => parsed(m)?.type === 'stored' && parsed(m).ids?.includes(idOf(atHub))), STORED_MS, `${x.clientId}: the receipt of a message published at the hub`);
      }
    } finally {
      await end(a, aElsewhere, aHub, b);
    }
  });

  test('through /mqtt (th-wsfront, whichever edge it picks) a browser client chats with users on every edge', async () => {
    const w = await connect(A, { url: WS_URL });
    const subs = [];
    try {
      await mustSubscribe(w, `chat/${c.channel}/+`);
      for (let i = 0; i < EDGES; i++) {
        const x = await connect(B, { url: edgeUrl(i) });
        await mustSubscribe(x, `chat/${c.channel}/+`);
        subs.push(x);
      }
      const out = chat('browser -> every edge');
      assert.ok(await publish(w, `chat/${c.channel}/${A.id}`, out) < 0x80, 'publish through /mqtt');
      for (let i = 0; i < EDGES; i++) await waitFor(() => hasPayload(subs[i], out), DELIVER_MS, `edge ${i} to receive the browser's message`);
      for (let i = 0; i < EDGES; i++) {
        const back = chat(`edge ${i} -> browser`);
        assert.ok(await publish(subs[i], `chat/${c.channel}/${B.id}`, back) < 0x80, `publish on edge ${i}`);
        await waitFor(() => hasPayload(w, back), DELIVER_MS, `the browser to receive edge ${i}'s message`);
      }
      await sleep(300);
      for (const m of w.messages) assert.equal(w.messages.filter((x) => x.payload === m.payload).length, 1, `the browser received ${m.payload} twice`);
      // the front reached the edge through the edge's unix socket (scripts/stack's default on
      // one host; the port only when the state dir is too deep for a socket path)
      if (path.join(VAR_DIR, 'mosquitto', 'e0', 'edge.sock').length < 100) {
        const id = w.clientId;
        const via = Array.from({ length: EDGES }, (_, i) => readFileSync(brokerLog(`e${i}`), 'utf8'))
          .flatMap((l) => l.split('\n').filter((x) => x.includes(` as ${id} (`)).map((x) => x.replace(/.* connected from (\S+) as .*/, '$1')));
        assert.ok(via.length > 0, `an edge logged ${id}'s connection`);
        assert.match(via.at(-1), /\/mosquitto\/e\d+\/edge\.sock:0$/, `${id} reached its edge through its unix socket`);
      }
    } finally {
      await end(w, ...subs);
    }
  });

  test('typing and signal cross edges', async () => {
    const a = await connect(A, { url: edgeUrl(E0) });
    const b = await connect(B, { url: edgeUrl(E1) });
    try {
      await mustSubscribe(b, `typing/${c.channel}/+`);
      await mustSubscribe(a, `typing/${c.channel}/+`);
      await publish(a, `typing/${c.channel}/${A.id}`, '{}', { qos: 0 });
      await waitFor(() => b.messages.some((m) => m.topic === `typing/${c.channel}/${A.id}`), DELIVER_MS, 'A\'s typing on the other edge');
      await publish(b, `typing/${c.channel}/${B.id}`, '{}', { qos: 0 });
      await waitFor(() => a.messages.some((m) => m.topic === `typing/${c.channel}/${B.id}`), DELIVER_MS, 'B\'s typing on edge 0');

      const cr = await api('POST', '/api/calls', A, { channel_id: c.channel });
      assert.ok(cr.status === 201 || cr.status === 200, `call: ${show(cr)}`);
      const call = cr.json.id;
      assert.equal((await api('POST', `/api/calls/${call}/join`, B)).status, 200);
      await mustSubscribe(a, `signal/${call}/${A.id}/+`);
      await mustSubscribe(b, `signal/${call}/${B.id}/+`);
      const offer = JSON.stringify({ type: 'offer', sdp: `v=0 ${rnd()}` });
      const answer = JSON.stringify({ type: 'answer', sdp: `v=0 ${rnd()}` });
      assert.ok(await publish(a, `signal/${call}/${B.id}/${A.id}`, offer) < 0x80, 'offer');
      await waitFor(() => hasPayload(b, offer), DELIVER_MS, 'the offer on the other edge');
      assert.ok(await publish(b, `signal/${call}/${A.id}/${B.id}`, answer) < 0x80, 'answer');
      await waitFor(() => hasPayload(a, answer), DELIVER_MS, 'the answer on edge 0');
    } finally {
      await end(a, b);
    }
  });

  test('server events and inbox messages published at the hub reach users on every edge', async () => {
    const subs = [];
    const c = await community(A, 'public', [B]); // its own channel: one call at a time in one
    try {
      for (let i = 0; i < EDGES; i++) {
        const x = await connect(B, { url: edgeUrl(i) });
        await mustSubscribe(x, `events/community/${c.id}`);
        await mustSubscribe(x, `user/${B.id}/inbox`);
        subs.push(x);
      }
      const p = await api('POST', `/api/communities/${c.id}/posts`, A, { title: 'tier', body: `post ${rnd()}` });
      assert.equal(p.status, 201, show(p));
      const isPost = (m) => parsed(m)?.type === 'post_created' && parsed(m)?.post_id === p.json.id;
      for (let i = 0; i < EDGES; i++) await waitFor(() => hasPayload(subs[i], isPost), DELIVER_MS, `post_created on edge ${i}`);
      // an inbox message: the call invite the server sends B
      const cr = await api('POST', '/api/calls', A, { channel_id: c.channel });
      assert.ok(cr.status === 201 || cr.status === 200, `call: ${show(cr)}`);
      for (let i = 0; i < EDGES; i++) {
        await waitFor(() => subs[i].messages.some((m) => m.topic === `user/${B.id}/inbox` && parsed(m)?.call_id === cr.json.id),
          DELIVER_MS, () => `the call invite in B's inbox on edge ${i} (got ${subs[i].messages.map((m) => m.payload).join(' | ')})`);
      }
      await sleep(300);
      for (let i = 0; i < EDGES; i++) assert.equal(subs[i].messages.filter(isPost).length, 1, `post_created once on edge ${i}`);
    } finally {
      await end(...subs);
    }
  });

  test('a logout kicks the session\'s connections on every edge within 5 s', async () => {
    const u = await newUser('trl');
    const conns = [];
    try {
      for (let i = 0; i < EDGES; i++) conns.push(await connect(u, { url: edgeUrl(i) }));
      conns.push(await connect(u, { url: HUB_URL })); // and one straight on the hub
      const t0 = Date.now();
      const r = await api('POST', '/api/auth/logout', u, { refresh_token: u.refresh });
      assert.equal(r.status, 204, `logout: ${show(r)}`);
      for (const [i, x] of conns.entries()) {
        await waitFor(() => x.closed, 5500, `connection ${i} (${i < EDGES ? `edge ${i}` : 'hub'}) to close after the logout`);
        assert.ok(x.closedAt() - t0 <= 5500, `connection ${i} closed after ${x.closedAt() - t0} ms`);
      }
    } finally {
      await end(...conns);
    }
  });
});

describe('a broker dies (SIGKILL): nothing receipted is lost, and it rejoins', { timeout: 300000, skip: SKIP }, () => {
  // After a restart: a message from edge 0 reaches a subscriber on the last edge and back.
  async function crosses(what) {
    const A = await newUser('tja');
    const B = await newUser('tjb');
    const c = await community(A, 'public', [B]);
    const a = await connect(A, { url: edgeUrl(E0) });
    const b = await connect(B, { url: edgeUrl(E1) });
    try {
      await mustSubscribe(a, `chat/${c.channel}/+`);
      await mustSubscribe(b, `chat/${c.channel}/+`);
      const p1 = chat(`${what} a->b`);
      const p2 = chat(`${what} b->a`);
      await publish(a, `chat/${c.channel}/${A.id}`, p1);
      await waitFor(() => hasPayload(b, p1), DELIVER_MS, `${what}: edge 0 -> edge ${E1}`);
      await publish(b, `chat/${c.channel}/${B.id}`, p2);
      await waitFor(() => hasPayload(a, p2), DELIVER_MS, `${what}: edge ${E1} -> edge 0`);
    } finally {
      await end(a, b);
    }
  }

  test('kill -9 an edge under load: its clients reconnect to another edge, re-send, each message stored once; the edge rejoins', { timeout: 120000 }, async (t) => {
    // sender A lives on the edge that dies, then moves to edge 0; sender B stays on edge 0
    let pid;
    const info = await lossRun('edge kill -9', [edgeUrl(E1), edgeUrl(E0)], [edgeUrl(E0)], async () => {
      pid = await killBroker(`e${E1}`);
    });
    t.diagnostic(info.replace(/\n/g, ' | '));
    await startBroker(`e${E1}`, pid);
    await crosses('after the edge restart');
  });

  test('kill -9 the hub under load (restarted ~1 s later): clients re-send every 5 s, each message stored once; the star is back', { timeout: 120000 }, async (t) => {
    let pid;
    const info = await lossRun('hub kill -9', [edgeUrl(E0)], [edgeUrl(E1)], async () => {
      pid = await killBroker('hub');
      await sleep(1000);
      await startBroker('hub', pid);
    });
    t.diagnostic(info.replace(/\n/g, ' | '));
    assert.notEqual(brokerPid('hub'), pid);
    await crosses('after the hub restart');
  });
});

describe('presence over edges', { timeout: 180000, skip: SKIP }, () => {
  const LEASE_MS = Number(process.env.TH_MQTT_PRESENCE_LEASE_MS || 10000);
  // live presence messages of uid seen by w (not the retained state sent at SUBSCRIBE)
  const seen = (w, c, uid) => w.messages.filter((m) => !m.retain && m.topic === `presence/${c.id}/${uid}`).map((m) => parsed(m)?.status);

  test('a user with tabs on two edges: online once, offline only when the last tab closes', async () => {
    const owner = await newUser('tpo');
    const u = await newUser('tpu');
    const c = await community(owner, 'public', [u]);
    const w = await connect(owner, { url: edgeUrl(E0) });
    let t0; let t1;
    try {
      await mustSubscribe(w, `presence/${c.id}/+`);
      t0 = await connect(u, { url: edgeUrl(E0) });
      await waitFor(() => seen(w, c, u.id).includes('online'), DELIVER_MS, 'online after the first tab');
      t1 = await connect(u, { url: edgeUrl(E1) });
      await sleep(1000);
      await end(t0);
      await sleep(2000);
      assert.deepEqual(seen(w, c, u.id), ['online'], 'a second tab on another edge or closing one of two tabs changed presence');
      await end(t1);
      await waitFor(() => seen(w, c, u.id).includes('offline'), DELIVER_MS, 'offline after the last tab');
      await sleep(500);
      assert.deepEqual(seen(w, c, u.id), ['online', 'offline']);
    } finally {
      await end(w, t0, t1);
    }
  });

  test('an edge killed: its users go offline after the lease, a user also connected on another edge stays online; the edge rejoins', { timeout: 120000 }, async (t) => {
    const owner = await newUser('tpk');
    const only = await newUser('tpk1'); // on the edge that dies only
    const both = await newUser('tpk2'); // on it and on edge 0
    const c = await community(owner, 'public', [only, both]);
    const w = await connect(owner, { url: edgeUrl(E0) });
    const conns = [];
    let pid;
    try {
      await mustSubscribe(w, `presence/${c.id}/+`);
      conns.push(await connect(only, { url: edgeUrl(E1) }));
      conns.push(await connect(both, { url: edgeUrl(E1) }));
      conns.push(await connect(both, { url: edgeUrl(E0) }));
      await waitFor(() => seen(w, c, only.id).includes('online') && seen(w, c, both.id).includes('online'), DELIVER_MS, 'both users online');
      const k0 = Date.now();
      pid = await killBroker(`e${E1}`);
      await waitFor(() => seen(w, c, only.id).includes('offline'), LEASE_MS * 3 + 5000, () => `offline of the killed edge's user (seen ${seen(w, c, only.id)})`);
      const offlineMs = Date.now() - k0;
      t.diagnostic(`offline ${offlineMs} ms after the kill (lease ${LEASE_MS} ms)`);
      await sleep(2000);
      assert.deepEqual(seen(w, c, both.id), ['online'], 'a user still connected on edge 0 went offline');
    } finally {
      await end(w, ...conns);
      if (pid !== undefined) await startBroker(`e${E1}`, pid);
    }
    // the restarted edge counts again: a user there is announced online on edge 0
    const w2 = await connect(owner, { url: edgeUrl(E0) });
    try {
      await mustSubscribe(w2, `presence/${c.id}/+`);
      const back = await connect(only, { url: edgeUrl(E1) });
      await waitFor(() => seen(w2, c, only.id).includes('online'), DELIVER_MS, 'online from the restarted edge');
      await end(back);
      await waitFor(() => seen(w2, c, only.id).includes('offline'), DELIVER_MS, 'offline from the restarted edge');
    } finally {
      await end(w2);
    }
  });
});
