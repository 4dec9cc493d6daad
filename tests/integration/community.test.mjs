// Community service, black-box over HTTP against ../shared/API.md ("Conventions",
// "Communities and members", "Posts, comments, reactions, search") and issue 4 (cache,
// events, Redis membership mirror).
//
// Design notes
// - Client addresses. Registrations are rate limited per address (tests/integration/run:
//   3 per 5 s), so every registration here comes from its own source address 127.3.x.y
//   (auth.test.mjs uses 127.1.x.y, foundation 127.0.0.2). Every other request comes from
//   127.0.0.1.
// - Isolation. Every test builds its own community (fresh slug) with the cast it needs;
//   the users are shared (registered once, in `before`). Lists that are global (GET
//   /api/communities) are checked relative to the communities this file created.
// - Redis. The mirror tests read Redis directly with redis-cli and FLUSHALL it before
//   running scripts/mirror-rebuild; the outage test stops Redis by its pid file (like
//   foundation.test.mjs) and brings it back with scripts/stack up. Both come last.
// - Events. psql LISTENs on townhall_events in a child process for a few seconds while the
//   test acts; psql prints one "Asynchronous notification ..." line per event.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  request, get, run, readPid, waitGone, until, parseProm, sleep, LOCAL_ONLY, PORT_BASE,
} from './lib/http.mjs';
import { show, assertError, assertStatus } from './lib/assert.mjs';
import { uniq, api, fixtures } from './lib/fixtures.mjs';
import { redis as redisRaw, psql, listen, listening, stackUp, appsBack } from './lib/stack.mjs';

const RFC3339_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

// --- helpers ----------------------------------------------------------------

const { freshAddr, newUser, community } = fixtures({ net: 3, slug: 'c', name: 'Name' });
const getC = (cid, who) => api('GET', `/api/communities/${cid}`, who);
async function memberCount(cid, who) {
  const r = await getC(cid, who);
  assertStatus(r, 200);
  return r.json.member_count;
}
async function memberIds(cid, who) {
  const r = await api('GET', `/api/communities/${cid}/members?limit=100`, who);
  assertStatus(r, 200);
  return new Map(r.json.items.map((m) => [m.user.id, m.role]));
}

function assertUser(u, id, what) {
  assert.ok(u && typeof u === 'object', `${what}: user missing`);
  assert.equal(u.id, id, `${what}: user.id ${JSON.stringify(u)}`);
  assert.equal(typeof u.username, 'string');
  assert.ok(!('email' in u), `${what}: public user must not carry email: ${JSON.stringify(u)}`);
  assert.match(String(u.created_at), RFC3339_MS);
}

function assertCommunity(c, exp) {
  for (const k of ['id', 'slug', 'name', 'description', 'visibility', 'owner_id', 'member_count', 'created_at', 'my_role']) {
    assert.ok(k in c, `community.${k} missing: ${JSON.stringify(c)}`);
  }
  assert.ok(Number.isInteger(c.id) && c.id > 0, JSON.stringify(c));
  assert.ok(Number.isInteger(c.owner_id), JSON.stringify(c));
  assert.ok(Number.isInteger(c.member_count), JSON.stringify(c));
  assert.match(c.created_at, RFC3339_MS);
  for (const [k, v] of Object.entries(exp)) assert.deepEqual(c[k], v, `community.${k}: ${JSON.stringify(c)}`);
}

const BAD_IDS = ['abc', '99999999999999999999', '-1', '0', '1.5', '1e3'];
const NO_SUCH_ID = '9000000000000000000';

// --- users shared by every test -------------------------------------------------

const U = {};
before(async () => {
  const names = ['owner', 'admin', 'admin2', 'mod', 'mod2', 'member', 'member2', 'outsider', 'joiner', 'victim', 'other'];
  const users = await Promise.all(names.map((n) => newUser(n.slice(0, 6))));
  names.forEach((n, i) => { U[n] = users[i]; });
});

// --- communities ---------------------------------------------------------------

