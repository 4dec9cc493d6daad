// A ban reaches calls, issue 17 point 7, black-box: a member who is banned from, removed from,
// or leaves a community is out of its ongoing calls at once — the participant list, the Redis
// set the broker's signal ACL reads, call_left (and call_ended for the last one) on
// events/community/<id> — and the broker refuses signal messages from and to them from the
// first publish after the REST answer (the plugin asks Redis for call membership every time;
// no 5 s cache in between). A banned member cannot join again. A deleted community's calls
// go with it, Redis sets included.
// Client addresses: registrations from 127.23.x.y (lib/fixtures.mjs).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { sleep } from './lib/http.mjs';
import { assertError, assertStatus } from './lib/assert.mjs';
import { rnd, api, fixtures } from './lib/fixtures.mjs';
import { redis } from './lib/stack.mjs';
import {
  DELIVER_MS, closeClients, connect, end, mustSubscribe, publish, waitFor, hasPayload,
} from './lib/mqtt.mjs';

const { newUser, community } = fixtures({ net: 23, slug: 'cb', name: 'Call bans', general: true });
after(closeClients);

const participantsKey = (id) => `th:call:${id}:participants`;
const smembers = async (key) => (await redis('SMEMBERS', key)).split('\n').filter(Boolean).map(Number).sort((a, b) => a - b);
const participants = async (call, who) => assertStatus(await api('GET', `/api/calls/${call}`, who), 200).json.participants.map((u) => u.id).sort((a, b) => a - b);
const events = (conn, cid) => conn.messages.filter((m) => m.topic === `events/community/${cid}`).map((m) => JSON.parse(m.payload));

// owner and peer in a call of a fresh community's #general, both connected and subscribed to
// their signal topics; the owner also to the community's events.
async function callStage(tag, extra = []) {
  const owner = await newUser(`${tag}o`);
  const peer = await newUser(`${tag}p`);
  const c = await community(owner, 'public', [peer, ...extra]);
  const call = assertStatus(await api('POST', '/api/calls', owner, { channel_id: c.channel }), 201).json.id;
  assertStatus(await api('POST', `/api/calls/${call}/join`, peer), 200);
  const a = await connect(owner);
  const b = await connect(peer);
  await mustSubscribe(a, `signal/${call}/${owner.id}/+`);
  await mustSubscribe(b, `signal/${call}/${peer.id}/+`);
  await mustSubscribe(a, `events/community/${c.id}`);
  const sig = (to, from) => `signal/${call}/${to.id}/${from.id}`;
  // control: they signal each other (fills the plugin's caches, as a live call would)
  const offer = JSON.stringify({ type: 'offer', n: rnd() });
  assert.ok(await publish(a, sig(peer, owner), offer) < 0x80, 'owner -> peer refused before the ban');
  await waitFor(() => hasPayload(b, (m) => m.payload === offer), DELIVER_MS, 'the offer at the peer');
  const answer = JSON.stringify({ type: 'answer', n: rnd() });
  assert.ok(await publish(b, sig(owner, peer), answer) < 0x80, 'peer -> owner refused before the ban');
  await waitFor(() => hasPayload(a, (m) => m.payload === answer), DELIVER_MS, 'the answer at the owner');
  return { owner, peer, c, call, a, b, sig };
}

// The peer is out of the call: at once in REST and Redis, and the broker refuses signals both
// ways on the first try, and delivers nothing to the peer.
async function assertOut({ owner, peer, c, call, a, b, sig }, what) {
  assert.deepEqual(await participants(call, owner), [owner.id], `${what}: participants`);
  assert.deepEqual(await smembers(participantsKey(call)), [owner.id], `${what}: Redis participant set`);
  const fromPeer = JSON.stringify({ type: 'candidate', after: what, n: rnd() });
  const toPeer = JSON.stringify({ type: 'candidate', to: 'gone', n: rnd() });
  const rc1 = await publish(b, sig(owner, peer), fromPeer);
  const rc2 = await publish(a, sig(peer, owner), toPeer);
  assert.ok(rc1 >= 0x80, `${what}: the peer's signal was accepted (PUBACK ${rc1})`);
  assert.ok(rc2 >= 0x80, `${what}: a signal to the peer was accepted (PUBACK ${rc2})`);
  await waitFor(() => events(a, c.id).some((e) => e.type === 'call_left' && e.call_id === call && e.user_id === peer.id),
    DELIVER_MS, `${what}: call_left of the peer on events/community`);
  await sleep(300);
  assert.ok(!hasPayload(a, (m) => m.payload === fromPeer), `${what}: the peer's signal was delivered`);
  assert.ok(!hasPayload(b, (m) => m.payload === toPeer), `${what}: a signal reached the peer`);
}

