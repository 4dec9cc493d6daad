// A chat message that makes its batch's transaction fail on its own ("poisoned") costs nobody
// else (realtime-bridge/bridge/main.c out_failed, docs/operations.md "Quarantined chat
// messages"): the bridge tries the batch again in halves down to single messages, stores every
// other message, quarantines the poisoned one in message_quarantine, acknowledges it, tells its
// sender {"type":"refused","reason":"store_failed","ids":[...]} on user/<id>/inbox, counts it in
// th_messages_quarantined_total, and keeps persisting what comes next. Before, the batch failed
// again after every redelivery and nobody's chat was stored any more.
//
// The poison: a trigger on messages, made by this file in the stack's own database (the test
// role owns the schema), that raises for a body holding a marker; dropped at the end.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rnd, uuid, api, fixtures, fullHistory } from './lib/fixtures.mjs';
import { psql, poolMetrics, metric } from './lib/stack.mjs';
import {
  DELIVER_MS, closeClients, connect, end, mustSubscribe, publish, waitFor,
} from './lib/mqtt.mjs';

const STORED_MS = 30000; // every receipt of the burst arrives within this (a slow shared machine)
const MARKER = `poison-${rnd(6)}`;
const { newUser, community } = fixtures({ net: 81, slug: 'bp', name: 'Poison', general: true });

const parsed = (m) => { try { return JSON.parse(m.payload); } catch { return null; } };
// the inbox notices of type `type` a connection received, and the ids they named
const notices = (conn, type) => conn.messages.map(parsed).filter((o) => o && o.type === type);
const named = (conn, type) => new Set(notices(conn, type).flatMap((o) => o.ids ?? []));

async function sql(text) {
  const r = await psql(text);
  assert.equal(r.code, 0, `psql: ${text}\n${r.stderr}`);
  return r.stdout.trim();
}

before(async () => {
  await sql(`CREATE OR REPLACE FUNCTION th_test_poison() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF strpos(NEW.body, '${MARKER}') > 0 THEN
        RAISE EXCEPTION 'poisoned chat message (bridge_poison.test.mjs)';
      END IF;
      RETURN NEW;
    END $$`);
  await sql(`CREATE TRIGGER th_test_poison BEFORE INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION th_test_poison()`);
}, { timeout: 30000 });
after(async () => {
  await closeClients();
  await sql('DROP TRIGGER IF EXISTS th_test_poison ON messages; DROP FUNCTION IF EXISTS th_test_poison()');
}, { timeout: 30000 });