describe('communities: create, get, list', () => {
  test('POST /api/communities -> 201, creator is owner, a #general channel exists', async () => {
    const slug = uniq('new');
    const res = await api('POST', '/api/communities', U.owner, { slug, name: 'Grüße 👋', description: 'line1\nline2', visibility: 'public' });
    assertStatus(res, 201);
    assertCommunity(res.json, {
      slug, name: 'Grüße 👋', description: 'line1\nline2', visibility: 'public', owner_id: U.owner.id, member_count: 1, my_role: 'owner',
    });
    assert.ok(Math.abs(Date.parse(res.json.created_at) - Date.now()) < 10 * 60 * 1000);
    const m = await memberIds(res.json.id, U.owner);
    assert.deepEqual([...m], [[U.owner.id, 'owner']]);
    const ch = await api('GET', `/api/communities/${res.json.id}/channels`, U.owner);
    assertStatus(ch, 200);
    assert.deepEqual(ch.json.items.map((c) => c.name), ['general']);
    assert.equal(ch.json.items[0].community_id, res.json.id);
    assert.equal(ch.json.next_cursor, null);
    // the description is optional
    const r2 = await api('POST', '/api/communities', U.owner, { slug: uniq('nd'), name: 'x', visibility: 'private' });
    assertStatus(r2, 201);
    assertCommunity(r2.json, { description: '', visibility: 'private', my_role: 'owner' });
  });

  test('POST /api/communities: anonymous -> 401, taken slug -> 409 conflict', async () => {
    const slug = uniq('dup');
    assertError(await api('POST', '/api/communities', null, { slug, name: 'x', visibility: 'public' }), 401, 'unauthorized');
    assertStatus(await api('POST', '/api/communities', U.owner, { slug, name: 'x', visibility: 'public' }), 201);
    assertError(await api('POST', '/api/communities', U.other, { slug, name: 'y', visibility: 'private' }), 409, 'conflict');
  });

  test('POST /api/communities: field rules -> 400 validation_failed naming the field', async () => {
    const ok = { slug: uniq('v'), name: 'n', visibility: 'public' };
    const cases = [
      [{ slug: 'a'.repeat(41) }, 'slug'],
      [{ slug: 'ab' }, 'slug'],
      [{ slug: 'Upper-case' }, 'slug'],
      [{ slug: 'has space' }, 'slug'],
      [{ slug: 'under_score' }, 'slug'],
      [{ slug: 'ünï-code' }, 'slug'],
      [{ slug: '' }, 'slug'],
      [{ slug: 12345 }, 'slug'],
      [{ slug: undefined }, 'slug'],
      [{ name: 'n'.repeat(101) }, 'name'],
      [{ name: 'é'.repeat(101) }, 'name'],
      [{ name: '' }, 'name'],
      [{ name: ['x'] }, 'name'],
      [{ name: undefined }, 'name'],
      [{ description: 'd'.repeat(2001) }, 'description'],
      [{ description: 42 }, 'description'],
      [{ visibility: 'secret' }, 'visibility'],
      [{ visibility: true }, 'visibility'],
      [{ visibility: undefined }, 'visibility'],
    ];
    for (const [patch, field] of cases) {
      const body = { ...ok, ...patch };
      for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
      assertError(await api('POST', '/api/communities', U.owner, body), 400, 'validation_failed', field);
    }
    // the limits themselves are allowed (lengths in characters, not bytes)
    const edge = await api('POST', '/api/communities', U.owner, {
      slug: `${'a'.repeat(31)}-${crypto.randomBytes(4).toString('hex')}`, name: 'é'.repeat(100), description: 'ü'.repeat(2000), visibility: 'public',
    });
    assertStatus(edge, 201);
    assert.equal(edge.json.slug.length, 40);
    assert.equal([...edge.json.name].length, 100);
    assertStatus(await api('POST', '/api/communities', U.owner, { ...ok, slug: `a-${crypto.randomBytes(2).toString('hex').slice(0, 1)}` }), 201);
  });

  test('malformed JSON -> 400 bad_json on every JSON route', async () => {
    const c = await community(U.owner, 'public', [[U.member, 'member']]);
    const p = await api('POST', `/api/communities/${c.id}/posts`, U.owner, { body: 'for bad json' });
    const postId = p.json?.id ?? 1;
    const routes = [
      ['POST', '/api/communities'],
      ['PATCH', `/api/communities/${c.id}`],
      ['PUT', `/api/communities/${c.id}/members/${U.member.id}`],
      ['POST', `/api/communities/${c.id}/bans`],
      ['POST', `/api/communities/${c.id}/channels`],
      ['POST', `/api/communities/${c.id}/posts`],
      ['PATCH', `/api/posts/${postId}`],
      ['POST', `/api/posts/${postId}/comments`],
    ];
    for (const [m, path] of routes) {
      for (const bad of ['{"slug":', 'not json', '{"a":1}}', '']) {
        const res = await api(m, path, U.owner, bad);
        assert.equal(res.status, 400, `${m} ${path} body ${JSON.stringify(bad)}: ${show(res)}`);
        assert.ok(['bad_json', 'validation_failed'].includes(res.json?.error?.code), `${m} ${path}: ${show(res)}`);
        if (bad !== '') assert.equal(res.json.error.code, 'bad_json', `${m} ${path} body ${JSON.stringify(bad)}: ${show(res)}`);
      }
      // JSON, but not an object
      const arr = await api(m, path, U.owner, '[1,2]');
      assert.equal(arr.status, 400, `${m} ${path} body [1,2]: ${show(arr)}`);
    }
  });

  test('GET /api/communities/:id: public to anyone; private to members only (404 otherwise)', async () => {
    const pub = await community(U.owner, 'public', [[U.member, 'member']]);
    const priv = await community(U.owner, 'private', [[U.member, 'member'], [U.mod, 'moderator']]);
    // public
    let r = await getC(pub.id, null);
    assertStatus(r, 200);
    assertCommunity(r.json, { id: pub.id, my_role: null, visibility: 'public', member_count: 2 });
    r = await getC(pub.id, U.outsider);
    assertCommunity(r.json, { my_role: null });
    r = await getC(pub.id, U.member);
    assertCommunity(r.json, { my_role: 'member' });
    // private
    assertError(await getC(priv.id, null), 404, 'not_found');
    assertError(await getC(priv.id, U.outsider), 404, 'not_found');
    r = await getC(priv.id, U.member);
    assertStatus(r, 200);
    assertCommunity(r.json, { my_role: 'member', visibility: 'private', member_count: 3 });
    r = await getC(priv.id, U.mod);
    assertCommunity(r.json, { my_role: 'moderator' });
    // the 404 of a private community looks exactly like that of a missing one
    const missing = await getC(NO_SUCH_ID, U.outsider);
    assertError(missing, 404, 'not_found');
    const hidden = await getC(priv.id, U.outsider);
    assert.equal(hidden.json.error.code, missing.json.error.code);
    // every read route of a private community: 404 to non-members and anonymous callers
    for (const sub of ['', '/members', '/posts', '/channels', '/search?q=x']) {
      for (const who of [null, U.outsider]) {
        assertError(await api('GET', `/api/communities/${priv.id}${sub}`, who), 404, 'not_found');
      }
      const ok = await api('GET', `/api/communities/${priv.id}${sub}`, U.member);
      assert.equal(ok.status, 200, `member GET ${sub}: ${show(ok)}`);
    }
  });

  test('GET /api/communities: public + own private ones, newest first, keyset pagination', async () => {
    const mine = await community(U.joiner, 'private');
    const theirs = await community(U.other, 'private');
    const pubA = await community(U.other, 'public');
    const pubB = await community(U.other, 'public');
    async function walk(who, limit) {
      const ids = [];
      const all = [];
      let cursor = null;
      for (let i = 0; i < 1000; i++) {
        const q = `?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const r = await api('GET', `/api/communities${q}`, who);
        assertStatus(r, 200, `list ${q}:`);
        assert.ok(Array.isArray(r.json.items));
        assert.ok(r.json.items.length <= limit, `more than ${limit} items`);
        assert.ok('next_cursor' in r.json);
        ids.push(...r.json.items.map((c) => c.id));
        all.push(...r.json.items);
        cursor = r.json.next_cursor;
        if (cursor === null) break;
        assert.equal(typeof cursor, 'string');
        assert.equal(r.json.items.length, limit, 'a page with a next_cursor is full');
      }
      return { ids, all };
    }
    const a = await walk(U.joiner, 100);
    // newest first, no duplicates
    for (let i = 1; i < a.ids.length; i++) assert.ok(a.ids[i] < a.ids[i - 1], `not newest first: ${a.ids.slice(0, 20)}`);
    assert.ok(a.ids.includes(mine.id), 'own private community missing');
    assert.ok(!a.ids.includes(theirs.id), "another user's private community listed");
    assert.ok(a.ids.includes(pubA.id) && a.ids.includes(pubB.id));
    assert.ok(a.ids.indexOf(pubB.id) < a.ids.indexOf(pubA.id));
    for (const c of a.all) assert.ok(c.visibility === 'public' || c.my_role !== null, `listed private community without a role: ${JSON.stringify(c)}`);
    assert.equal(a.all.find((c) => c.id === mine.id).my_role, 'owner');
    // small pages give the same sequence
    const b = await walk(U.joiner, 2);
    assert.deepEqual(b.ids, a.ids);
    // anonymous: public ones only
    const anon = await walk(null, 100);
    assert.ok(!anon.ids.includes(mine.id) && !anon.ids.includes(theirs.id));
    assert.ok(anon.ids.includes(pubB.id));
    for (const c of anon.all) { assert.equal(c.visibility, 'public'); assert.equal(c.my_role, null); }
    // the default page is 20
    const d = await api('GET', '/api/communities', U.joiner);
    assertStatus(d, 200);
    assert.equal(d.json.items.length, Math.min(20, a.ids.length));
    assert.deepEqual(d.json.items.map((c) => c.id), a.ids.slice(0, 20));
  });

  test('the test stack holds no demo data (TH_SEED_DEMO=0)', { skip: LOCAL_ONLY }, async () => {
    const r = await api('GET', '/api/communities?limit=100', null);
    assertStatus(r, 200);
    const demo = r.json.items.filter((c) => ['town-square', 'makers', 'core-team'].includes(c.slug));
    assert.deepEqual(demo, []);
    const login = await request('POST', '/api/auth/login', { body: { login: 'alice', password: 'townhall-demo' }, localAddress: freshAddr() });
    assertError(login, 401, 'unauthorized');
  });

  test('GET /api/communities: bad limit / cursor -> 400 naming the field', async () => {
    for (const l of ['0', '101', '-1', 'abc', '1.5', '99999999999999999999']) {
      assertError(await api('GET', `/api/communities?limit=${l}`, U.owner), 400, 'validation_failed', 'limit');
    }
    for (const c of ['!!!', 'not-a-cursor', 'x'.repeat(200), Buffer.from('abc').toString('base64url'), Buffer.from('1.2').toString('base64url')]) {
      assertError(await api('GET', `/api/communities?cursor=${c}`, U.owner), 400, 'validation_failed', 'cursor');
    }
    assertStatus(await api('GET', '/api/communities?limit=100', U.owner), 200);
    assertStatus(await api('GET', '/api/communities?limit=1', U.owner), 200);
    // the same rules on the other lists
    const c = await community(U.owner);
    for (const sub of ['members', 'channels', 'bans', 'posts']) {
      assertError(await api('GET', `/api/communities/${c.id}/${sub}?limit=0`, U.owner), 400, 'validation_failed', 'limit');
      assertError(await api('GET', `/api/communities/${c.id}/${sub}?limit=101`, U.owner), 400, 'validation_failed', 'limit');
      assertError(await api('GET', `/api/communities/${c.id}/${sub}?cursor=!!`, U.owner), 400, 'validation_failed', 'cursor');
    }
  });
});

describe('communities: PATCH and DELETE', () => {
  test('PATCH: admin+ 200; moderator, member, non-member 403; anonymous 401; private non-member 404', async () => {
    const c = await community(U.owner, 'public', [[U.admin, 'admin'], [U.mod, 'moderator'], [U.member, 'member']]);
    let r = await api('PATCH', `/api/communities/${c.id}`, U.admin, { name: 'By admin', description: 'new desc' });
    assertStatus(r, 200);
    assertCommunity(r.json, { name: 'By admin', description: 'new desc', my_role: 'admin', slug: c.slug, visibility: 'public' });
    r = await api('PATCH', `/api/communities/${c.id}`, U.owner, { name: 'By owner' });
    assertStatus(r, 200);
    assertCommunity(r.json, { name: 'By owner', description: 'new desc', my_role: 'owner' });
    for (const who of [U.mod, U.member, U.outsider]) {
      assertError(await api('PATCH', `/api/communities/${c.id}`, who, { name: 'nope' }), 403, 'forbidden');
    }
    assertError(await api('PATCH', `/api/communities/${c.id}`, null, { name: 'nope' }), 401, 'unauthorized');
    assert.equal((await getC(c.id, null)).json.name, 'By owner');
    // field rules
    assertError(await api('PATCH', `/api/communities/${c.id}`, U.owner, { name: 'n'.repeat(101) }), 400, 'validation_failed', 'name');
    assertError(await api('PATCH', `/api/communities/${c.id}`, U.owner, { name: '' }), 400, 'validation_failed', 'name');
    assertError(await api('PATCH', `/api/communities/${c.id}`, U.owner, { description: 'd'.repeat(2001) }), 400, 'validation_failed', 'description');
    assertError(await api('PATCH', `/api/communities/${c.id}`, U.owner, { visibility: 'hidden' }), 400, 'validation_failed', 'visibility');
    assertError(await api('PATCH', `/api/communities/${c.id}`, U.owner, { name: 7 }), 400, 'validation_failed', 'name');
    // the slug is not changeable by PATCH (not in API.md): it stays
    // visibility: public -> private hides it from non-members
    r = await api('PATCH', `/api/communities/${c.id}`, U.admin, { visibility: 'private' });
    assertStatus(r, 200);
    assertCommunity(r.json, { visibility: 'private' });
    assertError(await getC(c.id, U.outsider), 404, 'not_found');
    assertError(await api('PATCH', `/api/communities/${c.id}`, U.outsider, { name: 'x' }), 404, 'not_found');
    assertStatus(await getC(c.id, U.member), 200);
    r = await api('PATCH', `/api/communities/${c.id}`, U.owner, { visibility: 'public' });
    assertCommunity(r.json, { visibility: 'public' });
    assertStatus(await getC(c.id, U.outsider), 200);
  });

  test('DELETE: owner only (admin, moderator, member 403; anonymous 401); then 404 everywhere', async () => {
    const c = await community(U.owner, 'public', [[U.admin, 'admin'], [U.mod, 'moderator'], [U.member, 'member']]);
    for (const who of [U.admin, U.mod, U.member, U.outsider]) {
      assertError(await api('DELETE', `/api/communities/${c.id}`, who), 403, 'forbidden');
    }
    assertError(await api('DELETE', `/api/communities/${c.id}`, null), 401, 'unauthorized');
    assertStatus(await getC(c.id, null), 200);
    const r = await api('DELETE', `/api/communities/${c.id}`, U.owner);
    assertStatus(r, 204);
    assert.equal(r.text, '');
    assertError(await getC(c.id, U.owner), 404, 'not_found');
    assertError(await api('GET', `/api/communities/${c.id}/members`, U.owner), 404, 'not_found');
    assertError(await api('POST', `/api/communities/${c.id}/join`, U.outsider), 404, 'not_found');
    assertError(await api('DELETE', `/api/communities/${c.id}`, U.owner), 404, 'not_found');
    const list = await api('GET', '/api/communities?limit=100', U.owner);
    assert.ok(!list.json.items.some((x) => x.id === c.id));
    // the slug is free again
    assertStatus(await api('POST', '/api/communities', U.owner, { slug: c.slug, name: 'again', visibility: 'public' }), 201);
    // private: a non-member gets 404, not 403
    const p = await community(U.owner, 'private');
    assertError(await api('DELETE', `/api/communities/${p.id}`, U.outsider), 404, 'not_found');
  });
});

// --- members ---------------------------------------------------------------------

describe('members: join and leave', () => {
  test('join a public community -> 200 membership; idempotent; member_count +1 once', async () => {
    const c = await community(U.owner);
    const j = await newUser('join');
    const r1 = await api('POST', `/api/communities/${c.id}/join`, j);
    assertStatus(r1, 200);
    assert.equal(r1.json.role, 'member');
    assertUser(r1.json.user, j.id, 'join');
    assert.match(r1.json.joined_at, RFC3339_MS);
    assert.equal(await memberCount(c.id), 2);
    const r2 = await api('POST', `/api/communities/${c.id}/join`, j);
    assertStatus(r2, 200);
    assert.equal(r2.json.role, 'member');
    assert.equal(r2.json.joined_at, r1.json.joined_at);
    assert.equal(await memberCount(c.id), 2);
    assertCommunity((await getC(c.id, j)).json, { my_role: 'member' });
    // joining keeps a higher role as it is
    const r3 = await api('POST', `/api/communities/${c.id}/join`, U.owner);
    assertStatus(r3, 200);
    assert.equal(r3.json.role, 'owner');
    assert.equal(await memberCount(c.id), 2);
  });

  test('join: private -> 403 forbidden; anonymous -> 401; unknown -> 404', async () => {
    const p = await community(U.owner, 'private');
    assertError(await api('POST', `/api/communities/${p.id}/join`, U.outsider), 403, 'forbidden');
    assert.equal(await memberCount(p.id, U.owner), 1);
    assertError(await getC(p.id, U.outsider), 404);
    const c = await community(U.owner);
    assertError(await api('POST', `/api/communities/${c.id}/join`, null), 401, 'unauthorized');
    assertError(await api('POST', `/api/communities/${NO_SUCH_ID}/join`, U.outsider), 404, 'not_found');
  });

  test('two concurrent joins of one user -> both 200, member_count +1; of many users -> +N', async () => {
    const c = await community(U.owner);
    const j = await newUser('conc');
    const rs = await Promise.all([1, 2, 3, 4].map(() => api('POST', `/api/communities/${c.id}/join`, j)));
    assert.deepEqual(rs.map((r) => r.status), [200, 200, 200, 200], rs.map(show).join('\n'));
    for (const r of rs) assert.equal(r.json.role, 'member');
    assert.equal(await memberCount(c.id), 2);
    const many = [U.member, U.member2, U.mod, U.mod2, U.admin, U.admin2];
    const rs2 = await Promise.all(many.flatMap((u) => [api('POST', `/api/communities/${c.id}/join`, u), api('POST', `/api/communities/${c.id}/join`, u)]));
    assert.ok(rs2.every((r) => r.status === 200), rs2.map(show).join('\n'));
    assert.equal(await memberCount(c.id), 2 + many.length);
    assert.equal((await memberIds(c.id)).size, 2 + many.length);
  });

  test('leave -> 204, count -1, role gone; owner -> 409; anonymous -> 401', async () => {
    const c = await community(U.owner, 'public', [[U.member, 'member'], [U.mod, 'moderator']]);
    assert.equal(await memberCount(c.id), 3);
    const r = await api('POST', `/api/communities/${c.id}/leave`, U.member);
    assertStatus(r, 204);
    assert.equal(await memberCount(c.id), 2);
    assertCommunity((await getC(c.id, U.member)).json, { my_role: null });
    assert.ok(!(await memberIds(c.id)).has(U.member.id));
    // leaving again is no membership: not a success that changes a count, never a 5xx
    const again = await api('POST', `/api/communities/${c.id}/leave`, U.member);
    assert.ok([204, 404].includes(again.status), show(again));
    assert.equal(await memberCount(c.id), 2);
    assertError(await api('POST', `/api/communities/${c.id}/leave`, U.owner), 409, 'conflict');
    assert.equal(await memberCount(c.id), 2);
    assertError(await api('POST', `/api/communities/${c.id}/leave`, null), 401, 'unauthorized');
    assertStatus(await api('POST', `/api/communities/${c.id}/leave`, U.mod), 204);
    assert.equal(await memberCount(c.id), 1);
    // a member of a private community leaves it, and then no longer sees it
    const p = await community(U.owner, 'private', [[U.member, 'member']]);
    assertStatus(await api('POST', `/api/communities/${p.id}/leave`, U.member), 204);
    assertError(await getC(p.id, U.member), 404);
    assertError(await api('POST', `/api/communities/${p.id}/leave`, U.outsider), 404);
  });

  test('GET members: {items: [{user, role, joined_at}]}, paginated; visibility as GET community', async () => {
    const c = await community(U.owner, 'public', [[U.admin, 'admin'], [U.mod, 'moderator'], [U.member, 'member'], [U.member2, 'member']]);
    const r = await api('GET', `/api/communities/${c.id}/members`, null);
    assertStatus(r, 200);
    assert.equal(r.json.items.length, 5);
    assert.equal(r.json.next_cursor, null);
    const roles = Object.fromEntries(r.json.items.map((m) => [m.user.id, m.role]));
    assert.deepEqual(roles, {
      [U.owner.id]: 'owner', [U.admin.id]: 'admin', [U.mod.id]: 'moderator', [U.member.id]: 'member', [U.member2.id]: 'member',
    });
    for (const m of r.json.items) { assertUser(m.user, m.user.id, 'member'); assert.match(m.joined_at, RFC3339_MS); }
    // pages of 2
    const seen = [];
    let cursor = null;
    for (let i = 0; i < 5; i++) {
      const q = `?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const p = await api('GET', `/api/communities/${c.id}/members${q}`, U.member);
      assertStatus(p, 200);
      seen.push(...p.json.items.map((m) => m.user.id));
      cursor = p.json.next_cursor;
      if (!cursor) break;
    }
    assert.deepEqual([...seen].sort((a, b) => a - b), Object.keys(roles).map(Number).sort((a, b) => a - b));
    assert.equal(new Set(seen).size, 5);
  });
});

describe('members: roles (PUT /members/:user_id)', () => {
  test('only the owner grants admin; admin grants moderator/member; moderator and member cannot', async () => {
    const c = await community(U.owner, 'public', [[U.admin, 'admin'], [U.mod, 'moderator'], [U.member, 'member'], [U.member2, 'member']]);
    const put = (who, target, role) => api('PUT', `/api/communities/${c.id}/members/${target.id}`, who, { role });
    // admin cannot grant admin
    assertError(await put(U.admin, U.member, 'admin'), 403, 'forbidden');
    assert.equal((await memberIds(c.id)).get(U.member.id), 'member');
    // owner can
    let r = await put(U.owner, U.member, 'admin');
    assertStatus(r, 200);
    assert.equal(r.json.role, 'admin');
    assertUser(r.json.user, U.member.id, 'PUT');
    assert.equal((await memberIds(c.id)).get(U.member.id), 'admin');
    assertCommunity((await getC(c.id, U.member)).json, { my_role: 'admin' });
    // and takes it back
    r = await put(U.owner, U.member, 'member');
    assert.equal(r.json.role, 'member');
    // admin: member -> moderator -> member
    r = await put(U.admin, U.member2, 'moderator');
    assertStatus(r, 200);
    assert.equal(r.json.role, 'moderator');
    r = await put(U.admin, U.member2, 'member');
    assertStatus(r, 200);
    assert.equal(r.json.role, 'member');
    // admin demotes a moderator (lower role)
    r = await put(U.admin, U.mod, 'member');
    assertStatus(r, 200);
    r = await put(U.admin, U.mod, 'moderator');
    assertStatus(r, 200);
    // admin over an equal or higher role: 403
    await put(U.owner, U.admin2, 'admin');
    assertError(await put(U.admin, U.admin2, 'member'), 403, 'forbidden');
    assertError(await put(U.admin, U.admin2, 'moderator'), 403, 'forbidden');
    assertError(await put(U.admin, U.owner, 'member'), 403, 'forbidden');
    assertError(await put(U.admin, U.admin, 'moderator'), 403, 'forbidden');
    assert.equal((await memberIds(c.id)).get(U.admin2.id), 'admin');
    assert.equal((await memberIds(c.id)).get(U.owner.id), 'owner');
    // moderator and member: no PUT at all (admin+)
    assertError(await put(U.mod, U.member, 'member'), 403, 'forbidden');
    assertError(await put(U.mod, U.outsider, 'member'), 403, 'forbidden');
    assertError(await put(U.member, U.member2, 'moderator'), 403, 'forbidden');
    assertError(await put(U.outsider, U.outsider, 'member'), 403, 'forbidden');
    assertError(await put(null, U.member, 'member'), 401, 'unauthorized');
    // nobody becomes owner by PUT, and the owner is never demoted
    assertError(await put(U.owner, U.admin, 'owner'), 400, 'validation_failed', 'role');
    assertError(await put(U.owner, U.owner, 'member'), 403, 'forbidden');
    const m = await memberIds(c.id);
    assert.equal(m.get(U.owner.id), 'owner');
    assert.equal(m.get(U.admin.id), 'admin');
    assert.equal(m.get(U.mod.id), 'moderator');
  });

  test('PUT role: bad role -> 400 role; unknown user -> 404; ids not integers -> 404', async () => {
    const c = await community(U.owner, 'public', [[U.member, 'member']]);
    const url = `/api/communities/${c.id}/members/${U.member.id}`;
    for (const role of ['king', '', 'Owner', 'ADMIN', 5, null, ['member']]) {
      assertError(await api('PUT', url, U.owner, { role }), 400, 'validation_failed', 'role');
    }
    assertError(await api('PUT', url, U.owner, {}), 400, 'validation_failed', 'role');
    assertError(await api('PUT', `/api/communities/${c.id}/members/${NO_SUCH_ID}`, U.owner, { role: 'member' }), 404, 'not_found');
    for (const bad of BAD_IDS) {
      assertError(await api('PUT', `/api/communities/${c.id}/members/${bad}`, U.owner, { role: 'member' }), 404, 'not_found');
    }
    assert.equal(await memberCount(c.id), 2);
  });

  test('PUT role adds a non-member to a private community (how private communities grow)', async () => {
    const p = await community(U.owner, 'private', [[U.admin, 'admin']]);
    const j = await newUser('inv');
    assertError(await getC(p.id, j), 404);
    const r = await api('PUT', `/api/communities/${p.id}/members/${j.id}`, U.admin, { role: 'member' });
    assertStatus(r, 200);
    assert.equal(r.json.role, 'member');
    assertCommunity((await getC(p.id, j)).json, { my_role: 'member', member_count: 3 });
    const list = await api('GET', '/api/communities?limit=100', j);
    assert.ok(list.json.items.some((x) => x.id === p.id), 'the private community is listed for its new member');
    // again: a role change, not a second membership
    assertStatus(await api('PUT', `/api/communities/${p.id}/members/${j.id}`, U.admin, { role: 'moderator' }), 200);
    assert.equal(await memberCount(p.id, U.owner), 3);
    // a non-member cannot add anybody (404: they cannot know it exists)
    assertError(await api('PUT', `/api/communities/${p.id}/members/${U.outsider.id}`, U.outsider, { role: 'member' }), 404);
  });
});

describe('members: removal and bans', () => {
  test('DELETE member: moderator+ over a lower role only', async () => {
    const c = await community(U.owner, 'public', [[U.admin, 'admin'], [U.admin2, 'admin'], [U.mod, 'moderator'], [U.mod2, 'moderator'], [U.member, 'member'], [U.member2, 'member']]);
    const del = (who, target) => api('DELETE', `/api/communities/${c.id}/members/${target.id}`, who);
    assert.equal(await memberCount(c.id), 7);
    // member cannot remove anybody
    assertError(await del(U.member, U.member2), 403, 'forbidden');
    // moderator: not another moderator, not an admin, not the owner
    assertError(await del(U.mod, U.mod2), 403, 'forbidden');
    assertError(await del(U.mod, U.admin), 403, 'forbidden');
    assertError(await del(U.mod, U.owner), 403, 'forbidden');
    // admin: not another admin, not the owner
    assertError(await del(U.admin, U.admin2), 403, 'forbidden');
    assertError(await del(U.admin, U.owner), 403, 'forbidden');
    assertError(await del(null, U.member), 401, 'unauthorized');
    assert.equal(await memberCount(c.id), 7);
    // moderator removes a member
    let r = await del(U.mod, U.member);
    assertStatus(r, 204);
    assert.equal(await memberCount(c.id), 6);
    assert.ok(!(await memberIds(c.id)).has(U.member.id));
    // admin removes a moderator
    assertStatus(await del(U.admin, U.mod2), 204);
    // owner removes an admin
    assertStatus(await del(U.owner, U.admin2), 204);
    assert.equal(await memberCount(c.id), 4);
    // not a member (any more) -> 404; unknown user -> 404
    assertError(await del(U.mod, U.member), 404, 'not_found');
    assertError(await api('DELETE', `/api/communities/${c.id}/members/${NO_SUCH_ID}`, U.owner), 404, 'not_found');
    for (const bad of BAD_IDS) assertError(await api('DELETE', `/api/communities/${c.id}/members/${bad}`, U.owner), 404, 'not_found');
    // a removed member of a public community may join again
    r = await api('POST', `/api/communities/${c.id}/join`, U.member);
    assertStatus(r, 200);
    assert.equal(await memberCount(c.id), 5);
    const m = await memberIds(c.id);
    assert.deepEqual([...m.keys()].sort(), [U.owner.id, U.admin.id, U.mod.id, U.member2.id, U.member.id].sort());
  });

  test('ban -> 201, membership removed, rejoin 403 banned; unban 204; rejoin 200', async () => {
    const c = await community(U.owner, 'public', [[U.mod, 'moderator'], [U.victim, 'member']]);
    assert.equal(await memberCount(c.id), 3);
    const r = await api('POST', `/api/communities/${c.id}/bans`, U.mod, { user_id: U.victim.id, reason: 'spam' });
    assertStatus(r, 201);
    assertUser(r.json.user, U.victim.id, 'ban');
    assert.equal(r.json.reason, 'spam');
    assert.match(r.json.created_at, RFC3339_MS);
    assert.equal(await memberCount(c.id), 2);
    assert.ok(!(await memberIds(c.id)).has(U.victim.id));
    assertCommunity((await getC(c.id, U.victim)).json, { my_role: null });
    const rejoin = await api('POST', `/api/communities/${c.id}/join`, U.victim);
    assertError(rejoin, 403, 'banned');
    assert.equal(await memberCount(c.id), 2);
    // a banned user cannot be added back by PUT either (until unbanned)
    const put = await api('PUT', `/api/communities/${c.id}/members/${U.victim.id}`, U.owner, { role: 'member' });
    assert.ok(put.status >= 400 && put.status < 500, `PUT role of a banned user: ${show(put)}`);
    assert.ok(!(await memberIds(c.id)).has(U.victim.id));
    // the ban list: moderator+
    const list = await api('GET', `/api/communities/${c.id}/bans`, U.mod);
    assertStatus(list, 200);
    assert.deepEqual(list.json.items.map((b) => b.user.id), [U.victim.id]);
    assert.equal(list.json.next_cursor, null);
    assertError(await api('GET', `/api/communities/${c.id}/bans`, U.victim), 403);
    assertError(await api('GET', `/api/communities/${c.id}/bans`, null), 401, 'unauthorized');
    // unban: moderator+
    assertError(await api('DELETE', `/api/communities/${c.id}/bans/${U.victim.id}`, U.victim), 403);
    assertStatus(await api('DELETE', `/api/communities/${c.id}/bans/${U.victim.id}`, U.mod), 204);
    assertError(await api('DELETE', `/api/communities/${c.id}/bans/${U.victim.id}`, U.mod), 404, 'not_found');
    assert.equal((await api('GET', `/api/communities/${c.id}/bans`, U.mod)).json.items.length, 0);
    const back = await api('POST', `/api/communities/${c.id}/join`, U.victim);
    assertStatus(back, 200);
    assert.equal(back.json.role, 'member');
    assert.equal(await memberCount(c.id), 3);
  });

  test('bans: moderator+ over a lower role only; a non-member can be banned too', async () => {
    const c = await community(U.owner, 'public', [[U.admin, 'admin'], [U.admin2, 'admin'], [U.mod, 'moderator'], [U.mod2, 'moderator'], [U.member, 'member'], [U.member2, 'member']]);
    const ban = (who, target) => api('POST', `/api/communities/${c.id}/bans`, who, { user_id: target.id });
    assertError(await ban(U.member, U.member2), 403, 'forbidden');
    assertError(await ban(U.mod, U.mod2), 403, 'forbidden');
    assertError(await ban(U.mod, U.admin), 403, 'forbidden');
    assertError(await ban(U.mod, U.owner), 403, 'forbidden');
    assertError(await ban(U.admin, U.admin2), 403, 'forbidden');
    assertError(await ban(U.admin, U.owner), 403, 'forbidden');
    assertError(await ban(U.owner, U.owner), 403, 'forbidden');
    assertError(await ban(null, U.member), 401, 'unauthorized');
    assertError(await ban(U.outsider, U.member), 403, 'forbidden');
    assert.equal(await memberCount(c.id), 7);
    assertStatus(await ban(U.admin, U.mod2), 201);
    assertStatus(await ban(U.owner, U.admin2), 201);
    assert.equal(await memberCount(c.id), 5);
    // a non-member: banned before ever joining
    assertStatus(await ban(U.mod, U.outsider), 201);
    assert.equal(await memberCount(c.id), 5);
    assertError(await api('POST', `/api/communities/${c.id}/join`, U.outsider), 403, 'banned');
    // banning twice is not an error that double-counts
    const again = await ban(U.mod, U.outsider);
    assert.ok([200, 201, 409].includes(again.status), show(again));
    assert.equal(await memberCount(c.id), 5);
    // body rules
    const url = `/api/communities/${c.id}/bans`;
    for (const uid of ['x', 1.5, null, -1, 0]) assertError(await api('POST', url, U.owner, { user_id: uid }), 400, 'validation_failed', 'user_id');
    assertError(await api('POST', url, U.owner, {}), 400, 'validation_failed', 'user_id');
    assertError(await api('POST', url, U.owner, { user_id: U.member.id, reason: 5 }), 400, 'validation_failed', 'reason');
    assertError(await api('POST', url, U.owner, { user_id: Number(NO_SUCH_ID) }), 404, 'not_found');
    for (const bad of BAD_IDS) assertError(await api('DELETE', `/api/communities/${c.id}/bans/${bad}`, U.owner), 404, 'not_found');
    // banned users are refused writes: 403 banned
    const post = await api('POST', `/api/communities/${c.id}/posts`, U.outsider, { body: 'let me in' });
    assertError(post, 403, 'banned');
  });

  // A join (or an admin's PUT) and a ban of the same user sent at once: whichever commits
  // first, the ban wins in the end (it removes a membership made before it; a join or PUT
  // after it is refused), so no user is ever listed both as a member and as banned, nor
  // counted, nor left in the broker's mirror. Each round races one fresh user; before the
  // fix, the join inserted the membership while the ban's delete could not see it yet.
  test('a join or a role PUT racing a ban: never both a member and banned (lists, count, mirror)', async () => {
    const c = await community(U.owner, 'public', [[U.mod, 'moderator']]);
    const joiners = await Promise.all(Array.from({ length: 20 }, () => newUser('race')));
    const added = await Promise.all(Array.from({ length: 10 }, () => newUser('racp')));
    const ban = (u) => api('POST', `/api/communities/${c.id}/bans`, U.mod, { user_id: u.id });
    const replies = [];
    for (const u of joiners) {
      const [j, b] = await Promise.all([api('POST', `/api/communities/${c.id}/join`, u), ban(u)]);
      assertStatus(b, 201);
      replies.push(['join', j]);
    }
    for (const u of added) {
      const put = api('PUT', `/api/communities/${c.id}/members/${u.id}`, U.owner, { role: 'member' });
      const [p, b] = await Promise.all([put, ban(u)]);
      assertStatus(b, 201);
      replies.push(['put', p]);
    }
    const racers = [...joiners, ...added];
    const members = await memberIds(c.id);
    const both = racers.filter((u) => members.has(u.id)).map((u) => u.id);
    assert.deepEqual(both, [], `banned users still listed as members: ${both.join(', ')}`);
    const bans = await api('GET', `/api/communities/${c.id}/bans?limit=100`, U.mod);
    assertStatus(bans, 200);
    assert.deepEqual(bans.json.items.map((b) => b.user.id).sort(), racers.map((u) => u.id).sort());
    assert.equal(members.size, 2);
    assert.equal(await memberCount(c.id), 2);
    if (!LOCAL_ONLY) { // the broker's mirror, written after each commit, ends the same
      const mirrored = [];
      for (const u of racers) {
        if (await redisRaw('HEXISTS', `th:members:${c.id}`, String(u.id)) !== '0') mirrored.push(u.id);
        assert.equal(await redisRaw('SISMEMBER', `th:banned:${c.id}`, String(u.id)), '1');
      }
      assert.deepEqual(mirrored, [], `banned users still members in th:members:${c.id}`);
    }
    // the join came first (200; 403 banned when the ban removed the member before the reply
    // read it back), or after the ban (403 banned); the PUT first (200; 404 when removed before
    // the read) or after (409: unban first)
    for (const [what, r] of replies) {
      const code = r.json?.error?.code;
      const ok = what === 'join' ? r.status === 200 || (r.status === 403 && code === 'banned')
        : r.status === 200 || r.status === 404 || (r.status === 409 && code === 'conflict');
      assert.ok(ok, `${what}: ${show(r)}`);
    }
    // and a banned racer stays out
    assertError(await api('POST', `/api/communities/${c.id}/join`, joiners[0]), 403, 'banned');
  });
});

// --- channels --------------------------------------------------------------------

describe('channels (community side)', () => {
  test('POST channels: admin+ 201; moderator, member 403; anonymous 401; list for readers', async () => {
    const c = await community(U.owner, 'public', [[U.admin, 'admin'], [U.mod, 'moderator'], [U.member, 'member']]);
    const url = `/api/communities/${c.id}/channels`;
    let r = await api('POST', url, U.admin, { name: 'random', topic: 'anything goes' });
    assertStatus(r, 201);
    assert.ok(Number.isInteger(r.json.id));
    assert.equal(r.json.community_id, c.id);
    assert.equal(r.json.name, 'random');
    assert.equal(r.json.topic, 'anything goes');
    assert.match(r.json.created_at, RFC3339_MS);
    assertStatus(await api('POST', url, U.owner, { name: 'owner_chan' }), 201);
    assertError(await api('POST', url, U.mod, { name: 'modchan' }), 403, 'forbidden');
    assertError(await api('POST', url, U.member, { name: 'memchan' }), 403, 'forbidden');
    assertError(await api('POST', url, U.outsider, { name: 'outchan' }), 403, 'forbidden');
    assertError(await api('POST', url, null, { name: 'anonchan' }), 401, 'unauthorized');
    assertError(await api('POST', url, U.admin, { name: 'random' }), 409, 'conflict');
    for (const name of ['', 'Has Space', 'UPPER', 'x'.repeat(65), 5]) {
      assertError(await api('POST', url, U.admin, { name }), 400, 'validation_failed', 'name');
    }
    assertError(await api('POST', url, U.admin, {}), 400, 'validation_failed', 'name');
    assertError(await api('POST', url, U.admin, { name: 'ok', topic: 't'.repeat(501) }), 400, 'validation_failed', 'topic');
    const list = await api('GET', url, null);
    assertStatus(list, 200);
    assert.deepEqual(list.json.items.map((x) => x.name), ['general', 'random', 'owner_chan']);
    const p = await community(U.owner, 'private', [[U.member, 'member']]);
    assertError(await api('GET', `/api/communities/${p.id}/channels`, U.outsider), 404);
    assertError(await api('POST', `/api/communities/${p.id}/channels`, U.outsider, { name: 'x' }), 404);
    assertStatus(await api('GET', `/api/communities/${p.id}/channels`, U.member), 200);
  });
});

// --- ids ---------------------------------------------------------------------------

describe('ids that name nothing -> 404', () => {
  test('every :id route: unknown, not an integer, overflowing, zero or negative -> 404', async () => {
    const c = await community(U.owner, 'public', [[U.member, 'member']]);
    const routes = (id) => [
      ['GET', `/api/communities/${id}`], ['PATCH', `/api/communities/${id}`, { name: 'x' }],
      ['DELETE', `/api/communities/${id}`], ['POST', `/api/communities/${id}/join`],
      ['POST', `/api/communities/${id}/leave`], ['GET', `/api/communities/${id}/members`],
      ['PUT', `/api/communities/${id}/members/${U.member.id}`, { role: 'member' }],
      ['DELETE', `/api/communities/${id}/members/${U.member.id}`],
      ['POST', `/api/communities/${id}/bans`, { user_id: U.member.id }], ['GET', `/api/communities/${id}/bans`],
      ['DELETE', `/api/communities/${id}/bans/${U.member.id}`],
      ['POST', `/api/communities/${id}/channels`, { name: 'x' }], ['GET', `/api/communities/${id}/channels`],
      ['POST', `/api/communities/${id}/posts`, { body: 'x' }], ['GET', `/api/communities/${id}/posts`],
      ['GET', `/api/communities/${id}/search?q=x`],
      ['GET', `/api/posts/${id}`], ['PATCH', `/api/posts/${id}`, { body: 'x' }], ['DELETE', `/api/posts/${id}`],
      ['POST', `/api/posts/${id}/comments`, { body: 'x' }], ['GET', `/api/posts/${id}/comments`],
      ['PUT', `/api/posts/${id}/reactions/%F0%9F%91%8D`], ['DELETE', `/api/posts/${id}/reactions/%F0%9F%91%8D`],
      ['DELETE', `/api/comments/${id}`],
    ];
    const failures = [];
    for (const id of [...BAD_IDS, NO_SUCH_ID]) {
      for (const [m, path, body] of routes(id)) {
        const res = await api(m, path, U.owner, body);
        if (res.status !== 404 || res.json?.error?.code !== 'not_found') failures.push(`${m} ${path}: ${show(res)}`);
      }
    }
    // second-level ids
    for (const id of [...BAD_IDS, NO_SUCH_ID]) {
      for (const [m, path, body] of [
        ['PUT', `/api/communities/${c.id}/members/${id}`, { role: 'member' }],
        ['DELETE', `/api/communities/${c.id}/members/${id}`], ['DELETE', `/api/communities/${c.id}/bans/${id}`],
      ]) {
        const res = await api(m, path, U.owner, body);
        if (res.status !== 404) failures.push(`${m} ${path}: ${show(res)}`);
      }
    }
    assert.deepEqual(failures, [], `${failures.length} routes did not answer 404:\n${failures.join('\n')}`);
  });

  test('a bad bearer token is 401 even where a token is optional (never read as anonymous)', async () => {
    const c = await community(U.owner);
    for (const path of ['/api/communities', `/api/communities/${c.id}`, `/api/communities/${c.id}/members`, `/api/communities/${c.id}/posts`]) {
      for (const token of ['garbage', `${U.owner.token.slice(0, -4)}AAAA`]) {
        const res = await api('GET', path, token);
        assertError(res, 401, 'unauthorized');
      }
    }
  });

  test('unknown method on a known route -> 405 with Allow', async () => {
    const c = await community(U.owner);
    const res = await api('PUT', `/api/communities/${c.id}`, U.owner, {});
    assertError(res, 405, 'method_not_allowed');
    assert.match(res.headers.allow || '', /GET/);
    assert.match(res.headers.allow || '', /PATCH/);
  });
});

// --- posts, comments, reactions, search -----------------------------------------------

async function mkPost(c, who, body = { body: `post ${uniq('p')}` }) {
  const r = await api('POST', `/api/communities/${c.id}/posts`, who, body);
  assertStatus(r, 201, 'create post:');
  return r.json;
}
async function getPost(id, who) {
  const r = await api('GET', `/api/posts/${id}`, who);
  assertStatus(r, 200, `GET post ${id}:`);
  return r.json;
}
function assertPost(p, exp) {
  for (const k of ['id', 'community_id', 'author', 'title', 'body', 'media', 'comment_count', 'reactions', 'my_reactions', 'created_at', 'edited_at']) {
    assert.ok(k in p, `post.${k} missing: ${JSON.stringify(p)}`);
  }
  assert.ok(Number.isInteger(p.id) && p.id > 0);
  assert.ok(Array.isArray(p.media));
  assert.ok(Array.isArray(p.my_reactions));
  assert.equal(typeof p.reactions, 'object');
  assert.match(p.created_at, RFC3339_MS);
  for (const [k, v] of Object.entries(exp)) assert.deepEqual(p[k], v, `post.${k}: ${JSON.stringify(p)}`);
}

describe('posts', () => {
  test('create: member 201 with the full shape; non-member 403 (public); anonymous 401; private outsider 404', async () => {
    const c = await community(U.owner, 'public', [[U.member, 'member']]);
    const r = await api('POST', `/api/communities/${c.id}/posts`, U.member, { title: 'Hello', body: 'World 🌍' });
    assertStatus(r, 201);
    assertPost(r.json, {
      community_id: c.id, title: 'Hello', body: 'World 🌍', media: [], comment_count: 0, reactions: {}, my_reactions: [], edited_at: null,
    });
    assertUser(r.json.author, U.member.id, 'author');
    // title is optional
    const nt = await api('POST', `/api/communities/${c.id}/posts`, U.member, { body: 'no title' });
    assertStatus(nt, 201);
    assert.ok(nt.json.title === '' || nt.json.title === null, JSON.stringify(nt.json));
    assertError(await api('POST', `/api/communities/${c.id}/posts`, U.outsider, { body: 'x' }), 403, 'forbidden');
    assertError(await api('POST', `/api/communities/${c.id}/posts`, null, { body: 'x' }), 401, 'unauthorized');
    const p = await community(U.owner, 'private', [[U.member, 'member']]);
    assertError(await api('POST', `/api/communities/${p.id}/posts`, U.outsider, { body: 'x' }), 404, 'not_found');
    assertStatus(await api('POST', `/api/communities/${p.id}/posts`, U.member, { body: 'x' }), 201);
    // GET: readers
    assertPost(await getPost(r.json.id, null), { id: r.json.id, title: 'Hello' });
    assertPost(await getPost(r.json.id, U.outsider), { id: r.json.id });
    const pp = await mkPost(p, U.member);
    assertError(await api('GET', `/api/posts/${pp.id}`, U.outsider), 404, 'not_found');
    assertError(await api('GET', `/api/posts/${pp.id}`, null), 404, 'not_found');
    assertError(await api('GET', `/api/posts/${pp.id}/comments`, U.outsider), 404, 'not_found');
    assertPost(await getPost(pp.id, U.member), { id: pp.id });
  });

  test('create: field rules -> 400 naming the field', async () => {
    const c = await community(U.owner);
    const url = `/api/communities/${c.id}/posts`;
    const cases = [
      [{ title: 't'.repeat(301), body: 'b' }, 'title'],
      [{ title: 5, body: 'b' }, 'title'],
      [{ body: 'b'.repeat(40001) }, 'body'],
      [{ body: '' }, 'body'],
      [{ body: 12 }, 'body'],
      [{ body: null }, 'body'],
      [{ title: 'only a title' }, 'body'],
      [{ body: 'b', media_ids: 'nope' }, 'media_ids'],
    ];
    for (const [body, field] of cases) assertError(await api('POST', url, U.owner, body), 400, 'validation_failed', field);
    // the limits themselves are allowed
    const edge = await api('POST', url, U.owner, { title: 't'.repeat(300), body: 'b'.repeat(40000) });
    assertStatus(edge, 201, 'title 300, body 40000 ASCII:');
    assert.equal(edge.json.title.length, 300);
    assert.equal(edge.json.body.length, 40000);
  });

  test('create: the limits are characters, not bytes (40000 two-byte characters are allowed)', async () => {
    const c = await community(U.owner);
    const url = `/api/communities/${c.id}/posts`;
    const edge = await api('POST', url, U.owner, { title: 'é'.repeat(300), body: 'ü'.repeat(40000) });
    assertStatus(edge, 201, 'title 300 x é, body 40000 x ü (80,600 bytes of UTF-8):');
    assert.equal([...edge.json.title].length, 300);
    assert.equal([...edge.json.body].length, 40000);
    // four-byte characters too: 40000 emoji are 160,000 bytes
    const emoji = await api('POST', url, U.owner, { body: '😀'.repeat(40000) });
    assertStatus(emoji, 201, 'body 40000 x 😀:');
    assertError(await api('POST', url, U.owner, { body: 'ü'.repeat(40001) }), 400, 'validation_failed', 'body');
  });

  test('feed: newest first, keyset pagination, readers only', async () => {
    const c = await community(U.owner, 'public', [[U.member, 'member']]);
    const ids = [];
    for (let i = 0; i < 7; i++) ids.push((await mkPost(c, i % 2 ? U.member : U.owner, { title: `t${i}`, body: `b${i}` })).id);
    const expected = [...ids].reverse();
    const all = await api('GET', `/api/communities/${c.id}/posts`, null);
    assertStatus(all, 200);
    assert.deepEqual(all.json.items.map((p) => p.id), expected);
    assert.equal(all.json.next_cursor, null);
    for (const p of all.json.items) assertPost(p, { community_id: c.id });
    const seen = [];
    let cursor = null;
    let pages = 0;
    do {
      const q = `?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const r = await api('GET', `/api/communities/${c.id}/posts${q}`, U.member);
      assertStatus(r, 200);
      assert.ok(r.json.items.length <= 3);
      seen.push(...r.json.items.map((p) => p.id));
      cursor = r.json.next_cursor;
      pages++;
    } while (cursor && pages < 10);
    assert.deepEqual(seen, expected);
    assert.equal(pages, 3);
    // other communities' posts never leak in
    const c2 = await community(U.owner);
    await mkPost(c2, U.owner);
    const again = await api('GET', `/api/communities/${c.id}/posts`, null);
    assert.deepEqual(again.json.items.map((p) => p.id), expected);
  });

  test('cache: a write is visible in the very next read (create, edit, delete, comment, reaction)', async () => {
    const c = await community(U.owner, 'public', [[U.member, 'member']]);
    const feed = async () => (await api('GET', `/api/communities/${c.id}/posts`, U.member)).json;
    await mkPost(c, U.owner);
    for (let i = 0; i < 5; i++) {
      await feed(); await feed(); // warm whatever caches there are
      const p = await mkPost(c, U.member, { body: `fresh ${i}` });
      const f = await feed();
      assert.equal(f.items[0].id, p.id, `post ${p.id} created with 201 is not first in the next feed request (round ${i})`);
    }
    const top = (await feed()).items[0];
    await getPost(top.id, null); await getPost(top.id, U.member);
    // edit
    assertStatus(await api('PATCH', `/api/posts/${top.id}`, U.member, { body: 'edited body' }), 200);
    assert.equal((await getPost(top.id, null)).body, 'edited body');
    assert.equal((await feed()).items[0].body, 'edited body');
    // comment count
    assertStatus(await api('POST', `/api/posts/${top.id}/comments`, U.owner, { body: 'c' }), 201);
    assert.equal((await getPost(top.id, U.member)).comment_count, 1);
    assert.equal((await feed()).items[0].comment_count, 1);
    // reaction
    assertStatus(await api('PUT', `/api/posts/${top.id}/reactions/${encodeURIComponent('🔥')}`, U.owner), 204);
    assert.deepEqual((await getPost(top.id, U.member)).reactions, { '🔥': 1 });
    assert.deepEqual((await feed()).items[0].reactions, { '🔥': 1 });
    // delete
    assertStatus(await api('DELETE', `/api/posts/${top.id}`, U.member), 204);
    assert.ok(!(await feed()).items.some((p) => p.id === top.id), 'deleted post still in the feed');
    assertError(await api('GET', `/api/posts/${top.id}`, null), 404, 'not_found');
  });

  test('cache never outlives access: visibility change, removal, ban, deletion', async () => {
    const c = await community(U.owner, 'public', [[U.member, 'member'], [U.member2, 'member']]);
    const p = await mkPost(c, U.member, { title: 'secret soon', body: 'x' });
    const warm = async (who) => {
      for (let i = 0; i < 4; i++) {
        assertStatus(await api('GET', `/api/communities/${c.id}/posts`, who), 200);
        assertStatus(await api('GET', `/api/posts/${p.id}`, who), 200);
        assertStatus(await api('GET', `/api/posts/${p.id}/comments`, who), 200);
      }
    };
    await warm(null);
    await warm(U.outsider);
    await warm(U.member2);
    assertStatus(await api('PATCH', `/api/communities/${c.id}`, U.owner, { visibility: 'private' }), 200);
    for (const who of [null, U.outsider]) {
      for (const path of [`/api/communities/${c.id}/posts`, `/api/posts/${p.id}`, `/api/posts/${p.id}/comments`, `/api/communities/${c.id}/search?q=secret`]) {
        assertError(await api('GET', path, who), 404, 'not_found');
      }
    }
    // a removed member loses access at once
    assertStatus(await api('DELETE', `/api/communities/${c.id}/members/${U.member2.id}`, U.owner), 204);
    assertError(await api('GET', `/api/posts/${p.id}`, U.member2), 404, 'not_found');
    assertError(await api('GET', `/api/communities/${c.id}/posts`, U.member2), 404, 'not_found');
    // a removed member cannot write any more (404: it is private now)
    assertError(await api('POST', `/api/posts/${p.id}/comments`, U.member2, { body: 'x' }), 404);
    assertError(await api('PUT', `/api/posts/${p.id}/reactions/x`, U.member2), 404);
    // a banned author of a public community: reads stay, writes go
    assertStatus(await api('PATCH', `/api/communities/${c.id}`, U.owner, { visibility: 'public' }), 200);
    await warm(U.member);
    assertStatus(await api('POST', `/api/communities/${c.id}/bans`, U.owner, { user_id: U.member.id }), 201);
    assertStatus(await api('GET', `/api/posts/${p.id}`, U.member), 200);
    assertError(await api('POST', `/api/communities/${c.id}/posts`, U.member, { body: 'x' }), 403, 'banned');
    assertError(await api('POST', `/api/posts/${p.id}/comments`, U.member, { body: 'x' }), 403, 'banned');
    assertError(await api('PUT', `/api/posts/${p.id}/reactions/x`, U.member), 403, 'banned');
    assertError(await api('PATCH', `/api/posts/${p.id}`, U.member, { body: 'x' }), 403);
    // the community is deleted: everything of it is gone, cached or not
    await warm(null);
    assertStatus(await api('DELETE', `/api/communities/${c.id}`, U.owner), 204);
    for (const path of [`/api/communities/${c.id}/posts`, `/api/posts/${p.id}`, `/api/posts/${p.id}/comments`]) {
      assertError(await api('GET', path, null), 404, 'not_found');
      assertError(await api('GET', path, U.owner), 404, 'not_found');
    }
  });

  test('writes on deleted or foreign things: 404', async () => {
    const c = await community(U.owner, 'public', [[U.member, 'member']]);
    const p = await mkPost(c, U.member);
    const cm = await api('POST', `/api/posts/${p.id}/comments`, U.member, { body: 'c' });
    assertStatus(cm, 201);
    assertStatus(await api('DELETE', `/api/posts/${p.id}`, U.member), 204);
    assertError(await api('POST', `/api/posts/${p.id}/comments`, U.member, { body: 'x' }), 404, 'not_found');
    assertError(await api('GET', `/api/posts/${p.id}/comments`, U.member), 404, 'not_found');
    assertError(await api('PUT', `/api/posts/${p.id}/reactions/x`, U.member), 404, 'not_found');
    assertError(await api('DELETE', `/api/posts/${p.id}/reactions/x`, U.member), 404, 'not_found');
    assertError(await api('PATCH', `/api/posts/${p.id}`, U.member, { body: 'x' }), 404, 'not_found');
    assertError(await api('DELETE', `/api/comments/${cm.json.id}`, U.member), 404, 'not_found');
    // a private community's post and comment are 404 to outsiders on every route
    const pc = await community(U.owner, 'private', [[U.member, 'member']]);
    const pp = await mkPost(pc, U.member);
    const pcm = await api('POST', `/api/posts/${pp.id}/comments`, U.member, { body: 'c' });
    for (const [m, path, body] of [
      ['PATCH', `/api/posts/${pp.id}`, { body: 'x' }], ['DELETE', `/api/posts/${pp.id}`],
      ['POST', `/api/posts/${pp.id}/comments`, { body: 'x' }], ['PUT', `/api/posts/${pp.id}/reactions/x`],
      ['DELETE', `/api/posts/${pp.id}/reactions/x`], ['DELETE', `/api/comments/${pcm.json.id}`],
    ]) {
      assertError(await api(m, path, U.outsider, body), 404, 'not_found');
    }
    assertStatus(await api('GET', `/api/posts/${pp.id}`, U.member), 200);
  });

  test('edit: author only, sets edited_at; field rules', async () => {
    const c = await community(U.owner, 'public', [[U.admin, 'admin'], [U.mod, 'moderator'], [U.member, 'member'], [U.member2, 'member']]);
    const p = await mkPost(c, U.member, { title: 'orig', body: 'original body' });
    assert.equal(p.edited_at, null);
    await sleep(5);
    const r = await api('PATCH', `/api/posts/${p.id}`, U.member, { title: 'new title' });
    assertStatus(r, 200);
    assertPost(r.json, { id: p.id, title: 'new title', body: 'original body' });
    assert.match(String(r.json.edited_at), RFC3339_MS);
    assert.ok(Date.parse(r.json.edited_at) >= Date.parse(p.created_at));
    assert.equal(r.json.created_at, p.created_at);
    const g = await getPost(p.id, null);
    assert.equal(g.edited_at, r.json.edited_at);
    assert.equal(g.title, 'new title');
    for (const who of [U.member2, U.mod, U.admin, U.owner, U.outsider]) {
      assertError(await api('PATCH', `/api/posts/${p.id}`, who, { body: 'hijack' }), 403, 'forbidden');
    }
    assertError(await api('PATCH', `/api/posts/${p.id}`, null, { body: 'hijack' }), 401, 'unauthorized');
    assertError(await api('PATCH', `/api/posts/${p.id}`, U.member, { title: 't'.repeat(301) }), 400, 'validation_failed', 'title');
    assertError(await api('PATCH', `/api/posts/${p.id}`, U.member, { body: '' }), 400, 'validation_failed', 'body');
    assertError(await api('PATCH', `/api/posts/${p.id}`, U.member, { body: 'b'.repeat(40001) }), 400, 'validation_failed', 'body');
    assertError(await api('PATCH', `/api/posts/${p.id}`, U.member, { body: 3 }), 400, 'validation_failed', 'body');
    assert.equal((await getPost(p.id, null)).body, 'original body');
  });

  test('delete: author or moderator+; a member who is not the author 403', async () => {
    const c = await community(U.owner, 'public', [[U.admin, 'admin'], [U.mod, 'moderator'], [U.member, 'member'], [U.member2, 'member']]);
    const a = await mkPost(c, U.member);
    const b = await mkPost(c, U.member);
    const d = await mkPost(c, U.mod);
    assertError(await api('DELETE', `/api/posts/${a.id}`, U.member2), 403, 'forbidden');
    assertError(await api('DELETE', `/api/posts/${a.id}`, U.outsider), 403, 'forbidden');
    assertError(await api('DELETE', `/api/posts/${a.id}`, null), 401, 'unauthorized');
    assertPost(await getPost(a.id, null), { id: a.id });
    assertStatus(await api('DELETE', `/api/posts/${a.id}`, U.member), 204);
    assertError(await api('GET', `/api/posts/${a.id}`, U.member), 404);
    assertError(await api('DELETE', `/api/posts/${a.id}`, U.member), 404);
    assertStatus(await api('DELETE', `/api/posts/${b.id}`, U.mod), 204);
    assertStatus(await api('DELETE', `/api/posts/${d.id}`, U.admin), 204);
    const e = await mkPost(c, U.admin);
    assertStatus(await api('DELETE', `/api/posts/${e.id}`, U.owner), 204);
    const feed = await api('GET', `/api/communities/${c.id}/posts`, null);
    assert.deepEqual(feed.json.items, []);
  });

  test('comments: member creates, readers list oldest first, replies, counts stay right after deletes', async () => {
    const c = await community(U.owner, 'public', [[U.mod, 'moderator'], [U.member, 'member'], [U.member2, 'member']]);
    const p = await mkPost(c, U.member);
    const url = `/api/posts/${p.id}/comments`;
    const c1 = await api('POST', url, U.member, { body: 'first' });
    assertStatus(c1, 201);
    assert.ok(Number.isInteger(c1.json.id));
    assert.equal(c1.json.body, 'first');
    assert.equal(c1.json.post_id ?? p.id, p.id);
    const authorId = c1.json.author?.id ?? c1.json.user?.id ?? c1.json.author_id;
    assert.equal(authorId, U.member.id, `comment author: ${JSON.stringify(c1.json)}`);
    assert.match(c1.json.created_at, RFC3339_MS);
    const c2 = await api('POST', url, U.member2, { body: 'second', parent_id: c1.json.id });
    assertStatus(c2, 201);
    assert.equal(c2.json.parent_id, c1.json.id);
    const c3 = await api('POST', url, U.mod, { body: 'third' });
    assertStatus(c3, 201);
    assertError(await api('POST', url, U.outsider, { body: 'x' }), 403, 'forbidden');
    assertError(await api('POST', url, null, { body: 'x' }), 401, 'unauthorized');
    assertError(await api('POST', url, U.member, { body: '' }), 400, 'validation_failed', 'body');
    assertError(await api('POST', url, U.member, { body: 'c'.repeat(10001) }), 400, 'validation_failed', 'body');
    assertError(await api('POST', url, U.member, { body: 7 }), 400, 'validation_failed', 'body');
    assertError(await api('POST', url, U.member, {}), 400, 'validation_failed', 'body');
    assertError(await api('POST', url, U.member, { body: 'x', parent_id: 'one' }), 400, 'validation_failed', 'parent_id');
    // a parent from another post is refused
    const other = await mkPost(c, U.member);
    const oc = await api('POST', `/api/posts/${other.id}/comments`, U.member, { body: 'elsewhere' });
    assertStatus(oc, 201);
    const cross = await api('POST', url, U.member, { body: 'x', parent_id: oc.json.id });
    assert.ok(cross.status === 400 || cross.status === 404, `parent of another post: ${show(cross)}`);
    assertStatus(await api('POST', url, U.member, { body: 'c'.repeat(10000) }), 201);
    let list = await api('GET', url, null);
    assertStatus(list, 200);
    assert.deepEqual(list.json.items.slice(0, 3).map((x) => x.id), [c1.json.id, c2.json.id, c3.json.id]);
    assert.equal(list.json.items.length, 4);
    assert.equal((await getPost(p.id, null)).comment_count, 4);
    // pagination, oldest first
    const pg = await api('GET', `${url}?limit=2`, null);
    assert.deepEqual(pg.json.items.map((x) => x.id), [c1.json.id, c2.json.id]);
    assert.equal(typeof pg.json.next_cursor, 'string');
    const pg2 = await api('GET', `${url}?limit=2&cursor=${encodeURIComponent(pg.json.next_cursor)}`, null);
    assert.equal(pg2.json.items[0].id, c3.json.id);
    // delete: author or moderator+
    assertError(await api('DELETE', `/api/comments/${c3.json.id}`, U.member), 403, 'forbidden');
    assertError(await api('DELETE', `/api/comments/${c3.json.id}`, null), 401, 'unauthorized');
    assertStatus(await api('DELETE', `/api/comments/${c3.json.id}`, U.mod), 204);
    assert.equal((await getPost(p.id, null)).comment_count, 3);
    assertError(await api('DELETE', `/api/comments/${c3.json.id}`, U.mod), 404);
    assert.equal((await getPost(p.id, null)).comment_count, 3);
    assertStatus(await api('DELETE', `/api/comments/${c2.json.id}`, U.member2), 204);
    assert.equal((await getPost(p.id, null)).comment_count, 2);
    // deleting a parent: the count equals what the list shows
    assertStatus(await api('DELETE', `/api/comments/${c1.json.id}`, U.member), 204);
    list = await api('GET', `${url}?limit=100`, null);
    const post = await getPost(p.id, null);
    assert.equal(post.comment_count, list.json.items.length, `comment_count ${post.comment_count} vs ${list.json.items.length} listed`);
    const feed = await api('GET', `/api/communities/${c.id}/posts`, null);
    assert.equal(feed.json.items.find((x) => x.id === p.id).comment_count, list.json.items.length);
  });

  test('concurrent comments, deletes and reactions keep the counts right', async () => {
    const users = [U.member, U.member2, U.mod, U.mod2, U.admin, U.admin2];
    const c = await community(U.owner, 'public', users.map((u) => [u, 'member']));
    const p = await mkPost(c, U.owner);
    const made = await Promise.all(Array.from({ length: 12 }, (_, i) => api('POST', `/api/posts/${p.id}/comments`, users[i % users.length], { body: `c${i}` })));
    assert.deepEqual(made.map((r) => r.status), new Array(12).fill(201));
    assert.equal((await getPost(p.id, null)).comment_count, 12);
    // each comment deleted twice at once: 204 and 404, the count drops by one per comment
    const del = await Promise.all(made.slice(0, 5).flatMap((r, i) => [
      api('DELETE', `/api/comments/${r.json.id}`, users[i % users.length]), api('DELETE', `/api/comments/${r.json.id}`, U.owner)]));
    assert.ok(del.every((r) => r.status === 204 || r.status === 404), del.map(show).join('\n'));
    assert.equal(del.filter((r) => r.status === 204).length, 5);
    assert.equal((await getPost(p.id, null)).comment_count, 7);
    assert.equal((await api('GET', `/api/posts/${p.id}/comments?limit=100`, null)).json.items.length, 7);
    // every user reacts twice at once, and one un-reacts twice at once
    const url = `/api/posts/${p.id}/reactions/${encodeURIComponent('👍')}`;
    const rs = await Promise.all(users.flatMap((u) => [api('PUT', url, u), api('PUT', url, u)]));
    assert.deepEqual(rs.map((r) => r.status), new Array(12).fill(204), rs.map(show).join('\n'));
    assert.deepEqual((await getPost(p.id, null)).reactions, { '👍': users.length });
    const un = await Promise.all([api('DELETE', url, U.member), api('DELETE', url, U.member)]);
    assert.deepEqual(un.map((r) => r.status), [204, 204]);
    assert.deepEqual((await getPost(p.id, null)).reactions, { '👍': users.length - 1 });
  });

  test('reactions: PUT twice -> one reaction; DELETE twice -> 204; counts and my_reactions', async () => {
    const c = await community(U.owner, 'public', [[U.member, 'member'], [U.member2, 'member']]);
    const p = await mkPost(c, U.owner);
    const e = (s) => encodeURIComponent(s);
    const url = (emoji) => `/api/posts/${p.id}/reactions/${e(emoji)}`;
    let r = await api('PUT', url('👍'), U.member);
    assertStatus(r, 204);
    assert.equal(r.text, '');
    assertStatus(await api('PUT', url('👍'), U.member), 204);
    let g = await getPost(p.id, U.member);
    assert.deepEqual(g.reactions, { '👍': 1 });
    assert.deepEqual(g.my_reactions, ['👍']);
    assertStatus(await api('PUT', url('👍'), U.member2), 204);
    assertStatus(await api('PUT', url('❤️'), U.member2), 204);
    g = await getPost(p.id, U.member2);
    assert.deepEqual(g.reactions, { '👍': 2, '❤️': 1 });
    assert.deepEqual([...g.my_reactions].sort(), ['❤️', '👍'].sort());
    g = await getPost(p.id, U.member);
    assert.deepEqual(g.my_reactions, ['👍']);
    g = await getPost(p.id, null);
    assert.deepEqual(g.my_reactions, []);
    assert.deepEqual(g.reactions, { '👍': 2, '❤️': 1 });
    const f = await api('GET', `/api/communities/${c.id}/posts`, U.member2);
    assert.deepEqual(f.json.items[0].reactions, { '👍': 2, '❤️': 1 });
    assert.deepEqual([...f.json.items[0].my_reactions].sort(), ['❤️', '👍'].sort());
    // DELETE twice
    assertStatus(await api('DELETE', url('👍'), U.member), 204);
    assertStatus(await api('DELETE', url('👍'), U.member), 204);
    g = await getPost(p.id, U.member);
    assert.deepEqual(g.reactions, { '👍': 1, '❤️': 1 });
    assert.deepEqual(g.my_reactions, []);
    assertStatus(await api('DELETE', url('👍'), U.member2), 204);
    assertStatus(await api('DELETE', url('❤️'), U.member2), 204);
    assert.deepEqual((await getPost(p.id, null)).reactions, {});
    // who: member
    assertError(await api('PUT', url('👍'), U.outsider), 403, 'forbidden');
    assertError(await api('PUT', url('👍'), null), 401, 'unauthorized');
    assertError(await api('DELETE', url('👍'), null), 401, 'unauthorized');
    // emoji <= 32 bytes: 8 four-byte emoji pass, 33 bytes fail
    const e32 = '😀'.repeat(8);
    assert.equal(Buffer.byteLength(e32), 32);
    assertStatus(await api('PUT', url(e32), U.member), 204);
    assert.deepEqual((await getPost(p.id, null)).reactions, { [e32]: 1 });
    const e33 = `${e32}a`;
    assertError(await api('PUT', url(e33), U.member), 400, 'validation_failed', 'emoji');
    assertError(await api('PUT', `/api/posts/${p.id}/reactions/${'a'.repeat(33)}`, U.member), 400, 'validation_failed', 'emoji');
    // invalid UTF-8 is not an emoji
    const inv = await api('PUT', `/api/posts/${p.id}/reactions/%FF%FE`, U.member);
    assertError(inv, 400, 'validation_failed');
    assert.deepEqual((await getPost(p.id, null)).reactions, { [e32]: 1 });
  });

  test('reactions: the counts kept on the post follow every way a reaction goes, a deleted user included', { skip: LOCAL_ONLY }, async () => {
    // posts.reaction_counts is kept by a trigger (migration 0007); compare it with a count of
    // the rows after API changes and after a user is deleted in the database (the cascade
    // bypasses the API, so no cache is involved: read the column itself)
    const c = await community(U.owner, 'public', [[U.member, 'member']]);
    const p = await mkPost(c, U.owner);
    const gone = await newUser('gone');
    assertStatus(await api('POST', `/api/communities/${c.id}/join`, gone), 200);
    const url = (emoji) => `/api/posts/${p.id}/reactions/${encodeURIComponent(emoji)}`;
    for (const [who, emoji] of [[U.member, '👍'], [gone, '👍'], [gone, '🎉'], [U.owner, '🎉'], [U.owner, '✨']]) {
      assertStatus(await api('PUT', url(emoji), who), 204);
    }
    assertStatus(await api('DELETE', url('✨'), U.owner), 204);
    const kept = async () => JSON.parse((await psql(`SELECT reaction_counts FROM posts WHERE id = ${Number(p.id)}`)).stdout.trim());
    const counted = async () => JSON.parse((await psql(
      `SELECT COALESCE(jsonb_object_agg(emoji, n), '{}') FROM (SELECT emoji, count(*) AS n FROM reactions WHERE post_id = ${Number(p.id)} GROUP BY emoji) x`)).stdout.trim());
    assert.deepEqual(await kept(), { '👍': 2, '🎉': 2 });
    assert.deepEqual(await kept(), await counted());
    assert.deepEqual((await getPost(p.id, null)).reactions, { '👍': 2, '🎉': 2 });
    // the user leaves first (the API keeps the Redis membership mirror in step; the later
    // tests compare it with PostgreSQL), its reactions stay until the user row goes
    assertStatus(await api('POST', `/api/communities/${c.id}/leave`, gone), 204);
    assert.deepEqual(await kept(), { '👍': 2, '🎉': 2 });
    const del = await psql(`DELETE FROM users WHERE id = ${Number(gone.id)}`);
    assert.equal(del.code, 0, del.stderr);
    assert.deepEqual(await kept(), { '👍': 1, '🎉': 1 });
    assert.deepEqual(await kept(), await counted());
  });

  test('search: ranked, readers only, any q is safe', async () => {
    const c = await community(U.owner, 'public', [[U.member, 'member']]);
    const word = `zebra${crypto.randomBytes(3).toString('hex')}`;
    const once = await mkPost(c, U.member, { title: 'unrelated', body: `there is a ${word} somewhere in this long body of text` });
    const twice = await mkPost(c, U.member, { title: `All about ${word}`, body: `${word} facts` });
    await mkPost(c, U.member, { title: 'nothing', body: 'nothing to see here' });
    const r = await api('GET', `/api/communities/${c.id}/search?q=${word}`, null);
    assertStatus(r, 200);
    assert.deepEqual(r.json.items.map((p) => p.id), [twice.id, once.id]);
    assertPost(r.json.items[0], { community_id: c.id });
    // other communities are not searched
    const c2 = await community(U.owner);
    await mkPost(c2, U.owner, { title: word, body: word });
    const r2 = await api('GET', `/api/communities/${c.id}/search?q=${word}`, U.member);
    assert.equal(r2.json.items.length, 2);
    // hostile or odd input: 200 (or 400 for an empty query), never 500
    for (const q of ["' OR 1=1 --", '&|!:*()', '!!!', '"unterminated', 'a & !b | <-> c:*', '🦓 zèbre 斑马', '\\', '%', 'OR', '-', "'; DROP TABLE posts; --", 'x'.repeat(200)]) {
      const s = await api('GET', `/api/communities/${c.id}/search?q=${encodeURIComponent(q)}`, U.member);
      assertStatus(s, 200, `q=${JSON.stringify(q).slice(0, 60)}:`);
      assert.ok(Array.isArray(s.json.items));
    }
    // a very long query may be refused, but as bad input naming q, never a 5xx
    const long = await api('GET', `/api/communities/${c.id}/search?q=${'x'.repeat(5000)}`, U.member);
    if (long.status !== 200) assertError(long, 400, 'validation_failed', 'q');
    const empty = await api('GET', `/api/communities/${c.id}/search?q=`, U.member);
    assert.ok(empty.status === 200 || (empty.status === 400 && empty.json.error.field === 'q'), show(empty));
    const none = await api('GET', `/api/communities/${c.id}/search`, U.member);
    assert.ok(none.status === 200 || (none.status === 400 && none.json.error.field === 'q'), show(none));
    // unicode words are found
    const uni = await mkPost(c, U.member, { title: 'Ünïcödé', body: `grüße ${word}x 斑马` });
    const su = await api('GET', `/api/communities/${c.id}/search?q=${encodeURIComponent('grüße')}`, U.member);
    assertStatus(su, 200);
    assert.ok(su.json.items.some((p) => p.id === uni.id), show(su));
    // the database is intact after the hostile queries
    assert.equal((await api('GET', `/api/communities/${c.id}/posts`, null)).json.items.length, 4);
  });
});

// --- events ---------------------------------------------------------------------------

describe('events (pg_notify townhall_events)', () => {
  test('membership, channel, community and post writes each emit one event with ids', { skip: LOCAL_ONLY }, async () => {
    const c = await community(U.owner, 'public', [[U.mod, 'moderator']]);
    const p = await community(U.owner, 'private');
    const j = await newUser('evt');
    const l = listen(5);
    assert.ok(await until(listening, { timeoutMs: 4000, intervalMs: 50 }), 'psql LISTEN did not start');
    const t0 = Date.now();
    assertStatus(await api('POST', `/api/communities/${c.id}/join`, j), 200);
    assertStatus(await api('POST', `/api/communities/${c.id}/join`, j), 200); // idempotent: no event
    assertError(await api('POST', `/api/communities/${p.id}/join`, j), 403); // refused: no event
    assertStatus(await api('PUT', `/api/communities/${c.id}/members/${j.id}`, U.owner, { role: 'moderator' }), 200);
    assertStatus(await api('PUT', `/api/communities/${c.id}/members/${j.id}`, U.owner, { role: 'member' }), 200);
    const post = await api('POST', `/api/communities/${c.id}/posts`, j, { body: 'event post' });
    const pid = post.json?.id;
    const edit = await api('PATCH', `/api/posts/${pid}`, j, { body: 'edited event post' });
    const com = await api('POST', `/api/posts/${pid}/comments`, U.owner, { body: 'event comment' });
    const comDel = await api('DELETE', `/api/comments/${com.json?.id}`, U.owner);
    await api('PUT', `/api/posts/${pid}/reactions/x`, U.owner); // reactions: no event
    const post2 = await api('POST', `/api/communities/${c.id}/posts`, j, { body: 'to be deleted' });
    const postDel = await api('DELETE', `/api/posts/${post2.json?.id}`, U.mod);
    const ch = await api('POST', `/api/communities/${c.id}/channels`, U.owner, { name: 'evchan' });
    assertStatus(ch, 201);
    assertStatus(await api('PATCH', `/api/communities/${c.id}`, U.owner, { description: 'changed' }), 200);
    assertStatus(await api('POST', `/api/communities/${c.id}/bans`, U.mod, { user_id: j.id }), 201);
    assertStatus(await api('DELETE', `/api/communities/${c.id}/bans/${j.id}`, U.mod), 204);
    assertStatus(await api('POST', `/api/communities/${c.id}/join`, j), 200);
    assertStatus(await api('POST', `/api/communities/${c.id}/leave`, j), 204);
    assertStatus(await api('PUT', `/api/communities/${p.id}/members/${j.id}`, U.owner, { role: 'member' }), 200);
    assertStatus(await api('DELETE', `/api/communities/${p.id}/members/${j.id}`, U.owner), 204);
    assertStatus(await api('DELETE', `/api/communities/${p.id}`, U.owner), 204);
    assert.ok(Date.now() - t0 < 4000, 'the actions took longer than the LISTEN window');
    const { events, out } = await l.done;
    const mine = events.filter((e) => e.community_id === c.id || e.community_id === p.id);
    const expected = [
      { type: 'member_joined', community_id: c.id, user_id: j.id },
      { type: 'role_changed', community_id: c.id, user_id: j.id },
      { type: 'role_changed', community_id: c.id, user_id: j.id },
      ...(post.status === 201 ? [{ type: 'post_created', community_id: c.id, post_id: pid, author_id: j.id }] : []),
      ...(edit.status === 200 ? [{ type: 'post_edited', community_id: c.id, post_id: pid }] : []),
      ...(com.status === 201 ? [{ type: 'comment_created', community_id: c.id, post_id: pid, comment_id: com.json.id }] : []),
      ...(comDel.status === 204 ? [{ type: 'comment_deleted', community_id: c.id, post_id: pid, comment_id: com.json.id }] : []),
      ...(post2.status === 201 ? [{ type: 'post_created', community_id: c.id, post_id: post2.json.id }] : []),
      ...(postDel.status === 204 ? [{ type: 'post_deleted', community_id: c.id, post_id: post2.json.id, deleted_by: U.mod.id }] : []),
      { type: 'channel_created', community_id: c.id, channel_id: ch.json.id },
      { type: 'community_updated', community_id: c.id },
      { type: 'member_banned', community_id: c.id, user_id: j.id },
      { type: 'member_unbanned', community_id: c.id, user_id: j.id },
      { type: 'member_joined', community_id: c.id, user_id: j.id },
      { type: 'member_left', community_id: c.id, user_id: j.id },
      { type: 'member_joined', community_id: p.id, user_id: j.id },
      { type: 'member_removed', community_id: p.id, user_id: j.id },
      { type: 'community_deleted', community_id: p.id },
    ];
    // compare the keys the contract names; extra keys (e.g. author_id) are allowed
    const pick = (e, proto) => Object.fromEntries(Object.keys(proto).map((k) => [k, e[k]]));
    assert.equal(mine.length, expected.length, `events:\n${mine.map((e) => JSON.stringify(e)).join('\n')}\n--- psql:\n${out.slice(0, 2000)}`);
    mine.forEach((e, i) => assert.deepEqual(pick(e, expected[i]), expected[i], `event ${i}: ${JSON.stringify(e)}`));
    for (const e of mine) assert.ok(JSON.stringify(e).length < 8000);
    // the post routes answered as they should (else their events were not checked)
    assert.deepEqual([post.status, edit.status, com.status, comDel.status, post2.status, postDel.status], [201, 200, 201, 204, 201, 204]);
  });
});

// --- Redis membership mirror --------------------------------------------------------------

describe('Redis membership mirror', () => {
  test('join, role change, ban, channel, visibility update the keys; FLUSHALL + scripts/mirror-rebuild restores them', { skip: LOCAL_ONLY }, async () => {
    const c = await community(U.owner, 'public', [[U.mod, 'moderator']]);
    const p = await community(U.owner, 'private', [[U.member, 'member']]);
    const j = await newUser('mir');
    const b = await newUser('mirb');
    assertStatus(await api('POST', `/api/communities/${c.id}/join`, j), 200);
    assertStatus(await api('POST', `/api/communities/${c.id}/join`, b), 200);
    assert.equal(await redisRaw('HGET', `th:members:${c.id}`, String(j.id)), 'member');
    assert.equal(await redisRaw('SISMEMBER', `th:user:${j.id}:communities`, String(c.id)), '1');
    assert.equal(await redisRaw('HGET', `th:community:${c.id}`, 'visibility'), 'public');
    assert.equal(await redisRaw('HGET', `th:community:${p.id}`, 'visibility'), 'private');
    assert.equal(await redisRaw('HGET', `th:members:${c.id}`, String(U.owner.id)), 'owner');
    assert.equal(await redisRaw('HGET', `th:members:${p.id}`, String(U.member.id)), 'member');
    // role change
    assertStatus(await api('PUT', `/api/communities/${c.id}/members/${j.id}`, U.owner, { role: 'admin' }), 200);
    assert.equal(await redisRaw('HGET', `th:members:${c.id}`, String(j.id)), 'admin');
    // ban
    assertStatus(await api('POST', `/api/communities/${c.id}/bans`, U.mod, { user_id: b.id }), 201);
    assert.equal(await redisRaw('SISMEMBER', `th:banned:${c.id}`, String(b.id)), '1');
    assert.equal(await redisRaw('HEXISTS', `th:members:${c.id}`, String(b.id)), '0');
    assert.equal(await redisRaw('SISMEMBER', `th:user:${b.id}:communities`, String(c.id)), '0');
    // channels (#general and a new one)
    const chs = await api('GET', `/api/communities/${c.id}/channels`, U.owner);
    const general = chs.json.items[0].id;
    const nc = await api('POST', `/api/communities/${c.id}/channels`, U.owner, { name: 'mirrored' });
    assertStatus(nc, 201);
    assert.equal(await redisRaw('GET', `th:channel:${general}`), String(c.id));
    assert.equal(await redisRaw('GET', `th:channel:${nc.json.id}`), String(c.id));
    // visibility
    assertStatus(await api('PATCH', `/api/communities/${p.id}`, U.owner, { visibility: 'public' }), 200);
    assert.equal(await redisRaw('HGET', `th:community:${p.id}`, 'visibility'), 'public');
    assertStatus(await api('PATCH', `/api/communities/${p.id}`, U.owner, { visibility: 'private' }), 200);
    assert.equal(await redisRaw('HGET', `th:community:${p.id}`, 'visibility'), 'private');
    // leave and removal
    assertStatus(await api('POST', `/api/communities/${p.id}/leave`, U.member), 204);
    assert.equal(await redisRaw('HEXISTS', `th:members:${p.id}`, String(U.member.id)), '0');
    assert.equal(await redisRaw('SISMEMBER', `th:user:${U.member.id}:communities`, String(p.id)), '0');
    // a deleted community leaves no keys behind
    const d = await community(U.owner, 'public', [[U.member2, 'member']]);
    const dch = (await api('GET', `/api/communities/${d.id}/channels`, U.owner)).json.items[0].id;
    assertStatus(await api('DELETE', `/api/communities/${d.id}`, U.owner), 204);
    assert.equal(await redisRaw('EXISTS', `th:members:${d.id}`, `th:community:${d.id}`, `th:channel:${dch}`), '0');
    assert.equal(await redisRaw('SISMEMBER', `th:user:${U.member2.id}:communities`, String(d.id)), '0');

    // snapshot of every mirror key, FLUSHALL, rebuild, compare
    async function snapshot() {
      const keys = (await redisRaw('--scan', '--pattern', 'th:*')).split('\n').filter((k) => /^th:(members|banned|community|channel):\d+$|^th:user:\d+:communities$/.test(k)).sort();
      const snap = {};
      for (const k of keys) {
        const type = await redisRaw('TYPE', k);
        if (type === 'hash') {
          const flat = (await redisRaw('HGETALL', k)).split('\n');
          const h = {};
          for (let i = 0; i + 1 < flat.length; i += 2) h[flat[i]] = flat[i + 1];
          snap[k] = h;
        } else if (type === 'set') snap[k] = (await redisRaw('SMEMBERS', k)).split('\n').filter(Boolean).sort();
        else snap[k] = await redisRaw('GET', k);
      }
      return snap;
    }
    const before = await snapshot();
    assert.ok(Object.keys(before).length > 10, JSON.stringify(before).slice(0, 500));
    // a stale key the rebuild must remove
    await redisRaw('HSET', `th:members:${c.id}`, '999999999', 'admin');
    await redisRaw('SET', 'th:channel:999999999', '1');
    const dirty = await snapshot();
    assert.notDeepEqual(dirty, before);
    let r = await run('scripts/mirror-rebuild');
    assert.equal(r.code, 0, `mirror-rebuild:\n${r.stdout}\n${r.stderr}`);
    assert.deepEqual(await snapshot(), before, 'rebuild over stale keys');
    assert.equal(await redisRaw('FLUSHALL'), 'OK');
    assert.equal(await redisRaw('EXISTS', `th:members:${c.id}`), '0');
    r = await run('scripts/mirror-rebuild');
    assert.equal(r.code, 0, `mirror-rebuild:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /\d/, 'mirror-rebuild prints counts');
    const after = await snapshot();
    assert.deepEqual(after, before);
    assert.equal(await redisRaw('HGET', `th:members:${c.id}`, String(j.id)), 'admin');
    assert.equal(await redisRaw('SISMEMBER', `th:banned:${c.id}`, String(b.id)), '1');
    assert.equal(await redisRaw('SISMEMBER', `th:user:${j.id}:communities`, String(c.id)), '1');
    assert.equal(await redisRaw('GET', `th:channel:${nc.json.id}`), String(c.id));
    assert.equal(await redisRaw('HGET', `th:community:${p.id}`, 'visibility'), 'private');
    // idempotent
    r = await run('scripts/mirror-rebuild');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await snapshot(), before);
    if (process.env.TH_REDIS_CLUSTER) {
      // the first node listed is down (as right after a master died): the next one serves
      const dead = `127.0.0.1:${PORT_BASE + 59}`;
      r = await run('scripts/mirror-rebuild', [], { env: { TH_REDIS_CLUSTER: `${dead},${process.env.TH_REDIS_CLUSTER}` } });
      assert.equal(r.code, 0, `mirror-rebuild past a dead first node:\n${r.stdout}\n${r.stderr}`);
      assert.deepEqual(await snapshot(), before);
    }
    // the apps still work after the flush (revocation epoch, caches rebuilt)
    assertStatus(await getC(c.id, j), 200);
  });
});

