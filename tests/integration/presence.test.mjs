// Presence across brokers (issue 18; lib/presence.h): a user's connections
// are counted in Redis over every broker, so "online" is announced at the first connection
// anywhere and "offline" at the last one anywhere; a call is left only then (th-bridge reacts to
// a live "offline"). A broker killed stops renewing its lease: once the lease ran out (10 s by
// default) a live broker removes its counts and announces "offline" for its users who are not
// connected elsewhere, and only for them.
//
// Design notes
// - Tabs on two brokers are forced with raw MQTT over TCP to edge 0 and to a second broker
//   (edge 1, or the hub when the stack runs one edge).
// - Only live presence messages count (a subscription replays retained ones with retain set).
// - Time: the edge-kill test waits for the lease (10 s) plus a renewal period; every wait has a
//   deadline, and the killed edge is started again before the test ends.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sleep } from './lib/http.mjs';
import { assertStatus } from './lib/assert.mjs';
import { api, fixtures, rnd } from './lib/fixtures.mjs';
import {
  EDGES, edgeUrl, HUB_URL, killBroker, psql, startBroker,
} from './lib/stack.mjs';
import {
  DELIVER_MS, closeClients, connect, end, mustSubscribe, publish, serviceSecret, waitFor,
} from './lib/mqtt.mjs';

const LEASE_MS = 10000;              // TH_MQTT_PRESENCE_LEASE_MS, the default
const REAP_MS = LEASE_MS + 20000;    // the lease, a renewal period, the reap: generous
const GRACE_MS = 2000;               // TH_MQTT_PRESENCE_GRACE_MS, the default
const OTHER_URL = EDGES > 1 ? edgeUrl(1) : HUB_URL;

const { newUser, community } = fixtures({ net: 24, slug: 'pres', name: 'Presence', general: true });

// Live presence statuses of uid in community cid that conn received, in order.
const statuses = (conn, cid, uid) => conn.messages
  .filter((m) => m.topic === `presence/${cid}/${uid}` && !m.retain)
  .map((m) => { try { return JSON.parse(m.payload).status; } catch { return 'bad'; } });

const participants = async (call, who) => assertStatus(await api('GET', `/api/calls/${call}`, who), 200)
  .json.participants.map((u) => u.id);