describe('a poisoned chat message is quarantined; everybody else\'s are stored', { timeout: 180000 }, () => {
  test('3 senders publish at once, one message poisoned: the others stored once each, the poisoned one quarantined and refused, later ones stored', async () => {
    const users = [];
    for (const k of ['a', 'b', 'c']) users.push(await newUser(`bp${k}`));
    const [A, B, C] = users;
    const c = await community(A, 'public', [B, C]);
    const conns = [];
    try {
      for (const u of users) {
        const conn = await connect(u);
        conns.push(conn);
        await mustSubscribe(conn, `user/${u.id}/inbox`);
      }
      const m0 = await poolMetrics('bridge');
      // 15 a sender (under the edges' chat burst of 30), published without waiting so that
      // the bridge reads them as one or a few batches; B's 8th carries the marker
      const PER = 15;
      const sent = users.map((u) => Array.from({ length: PER }, (_, n) => ({
        id: uuid(), body: `sender=${u.id} n=${n}${u === B && n === 7 ? ` ${MARKER}` : ''}`,
      })));
      const poison = sent[1][7];
      const codes = await Promise.all(users.flatMap((u, i) => sent[i].map((m) => publish(conns[i], `chat/${c.channel}/${u.id}`, JSON.stringify(m)))));
      assert.ok(codes.every((rc) => rc < 0x80), `a publish was refused: ${codes.join(',')}`);
      const good = sent.map((ms) => ms.filter((m) => m !== poison));

      // every sender's stored receipts name each of their good messages; B hears of the
      // poisoned one as refused (store_failed), and it is never named as stored
      const diag = () => users.map((u, i) => `u${u.id}: stored ${named(conns[i], 'stored').size}/${good[i].length}, refused ${JSON.stringify(notices(conns[i], 'refused'))}`).join('; ');
      await waitFor(() => users.every((u, i) => good[i].every((m) => named(conns[i], 'stored').has(m.id)))
        && notices(conns[1], 'refused').some((o) => o.reason === 'store_failed'), STORED_MS,
      () => `every receipt and B's refusal (${diag()})`);
      const refused = notices(conns[1], 'refused').filter((o) => o.reason === 'store_failed');
      assert.deepEqual(refused.flatMap((o) => o.ids), [poison.id], `B's store_failed notices: ${JSON.stringify(refused)}`);
      assert.ok(!named(conns[1], 'stored').has(poison.id), 'the poisoned message was receipted as stored');
      for (const i of [0, 2]) assert.equal(notices(conns[i], 'refused').length, 0, `user ${users[i].id} got a refusal`);

      // the history: each good message once, with its body and sender; not the poisoned one
      const items = await fullHistory(c.channel, A);
      const ids = items.map((m) => m.id);
      assert.equal(new Set(ids).size, ids.length, 'a message stored twice');
      assert.deepEqual([...ids].sort(), good.flat().map((m) => m.id).sort(), 'history differs from the good messages');
      for (const m of items) {
        const i = users.findIndex((u) => u.id === m.sender.id);
        assert.equal(good[i].find((g) => g.id === m.id)?.body, m.body, `message ${m.id}: body or sender differs`);
      }
      // per sender, the publish order kept
      for (const [i, u] of users.entries()) {
        const mine = items.filter((m) => m.sender.id === u.id).sort((x, y) => x.seq - y.seq).map((m) => m.id);
        assert.deepEqual(mine, good[i].map((m) => m.id), `sender ${u.id}: order differs`);
      }

      // the quarantine: one row, as published, with why
      const row = await sql(`SELECT channel_id, sender_id, body, reply_to IS NULL, sqlstate, attempts
        FROM message_quarantine WHERE id = '${poison.id}'`);
      assert.equal(row, `${c.channel}|${B.id}|${poison.body}|t|P0001|1`, 'the quarantined row');
      assert.equal(await sql(`SELECT count(*) FROM messages WHERE id = '${poison.id}'`), '0');
      const m1 = await poolMetrics('bridge');
      assert.ok('th_messages_quarantined_total' in m1, `no th_messages_quarantined_total in /metrics/bridge: ${Object.keys(m1).join(', ')}`);
      assert.ok(metric(m1, 'th_messages_quarantined_total') - metric(m0, 'th_messages_quarantined_total') >= 1,
        'th_messages_quarantined_total did not grow');

      // no stall: what comes next is stored; B sending the poisoned one again (same id)
      // adds an attempt to its row, no second row, and is refused again
      const later = { id: uuid(), body: 'after the poison' };
      assert.ok(await publish(conns[0], `chat/${c.channel}/${A.id}`, JSON.stringify(later)) < 0x80);
      assert.ok(await publish(conns[1], `chat/${c.channel}/${B.id}`, JSON.stringify(poison)) < 0x80);
      const later2 = { id: uuid(), body: 'after the poison again' };
      assert.ok(await publish(conns[2], `chat/${c.channel}/${C.id}`, JSON.stringify(later2)) < 0x80);
      await waitFor(() => named(conns[0], 'stored').has(later.id) && named(conns[2], 'stored').has(later2.id),
        STORED_MS, 'the receipts of the messages sent after the poison');
      await waitFor(async () => (await sql(`SELECT attempts FROM message_quarantine WHERE id = '${poison.id}'`)) === '2',
        DELIVER_MS * 2, 'the re-sent poisoned message to count a second attempt');
      assert.equal(await sql(`SELECT count(*) FROM message_quarantine WHERE id = '${poison.id}'`), '1');
      await waitFor(() => notices(conns[1], 'refused').filter((o) => o.reason === 'store_failed').length >= 2,
        DELIVER_MS * 2, 'a second store_failed notice for the re-sent message');
      const after2 = await fullHistory(c.channel, A);
      assert.equal(after2.length, good.flat().length + 2, 'history after the later messages');
      assert.ok(!after2.some((m) => m.id === poison.id), 'the poisoned message got stored');

      // the operator's replay (docs/operations.md "Quarantined chat messages") once the cause
      // is gone: the message is stored, its row deleted
      await sql('DROP TRIGGER th_test_poison ON messages');
      const replayed = await sql(`SELECT s.status FROM (SELECT array_agg(id ORDER BY created_at) i,
          array_agg(channel_id ORDER BY created_at) c, array_agg(sender_id ORDER BY created_at) u,
          array_agg(body ORDER BY created_at) b, array_agg(reply_to ORDER BY created_at) r
        FROM message_quarantine WHERE id = '${poison.id}') q, message_store(q.i, q.c, q.u, q.b, q.r) s;
        DELETE FROM message_quarantine WHERE id = '${poison.id}'`);
      assert.match(replayed, /^1\b/, `replay: ${replayed}`);
      const after3 = await fullHistory(c.channel, A);
      assert.equal(after3.filter((m) => m.id === poison.id).length, 1, 'the replayed message is not in the history once');
      assert.equal(await sql(`SELECT count(*) FROM message_quarantine WHERE id = '${poison.id}'`), '0');
    } finally {
      await end(...conns);
    }
  });
});

// message_quarantine has no foreign key (its insert must not fail): an erased account's text
// there goes with the account by a trigger of migration 0043.
describe('an erased account\'s quarantined messages are deleted with it', { timeout: 90000 }, () => {
  test('a quarantined row of a user, then DELETE /api/auth/me: the row is gone, another user\'s stays', async () => {
    const [D, E] = [await newUser('bpd'), await newUser('bpe')];
    const [d, e] = [uuid(), uuid()];
    await sql(`INSERT INTO message_quarantine (id, channel_id, sender_id, body, sqlstate, error)
      VALUES ('${d}', 1, ${D.id}, 'of D', 'P0001', 'test'), ('${e}', 1, ${E.id}, 'of E', 'P0001', 'test')`);
    const r = await api('DELETE', '/api/auth/me', D, { password: D.password }, { timeoutMs: 70000 });
    assert.equal(r.status, 202, `erase: ${r.status} ${r.text}`);
    await waitFor(async () => (await sql(`SELECT count(*) FROM message_quarantine WHERE id = '${d}'`)) === '0',
      60000, 'the erased user\'s quarantined row to go');
    assert.equal(await sql(`SELECT count(*) FROM message_quarantine WHERE id = '${e}'`), '1', 'another user\'s row went too');
    await sql(`DELETE FROM message_quarantine WHERE id = '${e}'`);
  });
});