// --- feed cache hits without PostgreSQL (issue 4) -----------------------------------------
// A cached first page is served with the read verdict (th:acc:*) and the caller's reactions
// (th:mine:*) from Redis. These tests check that the verdicts and reactions never outlive
// the change they depend on, survive a flush, and that planted or garbled entries are not
// trusted beyond their shape.

describe('feed cache: hits without PostgreSQL', () => {
  const feedOf = (cid, who, q = '') => api('GET', `/api/communities/${cid}/posts${q}`, who);
  // each read twice: the first may fill the cache, the second is then a hit
  async function expectFeed(cid, who, status, what) {
    for (let i = 0; i < 2; i++) {
      const r = await feedOf(cid, who);
      if (status === 200) assertStatus(r, 200, `${what} (read ${i + 1}):`);
      else assertError(r, status, 'not_found');
    }
  }
  const keys = async (pattern) => (await redisRaw('--scan', '--pattern', pattern)).split('\n').filter(Boolean);

  test('private community: the cached verdict follows joins, removals, bans, leaves and visibility at once', { skip: LOCAL_ONLY }, async () => {
    const c = await community(U.owner, 'private', [[U.member, 'member']]);
    await mkPost(c, U.owner, { title: 'inside', body: 'members only' });
    await expectFeed(c.id, U.member, 200, 'member');
    await expectFeed(c.id, U.outsider, 404, 'outsider');
    await expectFeed(c.id, null, 404, 'anonymous');
    // the verdicts are really cached (so the next steps test the cache, not PostgreSQL)
    const acc = await keys(`th:acc:{c${c.id}}:v*`);
    assert.ok(acc.some((k) => k.endsWith(`:${U.member.id}`)), `no cached verdict for the member: ${acc}`);
    assert.ok(acc.some((k) => k.endsWith(`:${U.outsider.id}`)), `no cached verdict for the outsider: ${acc}`);
    // a hidden community is 404 whatever the query; a reader gets the 400
    assertError(await feedOf(c.id, U.outsider, '?limit=0'), 404, 'not_found');
    assertError(await feedOf(c.id, U.member, '?limit=0'), 400, 'validation_failed', 'limit');
    // added by PUT: readable on the very next request
    assertStatus(await api('PUT', `/api/communities/${c.id}/members/${U.outsider.id}`, U.owner, { role: 'member' }), 200);
    await expectFeed(c.id, U.outsider, 200, 'outsider added');
    // removed: 404 on the very next request
    assertStatus(await api('DELETE', `/api/communities/${c.id}/members/${U.outsider.id}`, U.owner), 204);
    await expectFeed(c.id, U.outsider, 404, 'outsider removed');
    // banned: 404; unbanned: still no member, 404; added again: 200
    assertStatus(await api('POST', `/api/communities/${c.id}/bans`, U.owner, { user_id: U.member.id }), 201);
    await expectFeed(c.id, U.member, 404, 'member banned');
    assertStatus(await api('DELETE', `/api/communities/${c.id}/bans/${U.member.id}`, U.owner), 204);
    await expectFeed(c.id, U.member, 404, 'member unbanned');
    assertStatus(await api('PUT', `/api/communities/${c.id}/members/${U.member.id}`, U.owner, { role: 'member' }), 200);
    await expectFeed(c.id, U.member, 200, 'member added again');
    // leaves: 404
    assertStatus(await api('POST', `/api/communities/${c.id}/leave`, U.member), 204);
    await expectFeed(c.id, U.member, 404, 'member left');
    // public: anyone; private again: members only
    assertStatus(await api('PATCH', `/api/communities/${c.id}`, U.owner, { visibility: 'public' }), 200);
    await expectFeed(c.id, null, 200, 'anonymous, public');
    await expectFeed(c.id, U.member, 200, 'former member, public');
    assertStatus(await api('PATCH', `/api/communities/${c.id}`, U.owner, { visibility: 'private' }), 200);
    await expectFeed(c.id, null, 404, 'anonymous, private again');
    await expectFeed(c.id, U.member, 404, 'former member, private again');
    await expectFeed(c.id, U.owner, 200, 'owner');
    // deleted: 404 for everyone, the owner too
    assertStatus(await api('DELETE', `/api/communities/${c.id}`, U.owner), 204);
    await expectFeed(c.id, U.owner, 404, 'owner, deleted');
  });

  test('my_reactions from the cache: right on the very next request after PUT and DELETE, per caller and per page size', { skip: LOCAL_ONLY }, async () => {
    const c = await community(U.owner, 'public', [[U.member, 'member'], [U.member2, 'member']]);
    const posts = [];
    for (let i = 0; i < 3; i++) posts.push(await mkPost(c, U.owner, { body: `reactable ${i}` }));
    const mine = async (who, q = '') => {
      const r = await feedOf(c.id, who, q);
      assertStatus(r, 200);
      return Object.fromEntries(r.json.items.map((p) => [p.id, { mine: p.my_reactions, all: p.reactions }]));
    };
    const e = encodeURIComponent;
    const [p0, p1, p2] = posts;
    for (let i = 0; i < 2; i++) assert.deepEqual((await mine(U.member))[p1.id].mine, []);
    assert.ok((await keys(`th:mine:{c${c.id}}:v*:${U.member.id}:feed:20`)).length > 0, 'no cached reactions of the member');
    assertStatus(await api('PUT', `/api/posts/${p1.id}/reactions/${e('👍')}`, U.member), 204);
    for (let i = 0; i < 2; i++) {
      const m = await mine(U.member);
      assert.deepEqual(m[p1.id].mine, ['👍'], `read ${i + 1} after PUT`);
      assert.deepEqual(m[p0.id].mine, []);
      assert.deepEqual(m[p2.id].mine, []);
      assert.deepEqual(m[p1.id].all, { '👍': 1 });
    }
    // another page size is an entry of its own, right too
    assert.deepEqual((await mine(U.member, '?limit=2'))[p1.id].mine, ['👍']);
    // someone else's reaction changes the counts, not my_reactions
    for (let i = 0; i < 2; i++) assert.deepEqual((await mine(U.member2))[p1.id].mine, []);
    assertStatus(await api('PUT', `/api/posts/${p1.id}/reactions/${e('🎉')}`, U.member2), 204);
    assertStatus(await api('PUT', `/api/posts/${p2.id}/reactions/${e('🎉')}`, U.member2), 204);
    for (let i = 0; i < 2; i++) {
      const m = await mine(U.member);
      assert.deepEqual(m[p1.id].mine, ['👍']);
      assert.deepEqual(m[p2.id].mine, []);
      assert.deepEqual(m[p1.id].all, { '👍': 1, '🎉': 1 });
      const m2 = await mine(U.member2);
      assert.deepEqual(m2[p1.id].mine, ['🎉']);
      assert.deepEqual(m2[p2.id].mine, ['🎉']);
      assert.deepEqual((await mine(null))[p1.id].mine, []);
    }
    // two of mine on one post, in emoji order, then DELETE: gone on the very next request
    assertStatus(await api('PUT', `/api/posts/${p1.id}/reactions/${e('🎉')}`, U.member), 204);
    assert.deepEqual([...(await mine(U.member))[p1.id].mine].sort(), ['👍', '🎉'].sort());
    assertStatus(await api('DELETE', `/api/posts/${p1.id}/reactions/${e('👍')}`, U.member), 204);
    assert.deepEqual((await mine(U.member))[p1.id].mine, ['🎉']);
    assertStatus(await api('DELETE', `/api/posts/${p1.id}/reactions/${e('🎉')}`, U.member), 204);
    for (let i = 0; i < 2; i++) assert.deepEqual((await mine(U.member))[p1.id].mine, []);
    // the single post route shares the cached reactions and is right too
    assertStatus(await api('PUT', `/api/posts/${p0.id}/reactions/${e('👀')}`, U.member), 204);
    for (let i = 0; i < 2; i++) {
      assert.deepEqual((await getPost(p0.id, U.member)).my_reactions, ['👀']);
      assert.deepEqual((await getPost(p0.id, U.member2)).my_reactions, []);
    }
  });

  test('every worker\'s copy of a page gives way at once: concurrent reads after each write see it', async () => {
    const c = await community(U.owner, 'private', [[U.member, 'member'], [U.member2, 'member']]);
    await mkPost(c, U.owner, { body: 'first' });
    // 16 at once reach every worker of the pool, so each holds a copy of the page
    const burst = async (who) => Promise.all(Array.from({ length: 16 }, () => feedOf(c.id, who)));
    const e = encodeURIComponent;
    for (let round = 0; round < 3; round++) {
      await burst(U.member); await burst(U.member2);
      const p = await mkPost(c, U.member2, { body: `round ${round}` });
      for (const r of await burst(U.member)) {
        assertStatus(r, 200);
        assert.equal(r.json.items[0].id, p.id, `round ${round}: a worker served a page without post ${p.id}`);
      }
      assertStatus(await api('PUT', `/api/posts/${p.id}/reactions/${e('✅')}`, U.member), 204);
      for (const r of await burst(U.member)) {
        assert.deepEqual(r.json.items[0].my_reactions, ['✅'], `round ${round}: my_reactions`);
        assert.deepEqual(r.json.items[0].reactions, { '✅': 1 }, `round ${round}: counts`);
      }
      for (const r of await burst(U.member2)) assert.deepEqual(r.json.items[0].my_reactions, []);
      // removed from the private community: every worker refuses at once
      assertStatus(await api('DELETE', `/api/communities/${c.id}/members/${U.member2.id}`, U.owner), 204);
      for (const r of await burst(U.member2)) assertError(r, 404, 'not_found');
      assertStatus(await api('PUT', `/api/communities/${c.id}/members/${U.member2.id}`, U.owner, { role: 'member' }), 200);
      for (const r of await burst(U.member2)) assertStatus(r, 200, `round ${round}: added again:`);
    }
  });

  test('feed requests for ids that name no community leave no keys in Redis; a new community gets its versions', { skip: LOCAL_ONLY }, async () => {
    const c = await community(U.owner, 'public');
    await mkPost(c, U.owner);
    for (const id of [NO_SUCH_ID, String(c.id + 1000000), '123456789']) {
      for (const who of [null, U.outsider]) assertError(await feedOf(id, who), 404, 'not_found');
      assert.equal(await redisRaw('EXISTS', `th:feedver:{c${id}}`, `th:accver:{c${id}}`), '0', `keys left for community ${id}`);
      assert.deepEqual(await keys(`th:*{c${id}}*`), [], `keys left for community ${id}`);
    }
    // a flushed community's versions come back once PostgreSQL said it exists, then reads are cached
    await redisRaw('DEL', `th:feedver:{c${c.id}}`, `th:accver:{c${c.id}}`);
    await expectFeed(c.id, null, 200, 'after its versions went');
    assert.match(await redisRaw('GET', `th:accver:{c${c.id}}`), /^\d+$/);
    assert.ok((await keys(`th:acc:{c${c.id}}:v*`)).length > 0, 'no cached verdict after two reads');
    // one version gone: it comes back, the other stays what it was (cached pages under it stay good)
    const fv = await redisRaw('GET', `th:feedver:{c${c.id}}`);
    await redisRaw('DEL', `th:accver:{c${c.id}}`);
    await expectFeed(c.id, null, 200, 'after its access version went');
    assert.match(await redisRaw('GET', `th:accver:{c${c.id}}`), /^\d+$/);
    assert.equal(await redisRaw('GET', `th:feedver:{c${c.id}}`), fv, 'feed version changed');
  });

  test('planted or garbled entries: nothing trusted beyond its shape, the reply is rebuilt from PostgreSQL', { skip: LOCAL_ONLY }, async () => {
    const c = await community(U.owner, 'private', [[U.member, 'member']]);
    const p = await mkPost(c, U.owner, { body: 'planted' });
    assertStatus(await api('PUT', `/api/posts/${p.id}/reactions/ok`, U.member), 204);
    await expectFeed(c.id, U.member, 200, 'member');
    await expectFeed(c.id, U.outsider, 404, 'outsider');
    const fv = await redisRaw('GET', `th:feedver:{c${c.id}}`);
    const av = await redisRaw('GET', `th:accver:{c${c.id}}`);
    assert.match(fv, /^\d+$/);
    assert.match(av, /^\d+$/);
    // reactions cached for other posts than the page holds are not used
    await redisRaw('SET', `th:mine:{c${c.id}}:v${fv}:${U.member.id}:feed:20`, `999999999\n999999999\t["x"]\n`);
    let r = await feedOf(c.id, U.member);
    assertStatus(r, 200);
    assert.deepEqual(r.json.items[0].my_reactions, ['ok']);
    // a garbled page entry is refilled, not sent
    await redisRaw('SET', `th:feed:{c${c.id}}:v${fv}:20`, `${p.id}\n{"items":[`);
    r = await feedOf(c.id, U.member);
    assertStatus(r, 200);
    assert.deepEqual(r.json.items.map((x) => x.id), [p.id]);
    assert.deepEqual(r.json.items[0].my_reactions, ['ok']);
    // a page whose ids repeat (not one the app made), with a long reaction for that id: not
    // spliced (it would not fit), refilled; planted under a new version no worker holds a copy of
    const nv = String(BigInt(fv) + 1000n);
    await redisRaw('SET', `th:feedver:{c${c.id}}`, nv);
    const twice = JSON.stringify({ items: [{ id: p.id, my_reactions: [] }, { id: p.id, my_reactions: [] }], next_cursor: null });
    await redisRaw('SET', `th:feed:{c${c.id}}:v${nv}:20`, `${p.id},${p.id}\n${twice}`);
    await redisRaw('SET', `th:mine:{c${c.id}}:v${nv}:${U.member.id}:feed:20`, `${p.id},${p.id}\n${p.id}\t["${'x'.repeat(4000)}"]\n`);
    for (let i = 0; i < 2; i++) {
      r = await feedOf(c.id, U.member);
      assertStatus(r, 200);
      assert.deepEqual(r.json.items.map((x) => [x.id, x.my_reactions]), [[p.id, ['ok']]], `read ${i + 1} after the planted page`);
    }
    // a verdict that is neither a role nor "none" is no verdict: PostgreSQL decides
    await redisRaw('SET', `th:acc:{c${c.id}}:v${av}:${U.outsider.id}`, 'garbage');
    await expectFeed(c.id, U.outsider, 404, 'outsider with a garbled verdict');
    assert.equal(await redisRaw('GET', `th:acc:{c${c.id}}:v${av}:${U.outsider.id}`), 'none');
    // a verdict of an older access version is never read: ban, then plant "member" under the old one
    assertStatus(await api('POST', `/api/communities/${c.id}/bans`, U.owner, { user_id: U.member.id }), 201);
    await redisRaw('SET', `th:acc:{c${c.id}}:v${av}:${U.member.id}`, 'member');
    await expectFeed(c.id, U.member, 404, 'banned member');
  });

  test('Redis FLUSHALL (mirror and cache gone): nothing wrongly refused or shown, verdicts rebuilt from PostgreSQL', { skip: LOCAL_ONLY }, async () => {
    const c = await community(U.owner, 'private', [[U.member, 'member'], [U.member2, 'member']]);
    const pub = await community(U.owner, 'public');
    const p = await mkPost(c, U.owner, { body: 'before the flush' });
    await mkPost(pub, U.owner, { body: 'public' });
    assertStatus(await api('PUT', `/api/posts/${p.id}/reactions/x`, U.member), 204);
    for (const who of [U.member, U.member2, U.outsider, null]) await feedOf(c.id, who);
    assert.equal(await redisRaw('FLUSHALL'), 'OK');
    assert.equal(await redisRaw('EXISTS', `th:members:${c.id}`), '0', 'the mirror should be gone until mirror-rebuild');
    try {
      await expectFeed(c.id, U.member, 200, 'member after the flush');
      await expectFeed(c.id, U.member2, 200, 'member2 after the flush');
      await expectFeed(c.id, U.outsider, 404, 'outsider after the flush');
      await expectFeed(c.id, null, 404, 'anonymous after the flush');
      await expectFeed(pub.id, null, 200, 'anonymous, public, after the flush');
      const f = await feedOf(c.id, U.member);
      assert.deepEqual(f.json.items.map((x) => [x.id, x.my_reactions, x.reactions]), [[p.id, ['x'], { x: 1 }]]);
      assert.deepEqual((await feedOf(c.id, U.member2)).json.items[0].my_reactions, []);
      // changes after the flush (before any rebuild) take effect at once
      assertStatus(await api('POST', `/api/communities/${c.id}/bans`, U.owner, { user_id: U.member2.id }), 201);
      await expectFeed(c.id, U.member2, 404, 'member2 banned after the flush');
      const np = await mkPost(c, U.member, { body: 'after the flush' });
      assert.equal((await feedOf(c.id, U.member)).json.items[0].id, np.id);
      assertStatus(await api('DELETE', `/api/posts/${p.id}/reactions/x`, U.member), 204);
      assert.deepEqual((await feedOf(c.id, U.member)).json.items[1].my_reactions, []);
    } finally {
      const rb = await run('scripts/mirror-rebuild');
      assert.equal(rb.code, 0, rb.stderr);
    }
  });
});