describe('presence across brokers', { timeout: 180000 }, () => {
  const U = {};
  let c;

  before(async () => {
    for (const k of ['owner', 'tabs', 'lone', 'watcher']) U[k] = await newUser(`pr_${k}`);
    c = await community(U.owner, 'public', [U.tabs, U.lone, U.watcher]);
  });
  after(() => closeClients());

  test('tabs on two brokers: online once, offline at the last one; the call is left only then', async () => {
    const w = await connect(U.watcher, { url: OTHER_URL });
    await mustSubscribe(w, `presence/${c.id}/+`);
    const call = assertStatus(await api('POST', '/api/calls', U.owner, { channel_id: c.channel }), 201).json.id;
    assertStatus(await api('POST', `/api/calls/${call}/join`, U.tabs), 200);
    try {
      const t1 = await connect(U.tabs, { url: edgeUrl(0) });
      await waitFor(() => statuses(w, c.id, U.tabs.id).length === 1, DELIVER_MS, 'online from the first tab');
      const t2 = await connect(U.tabs, { url: OTHER_URL });
      await sleep(1500);
      assert.deepEqual(statuses(w, c.id, U.tabs.id), ['online'], 'the second tab announced again');
      await end(t1);
      await sleep(2500);
      assert.deepEqual(statuses(w, c.id, U.tabs.id), ['online'], 'offline while a tab was still open');
      assert.ok((await participants(call, U.owner)).includes(U.tabs.id), 'left the call while a tab was open');
      await end(t2);
      await waitFor(() => statuses(w, c.id, U.tabs.id).length === 2, DELIVER_MS, 'offline at the last tab');
      assert.deepEqual(statuses(w, c.id, U.tabs.id), ['online', 'offline']);
      let parts = [];
      for (let i = 0; i < 50; i++) {
        parts = await participants(call, U.owner);
        if (!parts.includes(U.tabs.id)) break;
        await sleep(200);
      }
      assert.ok(!parts.includes(U.tabs.id), `still in the call after the last tab closed: ${parts}`);
    } finally {
      await api('POST', `/api/calls/${call}/leave`, U.owner);
      await end(w);
    }
  });

  // a reload closes the last connection and opens a new one a moment later: within the grace
  // (realtime-bridge/plugin/grace.h) the watchers see no "offline" (an "online" again: a client
  // reconnects after joining a community to appear there), and th-bridge keeps the user in
  // their call
  test('a tab reloaded within the grace: no offline, the call kept', async (t) => {
    const u = await newUser('pr_reload');
    assertStatus(await api('POST', `/api/communities/${c.id}/join`, u), 200);
    const w = await connect(U.watcher, { url: OTHER_URL });
    await mustSubscribe(w, `presence/${c.id}/+`);
    const call = assertStatus(await api('POST', '/api/calls', U.owner, { channel_id: c.channel }), 201).json.id;
    assertStatus(await api('POST', `/api/calls/${call}/join`, u), 200);
    try {
      const first = await connect(u, { url: edgeUrl(0) });
      await waitFor(() => statuses(w, c.id, u.id).length === 1, DELIVER_MS, 'online from the first tab');
      const t0 = Date.now();
      await end(first);
      await sleep(300); // the broker has seen the close (a reload takes longer than that)
      const again = await connect(u, { url: edgeUrl(0) });
      const took = Date.now() - t0;
      await sleep(GRACE_MS + 1500);
      t.diagnostic(`reconnected ${took} ms after the close`);
      // (a reconnect slower than the grace is an offline and an online, as it should be)
      if (took < GRACE_MS / 2) {
        assert.ok(statuses(w, c.id, u.id).every((x) => x === 'online'),
          `the reload was announced as a leave: ${statuses(w, c.id, u.id)}`);
        assert.ok((await participants(call, U.owner)).includes(u.id), 'the reload left the call');
      }
      // a real leave is still announced, once the grace ended
      const t1 = Date.now();
      await end(again);
      await waitFor(() => statuses(w, c.id, u.id).at(-1) === 'offline', GRACE_MS + DELIVER_MS, 'offline after the last tab');
      assert.ok(Date.now() - t1 >= GRACE_MS - 500, `offline ${Date.now() - t1} ms after the close, within the grace`);
    } finally {
      await api('POST', `/api/calls/${call}/leave`, U.owner);
      await api('POST', `/api/calls/${call}/leave`, u);
      await end(w);
    }
  });

  test('the connections-per-user limit (20) counts both brokers', async () => {
    const u = await newUser('pr_many');
    const conns = [];
    try {
      for (let i = 0; i < 20; i++) conns.push(await connect(u, { url: i % 2 ? OTHER_URL : edgeUrl(0) }));
      for (const url of [edgeUrl(0), OTHER_URL]) {
        await assert.rejects(connect(u, { url }), (e) => e.refused === true && e.code === 0x87,
          `a 21st connection on ${url} was let in, or refused otherwise than with 0x87`);
      }
      // one closed frees a place at once: on its own broker the new connection takes the place
      // of the closed one (which lingers for the presence grace), and on another broker a
      // lingering connection does not count against the limit (a tab reloaded onto another
      // edge is not refused for its own ghost)
      await end(conns.shift()); // edge 0's
      conns.push(await connect(u, { url: edgeUrl(0) }));
      await end(conns.shift()); // the other broker's: it lingers there
      await sleep(300); // its close reached the broker
      conns.push(await connect(u, { url: edgeUrl(0) }));
      // and the limit holds: 20 again, the lingering one not among them
      for (const url of [edgeUrl(0), OTHER_URL]) {
        await assert.rejects(connect(u, { url }), (e) => e.refused === true && e.code === 0x87,
          `a 21st connection on ${url} was let in after the lingering place was taken`);
      }
    } finally {
      await end(...conns);
    }
  });

  test('an edge killed: after its lease its users go offline, unless connected elsewhere', async () => {
    const w = await connect(U.watcher, { url: OTHER_URL });
    await mustSubscribe(w, `presence/${c.id}/+`);
    const lone = await connect(U.lone, { url: edgeUrl(0) });
    const t1 = await connect(U.tabs, { url: edgeUrl(0) });
    const t2 = await connect(U.tabs, { url: OTHER_URL });
    await waitFor(() => statuses(w, c.id, U.lone.id).includes('online'), DELIVER_MS, 'lone online');
    await waitFor(() => statuses(w, c.id, U.tabs.id).includes('online'), DELIVER_MS, 'tabs online');
    const before0 = statuses(w, c.id, U.tabs.id).length;
    const t0 = Date.now();
    const pid = await killBroker('e0');
    try {
      await waitFor(() => statuses(w, c.id, U.lone.id).at(-1) === 'offline', REAP_MS, 'lone offline after the lease');
      const took = Date.now() - t0;
      // not before the lease ran out (renewed up to a fifth of it before the kill)
      assert.ok(took >= LEASE_MS - 3000, `offline ${took} ms after the kill, before the lease ended`);
      await sleep(1000);
      assert.equal(statuses(w, c.id, U.tabs.id).length, before0, 'a user still connected elsewhere was announced');
      assert.ok(!t2.closed, 'the tab on the live broker was closed');
    } finally {
      await startBroker('e0', pid);
      await end(lone, t1);
    }
    // the restarted edge does not disturb the user's count: the last tab still decides
    await sleep(1000);
    assert.equal(statuses(w, c.id, U.tabs.id).length, before0, 'announced when the edge came back');
    await end(t2);
    await waitFor(() => statuses(w, c.id, U.tabs.id).at(-1) === 'offline', DELIVER_MS, 'tabs offline at the last');
    await end(w);
  });
});

