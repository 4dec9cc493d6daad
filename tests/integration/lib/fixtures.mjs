// What the integration tests build through the REST API: users, communities, random names,
// authenticated requests.
//
// Client addresses. Registrations are rate limited per address (tests/integration/run:
// 3 per 5 s; nginx passes $remote_addr as REMOTE_ADDR), and every address of 127.0.0.0/8 is
// loopback, so each test file registers from its own block 127.<net>.x.y, one fresh address
// a registration: foundation 127.0.0.2, auth 127.1, community 127.3, mqtt 127.6,
// realtime 127.7, bridge 127.8, media 127.9, media_gc 127.10, wsfront 127.18. Every other request comes
// from 127.0.0.1.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { request } from './http.mjs';
import { show, assertStatus } from './assert.mjs';

export const rnd = (n = 5) => crypto.randomBytes(n).toString('hex');
export const uuid = () => crypto.randomUUID();
// a fresh slug or other name: prefix-<10 hex>
export const uniq = (prefix) => `${prefix}-${rnd()}`;
// a fresh username: prefix_<10 hex> (API.md: usernames are [a-z0-9_]{3,32}, no '-')
export const uniqName = (prefix = 'u') => `${prefix}_${rnd()}`;
export const bearer = (t) => ({ authorization: `Bearer ${t}` });

// api(method, path, user|token|null, body?, requestOptions?) -> response
// A string body is sent as is, labelled JSON (tests of malformed JSON send strings).
export function api(method, p, who, body, o = {}) {
  const token = who && typeof who === 'object' ? who.token : who;
  const headers = token ? bearer(token) : {};
  if (typeof body === 'string') headers['content-type'] = 'application/json';
  return request(method, p, { headers, body, ...o });
}

// The fixtures of one test file. net: its address block 127.<net>.x.y (see the head of this
// file). slug / name: how its communities are named (slug <slug>-<hex>, name "<name> <slug>")
// so that a community in a log or a failure says which file made it. general: its
// communities come with .channel, the id of their auto-created #general channel (the
// realtime, MQTT and bridge tests talk in it).
// The whole history of a channel, newest first (pages of 100 through next_cursor), as `who`.
export async function fullHistory(channel, who, maxPages = 100) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < maxPages; page++) {
    const q = `?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const r = await api('GET', `/api/channels/${channel}/messages${q}`, who);
    assert.equal(r.status, 200, `history page ${page}: ${show(r)}`);
    items.push(...r.json.items);
    cursor = r.json.next_cursor;
    if (!cursor) return items;
  }
  assert.fail(`history of channel ${channel} has more than ${maxPages} pages`);
}

export function fixtures({
  net, slug = 'c', name = 'Name', general = false, first = 0,
}) {
  // first: where this file's addresses start in the block, for files that share a net
  let addrN = first;
  function freshAddr() {
    addrN += 1;
    return `127.${net}.${(addrN >> 8) & 255}.${addrN & 255}`;
  }

  // POST /api/auth/register from a fresh address unless o.localAddress says otherwise.
  const registerRaw = (body, o = {}) => request('POST', '/api/auth/register', { body, localAddress: freshAddr(), ...o });

  // A fresh account (201 asserted): {id, username, email, password, ...extra, token, refresh,
  // user, res}; extra: more fields of the registration body (display_name).
  async function newUser(prefix = 'u', extra = {}) {
    const username = uniqName(prefix);
    const body = { email: `${username}@example.test`, username, password: `pw-${username}-S3cret`, ...extra };
    const res = await registerRaw(body);
    assert.equal(res.status, 201, `register ${username}: ${show(res)}`);
    return {
      ...body, id: res.json.user.id, token: res.json.access_token, refresh: res.json.refresh_token, user: res.json.user, res,
    };
  }

  // A community owned by `owner` (201 asserted), then its cast: [user, role] is added by the
  // owner (PUT .../members/:id, 200), a bare user joins by itself (POST .../join, 200: a public
  // community; the membership events are a join's). extra: more fields of the create body.
  // Returns the created community (and .channel, see `general` above).
  async function community(owner, visibility = 'public', cast = [], extra = {}) {
    const s = uniq(slug);
    const res = assertStatus(await api('POST', '/api/communities', owner, { slug: s, name: `${name} ${s}`, visibility, ...extra }), 201, `create ${s}:`);
    const c = res.json;
    for (const m of cast) {
      if (Array.isArray(m)) {
        const [u, role] = m;
        assertStatus(await api('PUT', `/api/communities/${c.id}/members/${u.id}`, owner, { role }), 200, `PUT role ${role}:`);
      } else {
        assertStatus(await api('POST', `/api/communities/${c.id}/join`, m), 200, `join ${m.username}:`);
      }
    }
    if (!general) return c;
    const ch = assertStatus(await api('GET', `/api/communities/${c.id}/channels`, owner), 200, 'channels:');
    const g = ch.json.items.find((x) => x.name === 'general');
    assert.ok(g, `no general channel: ${ch.text}`);
    return { ...c, channel: g.id };
  }

  return { freshAddr, registerRaw, newUser, community };
}