// --- cache metrics and Redis outage (last: it stops Redis) ------------------------------

describe('feed cache', () => {
  const sum = (text, name) => parseProm(text).filter((s) => s.name === name || s.name === `th_${name}`).reduce((a, s) => a + s.value, 0);
  test('/metrics/community counts feed cache hits and misses; a repeated feed request is a hit', { skip: LOCAL_ONLY }, async () => {
    const c = await community(U.owner, 'public', [[U.member, 'member']]);
    await mkPost(c, U.member);
    const m0 = await get('/metrics/community');
    assertStatus(m0, 200);
    assert.match(m0.text, /feed_cache_hits_total/, 'feed_cache_hits_total missing');
    assert.match(m0.text, /feed_cache_misses_total/, 'feed_cache_misses_total missing');
    const h0 = sum(m0.text, 'feed_cache_hits_total');
    const s0 = sum(m0.text, 'feed_cache_misses_total');
    // enough requests to reach every worker twice
    for (let i = 0; i < 12; i++) assertStatus(await api('GET', `/api/communities/${c.id}/posts`, U.member), 200);
    let m1;
    await until(async () => { m1 = await get('/metrics/community'); return sum(m1.text, 'feed_cache_hits_total') > h0; }, { timeoutMs: 3000 });
    const h1 = sum(m1.text, 'feed_cache_hits_total');
    const s1 = sum(m1.text, 'feed_cache_misses_total');
    assert.ok(s1 >= s0 + 1, `misses ${s0} -> ${s1}: the first request must miss`);
    assert.ok(h1 >= h0 + 6, `hits ${h0} -> ${h1} after 12 identical feed requests`);
    assert.ok(h1 - h0 + s1 - s0 >= 12, `hits+misses grew by ${h1 - h0 + s1 - s0}, expected >= 12`);
  });

  test('a community whose posts were written before anyone read its feed (no membership change) is cached too', { skip: LOCAL_ONLY }, async () => {
    for (const visibility of ['public', 'private']) {
      const c = await community(U.owner, visibility);
      await mkPost(c, U.owner);
      await mkPost(c, U.owner);
      const h0 = sum((await get('/metrics/community')).text, 'feed_cache_hits_total');
      for (let i = 0; i < 12; i++) assertStatus(await api('GET', `/api/communities/${c.id}/posts`, U.owner), 200);
      let h1 = h0;
      await until(async () => { h1 = sum((await get('/metrics/community')).text, 'feed_cache_hits_total'); return h1 >= h0 + 6; }, { timeoutMs: 3000 });
      assert.ok(h1 >= h0 + 6, `${visibility}: hits ${h0} -> ${h1} after 12 identical feed requests`);
    }
  });
});