// A membership that ends ends the member's presence there (db/migrations/0046): the
// retained status on presence/<community>/<user> is cleared (a zero-length retained message)
// on the hub and on every edge, so nobody who subscribes later sees an ex-member, online or
// offline, forever; a subscriber sees the clear live. Leaving, a removal, a ban, an erased
// account, a deleted community. A user who is a member again by the time the clear would go
// out (left and rejoined) is not cleared. A retained status of a non-member that comes back
// from elsewhere (an edge that missed the clear while away from the hub sends the hub what it
// retains when its bridge reconnects) is cleared again (th-bridge, ghosts.c).
describe('presence when a membership ends', { timeout: 240000 }, () => {
  const BROKER_URLS = [HUB_URL, ...Array.from({ length: EDGES }, (_, i) => edgeUrl(i))];
  const svc = () => ({ id: 0, token: serviceSecret() });
  const svcOpts = (url) => ({ url, username: 'th-service', clientId: `svc-pres-${rnd(4)}` });

  // Live payloads of presence/<cid>/<uid> that conn received, in order ('' is a clear).
  const live = (conn, cid, uid) => conn.messages
    .filter((m) => m.topic === `presence/${cid}/${uid}` && !m.retain).map((m) => m.payload);

  // What a new subscriber to presence/<cid>/+ gets retained for uid on each broker (the hub
  // and every edge): {url: [payloads]}. `who`: a member, or null for the service account
  // (a deleted community has no members).
  async function retainedEverywhere(who, cid, uid) {
    const out = {};
    for (const url of BROKER_URLS) {
      const c = who ? await connect(who, { url }) : await connect(svc(), svcOpts(url));
      await mustSubscribe(c, `presence/${cid}/+`);
      await sleep(800);
      out[url] = c.messages.filter((m) => m.topic === `presence/${cid}/${uid}` && m.retain)
        .map((m) => m.payload);
      await end(c);
    }
    return out;
  }
  const nowhere = (got) => Object.fromEntries(Object.keys(got).map((k) => [k, []]));
  after(() => closeClients());

  // u online on edge 0 and watched live from another broker by `watcher`; end() ends the
  // membership; then the watcher sees the clear, u goes offline, and no broker keeps a status
  // of u in c for a new subscriber (`reader`: who subscribes afterwards).
  async function endsWhileOnline({ c, u, watcher, reader = watcher, end: endIt }) {
    const w = await connect(watcher, { url: OTHER_URL });
    await mustSubscribe(w, `presence/${c.id}/+`);
    const cu = await connect(u, { url: edgeUrl(0) });
    await waitFor(() => live(w, c.id, u.id).some((p) => p.includes('"online"')), DELIVER_MS, 'online');
    await endIt();
    await waitFor(() => live(w, c.id, u.id).at(-1) === '', DELIVER_MS,
      () => `the live clear of ${u.id}'s presence: got ${JSON.stringify(live(w, c.id, u.id))}`);
    await end(cu);
    await sleep(GRACE_MS + 1500); // an "offline" would have come by now
    assert.equal(live(w, c.id, u.id).at(-1), '', `a status after the clear: ${live(w, c.id, u.id)}`);
    await end(w);
    const got = await retainedEverywhere(reader, c.id, u.id);
    assert.deepEqual(got, nowhere(got), 'a retained status of the ex-member');
  }

  test('a member who leaves while online: cleared everywhere, seen live', async () => {
    const owner = await newUser('pg_own');
    const u = await newUser('pg_leave');
    const c = await community(owner, 'public', [u]);
    await endsWhileOnline({
      c, u, watcher: owner,
      end: async () => assertStatus(await api('POST', `/api/communities/${c.id}/leave`, u), 204),
    });
    // and a member who joins afterwards sees nothing of them either
    const late = await newUser('pg_late');
    assertStatus(await api('POST', `/api/communities/${c.id}/join`, late), 200);
    const got = await retainedEverywhere(late, c.id, u.id);
    assert.deepEqual(got, nowhere(got), 'a new member sees the ex-member');
  });

  test('a member removed, or banned, while online: cleared everywhere', async () => {
    const owner = await newUser('pg_own');
    const r = await newUser('pg_removed');
    const b = await newUser('pg_banned');
    const c = await community(owner, 'private', [[r, 'member'], [b, 'member']]);
    await endsWhileOnline({
      c, u: r, watcher: owner,
      end: async () => assertStatus(await api('DELETE', `/api/communities/${c.id}/members/${r.id}`, owner), 204),
    });
    await endsWhileOnline({
      c, u: b, watcher: owner,
      end: async () => assertStatus(await api('POST', `/api/communities/${c.id}/bans`, owner, { user_id: b.id }), 201),
    });
  });

  test('an account erased while online: its presence cleared in each of its communities', async () => {
    const owner = await newUser('pg_own');
    const e = await newUser('pg_erased');
    const c1 = await community(owner, 'public', [e]);
    const c2 = await community(owner, 'private', [[e, 'moderator']]);
    const w2 = await connect(owner, { url: OTHER_URL });
    await mustSubscribe(w2, `presence/${c2.id}/+`);
    await endsWhileOnline({
      c: c1, u: e, watcher: owner,
      end: async () => assertStatus(await api('DELETE', '/api/auth/me', e, { password: e.password }), 202),
    });
    assert.equal(live(w2, c2.id, e.id).at(-1), '', `the second community: ${live(w2, c2.id, e.id)}`);
    await end(w2);
    const got = await retainedEverywhere(owner, c2.id, e.id);
    assert.deepEqual(got, nowhere(got), 'a retained status of the erased account');
  });

  test('a community deleted: its members\' retained presence goes with it', async () => {
    const owner = await newUser('pg_own');
    const u = await newUser('pg_member');
    const c = await community(owner, 'public', [u]);
    const cu = await connect(u, { url: edgeUrl(0) });
    const co = await connect(owner, { url: OTHER_URL });
    await waitFor(async () => {
      const got = await retainedEverywhere(null, c.id, u.id);
      return Object.values(got).every((p) => p.length === 1);
    }, 15000, 'the member online on every broker');
    assertStatus(await api('DELETE', `/api/communities/${c.id}`, owner), 204);
    await sleep(1500);
    await end(cu, co);
    for (const who of [u, owner]) {
      const got = await retainedEverywhere(null, c.id, who.id);
      assert.deepEqual(got, nowhere(got), `a retained status of ${who.username} in the deleted community`);
    }
  });

  // The hub down when the membership ends: the clear waits in the outbox (th-bridge cannot
  // publish it) and goes out once the hub is back. The edges kept the member's status while
  // they were away from the hub and hand it to the hub again when their bridges reconnect,
  // before or after the clear: no broker keeps it in the end.
  test('the hub down when a member leaves: cleared everywhere once it is back', async () => {
    const owner = await newUser('pg_own');
    const u = await newUser('pg_hubdown');
    const c = await community(owner, 'public', [u]);
    const cu = await connect(u, { url: edgeUrl(0) });
    await waitFor(async () => Object.values(await retainedEverywhere(owner, c.id, u.id))
      .every((p) => p.length === 1), 15000, 'the member online on every broker');
    const pid = await killBroker('hub', 'SIGTERM'); // it saves the status in its file
    try {
      assertStatus(await api('POST', `/api/communities/${c.id}/leave`, u), 204);
      await end(cu);
      await sleep(GRACE_MS + 1000);
    } finally {
      await startBroker('hub', pid);
    }
    let got = {};
    await waitFor(async () => {
      got = await retainedEverywhere(owner, c.id, u.id);
      return Object.values(got).every((p) => p.length === 0);
    }, 30000, () => `the ex-member's status after the hub came back: ${JSON.stringify(got)}`);
  });

  // The clear is queued in the transaction that ends the membership and published by the
  // relay after it checked the membership: a leave and a rejoin that both commit before the
  // relay runs (here: in one transaction) leave the online user online.
  test('left and rejoined before the clear went out: the online user stays online', async () => {
    const owner = await newUser('pg_own');
    const u = await newUser('pg_back');
    const c = await community(owner, 'public', [u]);
    const w = await connect(owner, { url: OTHER_URL });
    await mustSubscribe(w, `presence/${c.id}/+`);
    const cu = await connect(u, { url: edgeUrl(0) });
    await waitFor(() => statuses(w, c.id, u.id).length > 0, DELIVER_MS, 'online');
    const r = await psql(`SELECT set_config('townhall.actor_id', '${u.id}', true); `
      + `DELETE FROM memberships WHERE community_id = ${c.id} AND user_id = ${u.id}; `
      + `INSERT INTO memberships (community_id, user_id, role) VALUES (${c.id}, ${u.id}, 'member')`);
    assert.equal(r.code, 0, r.stderr);
    await sleep(2000);
    assert.deepEqual(live(w, c.id, u.id).filter((p) => p === ''), [], 'cleared although a member again');
    const got = await retainedEverywhere(owner, c.id, u.id);
    for (const [url, p] of Object.entries(got)) {
      assert.equal(p.length, 1, `${url}: ${JSON.stringify(p)}`);
      assert.equal(JSON.parse(p[0]).status, 'online', url);
    }
    await end(cu, w);
  });

  // Over REST: a leave, a join right after it, and the reconnect a client makes after joining
  // (townhall.js: the broker announces presence at connect): online on every broker, whichever
  // came first at the relay.
  test('left and rejoined quickly over REST, reconnected: online everywhere', async () => {
    const owner = await newUser('pg_own');
    const u = await newUser('pg_rejoin');
    const c = await community(owner, 'public', [u]);
    const w = await connect(owner, { url: OTHER_URL });
    await mustSubscribe(w, `presence/${c.id}/+`);
    let cu = await connect(u, { url: edgeUrl(0) });
    await waitFor(() => statuses(w, c.id, u.id).length > 0, DELIVER_MS, 'online');
    assertStatus(await api('POST', `/api/communities/${c.id}/leave`, u), 204);
    assertStatus(await api('POST', `/api/communities/${c.id}/join`, u), 200);
    const again = await connect(u, { url: edgeUrl(0) });
    await end(cu);
    cu = again;
    await sleep(2500);
    const got = await retainedEverywhere(owner, c.id, u.id);
    for (const [url, p] of Object.entries(got)) {
      assert.equal(p.length, 1, `${url}: ${JSON.stringify(p)}`);
      assert.equal(JSON.parse(p[0]).status, 'online', url);
    }
    assert.equal(live(w, c.id, u.id).at(-1) && JSON.parse(live(w, c.id, u.id).at(-1)).status, 'online',
      `live: ${live(w, c.id, u.id)}`);
    await end(cu, w);
  });

  // An edge whose bridge was away from the hub when a clear went out keeps the old status and
  // sends it to the hub again when its bridge reconnects (2.0.11 sends every retained message
  // under a bridged topic): th-bridge sees it pass and has it cleared again. Here the service
  // account publishes such a message on edge 0, as that edge's bridge would.
  test('a retained status of a non-member that comes back is cleared again', async () => {
    const owner = await newUser('pg_own');
    const gone = await newUser('pg_ghost');
    const c = await community(owner, 'public', []);
    const w = await connect(owner, { url: OTHER_URL });
    await mustSubscribe(w, `presence/${c.id}/+`);
    const s = await connect(svc(), svcOpts(edgeUrl(0)));
    const payload = JSON.stringify({ status: 'online', at: new Date().toISOString() });
    assert.ok(await publish(s, `presence/${c.id}/${gone.id}`, payload, { retain: true }) < 0x80);
    await end(s);
    await waitFor(() => live(w, c.id, gone.id).at(-1) === '', DELIVER_MS,
      () => `the clear of a non-member's status: got ${JSON.stringify(live(w, c.id, gone.id))}`);
    await end(w);
    const got = await retainedEverywhere(owner, c.id, gone.id);
    assert.deepEqual(got, nowhere(got), 'a retained status of a non-member');
  });
});