describe('a ban, a removal or a leave takes the member out of the community\'s calls at once', { timeout: 120000 }, () => {
  test('ban: out of the call, signals refused both ways at once, cannot join again', async () => {
    const s = await callStage('cbb');
    try {
      assertStatus(await api('POST', `/api/communities/${s.c.id}/bans`, s.owner, { user_id: s.peer.id, reason: 'test' }), 201);
      await assertOut(s, 'after the ban');
      assertError(await api('POST', `/api/calls/${s.call}/join`, s.peer), 403, 'banned');
      assertError(await api('POST', '/api/calls', s.peer, { channel_id: s.c.channel }), 403, 'banned');
      assert.deepEqual(await participants(s.call, s.owner), [s.owner.id]);
      // the call goes on for the others: the owner is still in it
      assert.equal(assertStatus(await api('GET', `/api/calls/${s.call}`, s.owner), 200).json.ended_at, null);
    } finally {
      await end(s.a, s.b);
    }
  });

  test('removal (DELETE /members/:user_id): out of the call at once', async () => {
    const s = await callStage('cbr');
    try {
      assertStatus(await api('DELETE', `/api/communities/${s.c.id}/members/${s.peer.id}`, s.owner), 204);
      await assertOut(s, 'after the removal');
    } finally {
      await end(s.a, s.b);
    }
  });

  test('leaving the community: out of the call at once', async () => {
    const s = await callStage('cbl');
    try {
      assertStatus(await api('POST', `/api/communities/${s.c.id}/leave`, s.peer), 204);
      await assertOut(s, 'after leaving');
    } finally {
      await end(s.a, s.b);
    }
  });

  test('the last participant banned: the call ends (call_ended), its Redis set is gone', async () => {
    const owner = await newUser('cbeo');
    const lone = await newUser('cbel');
    const c = await community(owner, 'public', [lone]);
    const a = await connect(owner);
    try {
      await mustSubscribe(a, `events/community/${c.id}`);
      const call = assertStatus(await api('POST', '/api/calls', lone, { channel_id: c.channel }), 201).json.id;
      assert.deepEqual(await smembers(participantsKey(call)), [lone.id]);
      assertStatus(await api('POST', `/api/communities/${c.id}/bans`, owner, { user_id: lone.id }), 201);
      const got = assertStatus(await api('GET', `/api/calls/${call}`, owner), 200).json;
      assert.deepEqual(got.participants, []);
      assert.notEqual(got.ended_at, null, 'the call did not end');
      assert.equal(await redis('EXISTS', participantsKey(call)), '0');
      await waitFor(() => events(a, c.id).some((e) => e.type === 'call_ended' && e.call_id === call), DELIVER_MS, 'call_ended');
      // a ban of someone in no call changes nothing else
      const idle = await newUser('cbei');
      assertStatus(await api('POST', `/api/communities/${c.id}/join`, idle), 200);
      assertStatus(await api('POST', `/api/communities/${c.id}/bans`, owner, { user_id: idle.id }), 201);
    } finally {
      await end(a);
    }
  });

  test('a deleted community takes its ongoing calls with it: Redis sets gone, signals refused at once', async () => {
    const s = await callStage('cbd');
    try {
      assertStatus(await api('DELETE', `/api/communities/${s.c.id}`, s.owner), 204);
      assert.equal(await redis('EXISTS', participantsKey(s.call)), '0');
      const rc1 = await publish(s.b, s.sig(s.owner, s.peer), JSON.stringify({ type: 'bye', n: rnd() }));
      const rc2 = await publish(s.a, s.sig(s.peer, s.owner), JSON.stringify({ type: 'bye', n: rnd() }));
      assert.ok(rc1 >= 0x80 && rc2 >= 0x80, `signals in a deleted community's call accepted: ${rc1}, ${rc2}`);
      assertError(await api('GET', `/api/calls/${s.call}`, s.owner), 404, 'not_found');
    } finally {
      await end(s.a, s.b);
    }
  });

  test('joins racing a ban never leave the banned member in the call', async () => {
    const owner = await newUser('cbjo');
    const c = await community(owner, 'public');
    const call = assertStatus(await api('POST', '/api/calls', owner, { channel_id: c.channel }), 201).json.id;
    for (let round = 0; round < 5; round++) {
      const u = await newUser('cbju');
      assertStatus(await api('POST', `/api/communities/${c.id}/join`, u), 200);
      const joins = Array.from({ length: 6 }, () => api('POST', `/api/calls/${call}/join`, u));
      const ban = api('POST', `/api/communities/${c.id}/bans`, owner, { user_id: u.id });
      const rs = await Promise.all([...joins, ban]);
      assertStatus(rs[rs.length - 1], 201, 'ban:');
      for (const r of rs.slice(0, -1)) assert.ok([200, 403].includes(r.status), `join: ${r.status} ${r.text}`);
      assert.deepEqual(await participants(call, owner), [owner.id], `round ${round}: the banned member is in the call`);
      assert.deepEqual(await smembers(participantsKey(call)), [owner.id], `round ${round}: Redis set`);
    }
  });
});