describe('Redis outage', () => {
  test('Redis stopped: feed, post, community and membership routes answer from PostgreSQL', { skip: LOCAL_ONLY }, async () => {
    const c = await community(U.owner, 'public', [[U.member, 'member']]);
    const p = await mkPost(c, U.member, { title: 'survives', body: 'redis outage' });
    const priv = await community(U.owner, 'private', [[U.member, 'member']]);
    await mkPost(priv, U.member);
    // warm the cache first, so a stale-entry bug would show after the restart
    assertStatus(await api('GET', `/api/communities/${c.id}/posts`, U.member), 200);
    assertStatus(await api('GET', `/api/communities/${priv.id}/posts`, U.member), 200);
    assertError(await api('GET', `/api/communities/${priv.id}/posts`, U.outsider), 404, 'not_found');
    const pid = readPid('run/redis.pid');
    process.kill(pid, 'SIGTERM');
    try {
      assert.ok(await waitGone(pid, 30000), `redis (pid ${pid}) did not stop`);
      for (let i = 0; i < 6; i++) { // every worker of the pool
        const f = await api('GET', `/api/communities/${c.id}/posts`, i % 2 ? null : U.member);
        assertStatus(f, 200, `feed with Redis down (${i}):`);
        assert.equal(f.json.items[0].id, p.id);
        const g = await api('GET', `/api/posts/${p.id}`, i % 2 ? null : U.member);
        assertStatus(g, 200, `post with Redis down (${i}):`);
        assert.equal(g.json.title, 'survives');
        assertStatus(await getC(c.id, U.member), 200, 'community with Redis down:');
        // a private one: its members read it, nobody else (PostgreSQL decides)
        assertStatus(await api('GET', `/api/communities/${priv.id}/posts`, U.member), 200, 'private feed, member, Redis down:');
        assertError(await api('GET', `/api/communities/${priv.id}/posts`, i % 2 ? null : U.outsider), 404, 'not_found');
      }
      // writes too: they commit in PostgreSQL, the mirror catches up with mirror-rebuild
      const np = await api('POST', `/api/communities/${c.id}/posts`, U.member, { body: 'written while redis is down' });
      assertStatus(np, 201, 'post create with Redis down:');
      const f = await api('GET', `/api/communities/${c.id}/posts`, U.member);
      assert.equal(f.json.items[0].id, np.json.id);
      assertStatus(await api('POST', `/api/communities/${c.id}/join`, U.other), 200, 'join with Redis down:');
    } finally {
      await stackUp();
      await appsBack('after the Redis restart');
    }
    // after the restart: no stale page (the post written during the outage is there)
    const f2 = await api('GET', `/api/communities/${c.id}/posts`, U.member);
    assertStatus(f2, 200);
    assert.equal(f2.json.items.length, 2);
    const rb = await run('scripts/mirror-rebuild');
    assert.equal(rb.code, 0, rb.stderr);
    assert.equal(await redisRaw('HGET', `th:members:${c.id}`, String(U.other.id)), 'member');
  });
});
