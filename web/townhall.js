// townhall.js — the Townhall browser client (ES module, no build step).
//
//   import { Townhall } from '/townhall.js';
//   const th = new Townhall();            // same origin: REST under /api/, MQTT at /mqtt
//   await th.login('alice', 'secret-pw');
//   const rt = await th.realtime();       // MQTT over WebSocket (MQTT.js served at /vendor/)
//   rt.on('message', (m) => ...);
//   await rt.joinChannel(channelId);
//   rt.send(channelId, 'hello');
//
// See web/README.md for the whole API.
import mqttModule from '/vendor/mqtt.esm.js';

const mqtt = mqttModule && typeof mqttModule.connect === 'function' ? mqttModule : mqttModule.default;

const REFRESH_MARGIN_MS = 60 * 1000;   // refresh the access token this long before it expires
const RESEND_AFTER_MS = 5000;          // re-publish a chat message without a receipt after this
const TYPING_THROTTLE_MS = 2000;
// MQTT reconnects: jittered exponential backoff, so that the clients of a broker that went
// away do not all come back in the same second. Attempt n waits a random time in
// [base/2, base] with base = min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2^n); the count
// starts again once a connection has stayed up RECONNECT_STABLE_MS.
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 30000;
const RECONNECT_STABLE_MS = 10000;

/** Delay before reconnect attempt `attempt` (0-based), `rand` in [0, 1). */
export function reconnectDelay(attempt, rand = Math.random()) {
  const base = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(attempt, 16));
  return Math.round(base / 2 + rand * (base / 2));
}

/** An error answered by the API: status, code, message, field (if any), retryAfter. */
export class ApiError extends Error {
  constructor(status, error, retryAfter) {
    super((error && error.message) || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = (error && error.code) || 'http_' + status;
    this.field = error && error.field;
    this.retryAfter = retryAfter;
  }
}

/** Tiny event emitter: on(type, fn) returns an unsubscribe function. */
class Emitter {
  constructor() { this._handlers = new Map(); }
  on(type, fn) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }
  off(type, fn) { const s = this._handlers.get(type); if (s) s.delete(fn); }
  once(type, fn) { const off = this.on(type, (...a) => { off(); fn(...a); }); return off; }
  emit(type, ...args) {
    const s = this._handlers.get(type);
    if (!s) return;
    for (const fn of [...s]) {
      try { fn(...args); } catch (e) { console.error(`townhall: ${type} handler failed`, e); }
    }
  }
}

const qs = (params) => {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? '?' + s : '';
};

const randomId = () => (crypto.randomUUID ? crypto.randomUUID() : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join(''));

/**
 * The REST client. Keeps the session (user, tokens) in `storage` (localStorage by default) so a
 * reload stays signed in, and refreshes the access token before it expires.
 * Events: 'session' (session or null), 'signedout'.
 */
export class Townhall extends Emitter {
  constructor({ baseUrl = '', storage = globalThis.localStorage, storageKey = 'townhall.session', mqttUrl } = {}) {
    super();
    this.baseUrl = baseUrl.replace(/\/$/, '');
    this.storage = storage || null;
    this.storageKey = storageKey;
    this.mqttUrl = mqttUrl || defaultMqttUrl(this.baseUrl);
    this.session = null;
    this._refreshing = null;
    this._refreshTimer = null;
    this._rt = null;
    if (this.storage) {
      try {
        const s = JSON.parse(this.storage.getItem(this.storageKey) || 'null');
        if (s && s.access_token && s.refresh_token && s.user) this._setSession(s, false);
      } catch { /* a broken stored session is no session */ }
    }
  }

  /** The signed-in user, or null. */
  get user() { return this.session ? this.session.user : null; }
  get signedIn() { return !!this.session; }

  // ---- session handling ----------------------------------------------------------------

  _setSession(s, store = true) {
    this.session = s;
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    if (s) {
      const delay = Math.max(1000, s.expires_at - Date.now() - REFRESH_MARGIN_MS);
      this._refreshTimer = setTimeout(() => { this.refresh().catch(() => {}); }, Math.min(delay, 2 ** 31 - 1));
    }
    if (store && this.storage) {
      if (s) this.storage.setItem(this.storageKey, JSON.stringify(s));
      else this.storage.removeItem(this.storageKey);
    }
    this.emit('session', s);
  }

  _takeAuth(body) {
    const s = {
      user: body.user,
      access_token: body.access_token,
      refresh_token: body.refresh_token,
      expires_at: Date.now() + (body.expires_in || 900) * 1000,
    };
    this._setSession(s);
    return s.user;
  }

  _signedOut() {
    const had = !!this.session;
    this._setSession(null);
    if (this._rt) { this._rt.close(); this._rt = null; }
    if (had) this.emit('signedout');
  }

  /** A valid access token, refreshed first when it expires within a minute. */
  async accessToken() {
    if (!this.session) throw new ApiError(401, { code: 'unauthorized', message: 'not signed in' });
    if (this.session.expires_at - Date.now() < REFRESH_MARGIN_MS) await this.refresh();
    return this.session.access_token;
  }

  /** Trade the refresh token for new tokens (single flight: concurrent callers share one). */
  refresh() {
    if (this._refreshing) return this._refreshing;
    if (!this.session) return Promise.reject(new ApiError(401, { code: 'unauthorized', message: 'not signed in' }));
    const rt = this.session.refresh_token;
    this._refreshing = (async () => {
      try {
        const body = await this.request('POST', '/api/auth/refresh', { body: { refresh_token: rt }, auth: false });
        return this._takeAuth(body);
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) this._signedOut();
        throw e;
      } finally {
        this._refreshing = null;
      }
    })();
    return this._refreshing;
  }

  /**
   * One API request. opts: body (object → JSON; Blob/ArrayBuffer/File → raw), query, headers,
   * auth (default true: Bearer token, one refresh + retry on 401). Resolves the parsed JSON
   * (null for 204); rejects with ApiError.
   */
  async request(method, path, opts = {}) {
    const { body, query, headers = {}, auth = true, signal } = opts;
    const send = async () => {
      const h = { ...headers };
      let b = body;
      if (b !== undefined && b !== null && !(b instanceof Blob) && !(b instanceof ArrayBuffer) && !ArrayBuffer.isView(b) && !(b instanceof FormData)) {
        b = JSON.stringify(b);
        h['Content-Type'] = 'application/json';
      }
      if (auth && this.session) h.Authorization = 'Bearer ' + (await this.accessToken());
      return fetch(this.baseUrl + path + qs(query), { method, headers: h, body: b, signal });
    };
    let res = await send();
    if (res.status === 401 && auth && this.session && path !== '/api/auth/refresh') {
      try { await this.refresh(); } catch { /* signed out */ }
      if (this.session) res = await send();
    }
    if (res.status === 204) return null;
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = null; }
    if (!res.ok) {
      const ra = res.headers.get('Retry-After');
      throw new ApiError(res.status, json && json.error, ra ? Number(ra) : undefined);
    }
    return json;
  }

  // ---- auth ----------------------------------------------------------------------------

  /** Create an account and sign in. Resolves the user. */
  async register({ email, username, password, display_name }) {
    const body = await this.request('POST', '/api/auth/register', { body: { email, username, password, display_name }, auth: false });
    return this._takeAuth(body);
  }

  /** Sign in with email or username (and the one-time or a recovery code when the account
   * has TOTP on: without it the server answers 401 `totp_required`). Resolves the user. */
  async login(login, password, totp) {
    const body = await this.request('POST', '/api/auth/login', { body: { login, password, totp: totp || undefined }, auth: false });
    return this._takeAuth(body);
  }

  // ---- account lifecycle (API.md v1.1 "Account lifecycle") --------------------------------

  /** Mail a reset link to the address (204 whether or not an account has it). */
  forgotPassword(email) { return this.request('POST', '/api/auth/password/forgot', { body: { email }, auth: false }); }
  /** A new password with the token of the reset link; every session of the account ends. */
  resetPassword(token, password) { return this.request('POST', '/api/auth/password/reset', { body: { token, password }, auth: false }); }
  /** Confirm the address with the token of the verification link. Resolves the user. */
  async verifyEmail(token) { return (await this.request('POST', '/api/auth/verify-email', { body: { token }, auth: false })).user; }
  /** Mail the verification link again (429 after 3 an hour). */
  requestVerifyEmail() { return this.request('POST', '/api/auth/verify-email/request'); }
  /** Change the password; every other session ends. */
  changePassword(currentPassword, newPassword) {
    return this.request('POST', '/api/auth/password', { body: { current_password: currentPassword, new_password: newPassword } });
  }
  /** The account's sessions: {items: [{id, created_at, last_used_at, user_agent, ip, current}]}. */
  sessions(params) { return this.request('GET', '/api/auth/sessions', { query: params }); }
  revokeSession(id) { return this.request('DELETE', `/api/auth/sessions/${encodeURIComponent(id)}`); }
  /** TOTP: setup → {secret, otpauth_url}; enable(code) → {recovery_codes}; disable(password, code). */
  totpSetup() { return this.request('POST', '/api/auth/totp/setup'); }
  totpEnable(code) { return this.request('POST', '/api/auth/totp/enable', { body: { code } }); }
  totpDisable(password, code) { return this.request('POST', '/api/auth/totp/disable', { body: { password, code } }); }

  // ---- sign in with an OpenID Connect provider -------------------------------------------

  /** The configured providers: [{name, label}] (empty when none). */
  async oidcProviders() {
    return (await this.request('GET', '/api/auth/oidc/providers', { auth: false })).items;
  }

  /** Where to send the browser to sign in with `provider`; it comes back to redirectUri
   * (one of the provider's configured redirect URIs) with ?code=&state=. */
  oidcStartUrl(provider, redirectUri) {
    return `${this.baseUrl}/api/auth/oidc/${encodeURIComponent(provider)}/start${qs({ redirect_uri: redirectUri })}`;
  }

  /** Finish the sign-in with the code and state the provider sent back (or, after a 401
   * totp_required, the state and the one-time code). Resolves the user. */
  async oidcCallback(provider, { code, state, totp }) {
    const body = await this.request('GET', `/api/auth/oidc/${encodeURIComponent(provider)}/callback`, {
      query: { code, state, totp }, auth: false,
    });
    return this._takeAuth(body);
  }

  /** Revoke the session and forget it locally (also closes the realtime connection). */
  async logout() {
    if (!this.session) return;
    try {
      await this.request('POST', '/api/auth/logout', { body: { refresh_token: this.session.refresh_token } });
    } finally {
      this._signedOut();
    }
  }

  /** The signed-in user with email. */
  async me() {
    const { user } = await this.request('GET', '/api/auth/me');
    if (this.session) this._setSession({ ...this.session, user: { ...this.session.user, ...user } });
    return user;
  }

  // ---- communities & members -----------------------------------------------------------

  listCommunities(params) { return this.request('GET', '/api/communities', { query: params }); }
  getCommunity(id) { return this.request('GET', `/api/communities/${id}`); }
  createCommunity({ slug, name, description, visibility = 'public' }) {
    return this.request('POST', '/api/communities', { body: { slug, name, description, visibility } });
  }
  updateCommunity(id, fields) { return this.request('PATCH', `/api/communities/${id}`, { body: fields }); }
  deleteCommunity(id) { return this.request('DELETE', `/api/communities/${id}`); }
  joinCommunity(id) { return this.request('POST', `/api/communities/${id}/join`); }
  leaveCommunity(id) { return this.request('POST', `/api/communities/${id}/leave`); }
  listMembers(id, params) { return this.request('GET', `/api/communities/${id}/members`, { query: params }); }
  setMemberRole(id, userId, role) { return this.request('PUT', `/api/communities/${id}/members/${userId}`, { body: { role } }); }
  removeMember(id, userId) { return this.request('DELETE', `/api/communities/${id}/members/${userId}`); }
  ban(id, userId, reason) { return this.request('POST', `/api/communities/${id}/bans`, { body: { user_id: userId, reason } }); }
  unban(id, userId) { return this.request('DELETE', `/api/communities/${id}/bans/${userId}`); }
  listBans(id, params) { return this.request('GET', `/api/communities/${id}/bans`, { query: params }); }

  // ---- posts, comments, reactions, search ----------------------------------------------

  listPosts(communityId, params) { return this.request('GET', `/api/communities/${communityId}/posts`, { query: params }); }
  createPost(communityId, { title, body, media_ids }) {
    return this.request('POST', `/api/communities/${communityId}/posts`, { body: { title, body, media_ids } });
  }
  getPost(id) { return this.request('GET', `/api/posts/${id}`); }
  updatePost(id, fields) { return this.request('PATCH', `/api/posts/${id}`, { body: fields }); }
  deletePost(id) { return this.request('DELETE', `/api/posts/${id}`); }
  listComments(postId, params) { return this.request('GET', `/api/posts/${postId}/comments`, { query: params }); }
  createComment(postId, { body, parent_id }) { return this.request('POST', `/api/posts/${postId}/comments`, { body: { body, parent_id } }); }
  deleteComment(id) { return this.request('DELETE', `/api/comments/${id}`); }
  react(postId, emoji) { return this.request('PUT', `/api/posts/${postId}/reactions/${encodeURIComponent(emoji)}`); }
  unreact(postId, emoji) { return this.request('DELETE', `/api/posts/${postId}/reactions/${encodeURIComponent(emoji)}`); }
  search(communityId, q, params) { return this.request('GET', `/api/communities/${communityId}/search`, { query: { ...params, q } }); }

  // ---- media ---------------------------------------------------------------------------

  /** Upload a File/Blob as the raw body. communityId: null for profile media. Resolves the media. */
  uploadMedia(file, { communityId, filename } = {}) {
    return this.request('POST', '/api/media', {
      body: file,
      query: { community_id: communityId, filename: filename || file.name },
      headers: { 'Content-Type': file.type || 'application/octet-stream' },
    });
  }
  getMedia(id) { return this.request('GET', `/api/media/${id}`); }
  deleteMedia(id) { return this.request('DELETE', `/api/media/${id}`); }

  // ---- channels & messages -------------------------------------------------------------

  listChannels(communityId, params) { return this.request('GET', `/api/communities/${communityId}/channels`, { query: params }); }
  createChannel(communityId, { name, topic }) { return this.request('POST', `/api/communities/${communityId}/channels`, { body: { name, topic } }); }
  /** History: newest first, page back with params.cursor; or with params.after = message id, oldest first. */
  listMessages(channelId, params) { return this.request('GET', `/api/channels/${channelId}/messages`, { query: params }); }
  /** Post over REST (idempotent on id); subscribers get it over MQTT like a published one. */
  postMessage(channelId, { id = randomId(), body, reply_to }) { return this.request('POST', `/api/channels/${channelId}/messages`, { body: { id, body, reply_to } }); }
  getMessage(id) { return this.request('GET', `/api/messages/${id}`); }
  editMessage(id, body) { return this.request('PATCH', `/api/messages/${id}`, { body: { body } }); }
  deleteMessage(id) { return this.request('DELETE', `/api/messages/${id}`); }

  // ---- DMs, blocks, read markers ---------------------------------------------------------

  /** Open a DM with 1–9 others (user ids); a 1:1 that exists comes back as is (200). */
  openDm(userIds) { return this.request('POST', '/api/dms', { body: { user_ids: userIds } }); }
  /** The caller's DMs, latest activity first, each with last_message and unread. */
  dms(params) { return this.request('GET', '/api/dms', { query: params }); }
  leaveDm(id) { return this.request('POST', `/api/dms/${id}/leave`); }
  block(userId) { return this.request('PUT', `/api/users/${userId}/block`); }
  unblock(userId) { return this.request('DELETE', `/api/users/${userId}/block`); }
  blocks(params) { return this.request('GET', '/api/users/me/blocks', { query: params }); }
  /** Move the read marker of a channel to seq (forward only); resolves {channel_id, read_seq, unread, mentions}.
   *  Every device hears the move as an inbox event {type: 'unread', ...}. */
  markRead(channelId, seq) { return this.request('PUT', `/api/channels/${channelId}/read`, { body: { seq } }); }
  /** {channels: [{channel_id, community_id, last_seq, read_seq, unread, mentions}], notifications, truncated} */
  unread() { return this.request('GET', '/api/me/unread'); }

  // ---- notifications, history, message search -------------------------------------------

  /** The caller's notifications, newest first ({unread: true} for unread only; {after: id}
   *  for those created after it, oldest first: the gap fill after a reconnect). */
  notifications(params) { return this.request('GET', '/api/notifications', { query: params }); }
  /** Mark read: an array of ids, or 'all'. Other devices hear {type: 'notifications_read'}. */
  readNotifications(ids) {
    return this.request('POST', '/api/notifications/read', { body: ids === 'all' ? { all: true } : { ids } });
  }
  /** 'all' | 'mentions' | 'none': how much the caller hears from a community. */
  setNotifyLevel(communityId, level) { return this.request('PUT', `/api/communities/${communityId}/notify`, { body: { level } }); }
  /** Earlier versions of an edited post or message (its author, or moderators). */
  postHistory(id, params) { return this.request('GET', `/api/posts/${id}/history`, { query: params }); }
  messageHistory(id, params) { return this.request('GET', `/api/messages/${id}/history`, { query: params }); }
  /** Messages the caller may read, ranked: scope {channel_id} or {community_id}. */
  searchMessages(q, scope, params) { return this.request('GET', '/api/messages/search', { query: { ...params, ...scope, q } }); }

  // ---- Web Push ------------------------------------------------------------------------

  /** {public_key}: the VAPID key (base64url), the applicationServerKey of PushManager.subscribe(). */
  pushKey() { return this.request('GET', '/api/push/vapid', { auth: false }); }
  /** Register a PushSubscription (or its toJSON(): {endpoint, keys: {p256dh, auth}}) for the
   *  signed-in user; resolves {endpoint}. Pushes come only while the user has no live connection. */
  subscribePush(subscription) {
    const s = typeof subscription.toJSON === 'function' ? subscription.toJSON() : subscription;
    return this.request('PUT', '/api/push/subscriptions', { body: { endpoint: s.endpoint, keys: { p256dh: s.keys.p256dh, auth: s.keys.auth } } });
  }
  /** Unregister a PushSubscription or an endpoint URL. */
  unsubscribePush(subscription) {
    const endpoint = typeof subscription === 'string' ? subscription : subscription.endpoint;
    return this.request('DELETE', '/api/push/subscriptions', { body: { endpoint } });
  }

  // ---- calls & TURN --------------------------------------------------------------------

  /** Start the channel's call, or join its ongoing one. */
  createCall(channelId) { return this.request('POST', '/api/calls', { body: { channel_id: channelId } }); }
  getCall(id) { return this.request('GET', `/api/calls/${id}`); }
  joinCallRest(id) { return this.request('POST', `/api/calls/${id}/join`); }
  leaveCallRest(id) { return this.request('POST', `/api/calls/${id}/leave`); }
  /** { ice_servers: [{urls, username, credential}], ttl } */
  turn() { return this.request('GET', '/api/turn'); }

  // ---- real time -----------------------------------------------------------------------

  /** The (shared) realtime connection; connects on first use. */
  async realtime() {
    if (!this.session) throw new ApiError(401, { code: 'unauthorized', message: 'not signed in' });
    if (!this._rt) this._rt = new Realtime(this);
    await this._rt.connect();
    return this._rt;
  }

  /**
   * A 1:1 (or small mesh) WebRTC call over the signal topics.
   * startCall(channelId, opts): POST /api/calls; joinCall(callId, opts): POST /api/calls/:id/join.
   * opts: { localStream, media: {audio, video}, iceTransportPolicy: 'all'|'relay' }.
   */
  async startCall(channelId, opts = {}) {
    const rt = await this.realtime();
    const call = new Call(this, rt, opts);
    await call._begin(() => this.createCall(channelId));
    return call;
  }
  async joinCall(callId, opts = {}) {
    const rt = await this.realtime();
    const call = new Call(this, rt, opts);
    await call._begin(() => this.joinCallRest(callId));
    return call;
  }
}

function defaultMqttUrl(baseUrl) {
  const u = new URL(baseUrl || globalThis.location.origin, globalThis.location && globalThis.location.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.pathname = '/mqtt';
  u.search = '';
  return u.toString();
}

/**
 * The MQTT connection. Events:
 *   'status'   ('connecting'|'online'|'offline')
 *   'message'  {channel_id, sender_id, id, body, reply_to, seq?, created_at?, sender?, source: 'live'|'history'|'self'}
 *   'stored'   {id, channel_id}  — a receipt named one of our messages
 *   'renamed'  {old_id, id, channel_id} — another message holds the id one of ours was sent
 *              under (a refused notice, docs/events.md): it is being sent again as `id`
 *   'failed'   {id, channel_id, reason} — the server could not store one of our messages
 *              (a refused notice with reason `store_failed`, docs/events.md): it is dropped,
 *              not sent again
 *   'typing'   {channel_id, user_id}
 *   'presence' {community_id, user_id, status, at} — status 'online'|'offline', or 'gone'
 *              (at null) when the user's status was cleared: their membership ended
 *   'event'    community event object (post_created, member_joined, message_deleted, …)
 *   'inbox'    inbox object (call_invite, unread, dm_created, dm_left, …; receipts come as 'stored')
 *   'signal'   {call_id, from, data}
 */
export class Realtime extends Emitter {
  constructor(th) {
    super();
    this.th = th;
    this.userId = th.user.id;
    this.client = null;
    this.connected = false;
    this._connecting = null;
    this._channels = new Map();     // channel_id -> { lastId, seen: Set }
    this._communities = new Set();  // community ids with events + presence subscribed
    this._signalCalls = new Set();
    this._topics = new Map();       // topic -> qos: (re)subscribed on every CONNACK
    this._typingSent = new Map();
    this._attempt = 0;              // reconnect attempts since the last stable connection
    this._stableTimer = null;
    this._pendingKey = `townhall.pending.${this.userId}`;
    this.pending = new Map();       // id -> { channel_id, payload, sentAt }
    this._loadPending();
    this._offSession = th.on('session', (s) => {
      if (this.client && s) this.client.options.password = s.access_token;
    });
    this._resendTimer = setInterval(() => this._resendDue(), 1000);
  }

  _loadPending() {
    try {
      const arr = JSON.parse(this.th.storage?.getItem(this._pendingKey) || '[]');
      for (const p of arr) this.pending.set(p.payload.id, { ...p, sentAt: 0 });
    } catch { /* ignore */ }
  }
  _savePending() {
    try {
      this.th.storage?.setItem(this._pendingKey, JSON.stringify([...this.pending.values()].map(({ channel_id, payload }) => ({ channel_id, payload }))));
    } catch { /* ignore */ }
  }

  /** Connect (resolves once the first CONNACK arrived); later drops reconnect by themselves. */
  connect() {
    if (this.connected) return Promise.resolve();
    if (this._connecting) return this._connecting;
    this._connecting = (async () => {
      const token = await this.th.accessToken();
      if (!this.client) {
        this.emit('status', 'connecting');
        this.client = mqtt.connect(this.th.mqttUrl, {
          clientId: `u${this.userId}-web-${randomId().slice(0, 8)}`,
          username: `u${this.userId}`,
          password: token,
          protocolVersion: 5,
          clean: true,
          keepalive: 30,
          reconnectPeriod: reconnectDelay(0),
          connectTimeout: 10000,
          resubscribe: false,
        });
        this._wire();
      }
      await new Promise((resolve, reject) => {
        if (this.connected) return resolve();
        const t = setTimeout(() => { offC(); reject(new Error('MQTT connect timeout')); }, 15000);
        const offC = this.on('status', (s) => { if (s === 'online') { clearTimeout(t); offC(); resolve(); } });
      });
    })().finally(() => { this._connecting = null; });
    return this._connecting;
  }

  _wire() {
    const c = this.client;
    c.on('connect', () => {
      if (c !== this.client) return;
      this.connected = true;
      // a connection that stays up this long resets the backoff
      clearTimeout(this._stableTimer);
      this._stableTimer = setTimeout(() => { this._attempt = 0; }, RECONNECT_STABLE_MS);
      this.emit('status', 'online');
      // inbox first: receipts must not be missed; then everything we had
      this._topics.set(`user/${this.userId}/inbox`, 1);
      for (const [topic, qos] of this._topics) c.subscribe(topic, { qos });
      this._afterReconnect();
    });
    // before MQTT.js's own 'close' listener arms the reconnect timer with reconnectPeriod
    c.prependListener('close', () => {
      if (c !== this.client) return;
      clearTimeout(this._stableTimer);
      c.options.reconnectPeriod = reconnectDelay(this._attempt++);
    });
    c.on('close', () => {
      if (c !== this.client) return;
      if (this.connected) { this.connected = false; this.emit('status', 'offline'); }
      // the broker closes us when the token expires: make sure the next CONNECT has a fresh one
      const s = this.th.session;
      if (s && s.expires_at - Date.now() < REFRESH_MARGIN_MS) this.th.refresh().catch(() => {});
    });
    c.on('reconnect', () => {
      if (c !== this.client) return;
      this.emit('status', 'connecting');
      if (this.th.session) c.options.password = this.th.session.access_token;
    });
    c.on('error', (err) => {
      if (c !== this.client) return;
      // refused (bad/expired token): refresh; MQTT.js keeps reconnecting with options.password
      const code = err && (err.code ?? err.reasonCode);
      if ([4, 5, 134, 135].includes(code)) this.th.refresh().catch(() => {});
    });
    c.on('message', (topic, buf) => { if (c === this.client) this._onMessage(topic, buf); });
  }

  async _afterReconnect() {
    // everything without a receipt goes out again (same id), then fill gaps from history
    for (const p of this.pending.values()) this._publishChat(p);
    for (const chId of this._channels.keys()) this.fillGap(chId).catch((e) => console.warn('townhall: gap fill failed', e));
  }

  _onMessage(topic, buf) {
    const parts = topic.split('/');
    if (parts[0] === 'presence' && buf.length === 0) {
      // the user's status there was cleared: their membership ended (left, removed, banned,
      // account erased, community deleted): drop them rather than show a stale status
      this.emit('presence', { community_id: Number(parts[1]), user_id: Number(parts[2]), status: 'gone', at: null });
      return;
    }
    let data;
    try { data = JSON.parse(new TextDecoder().decode(buf)); } catch { return; }
    switch (parts[0]) {
      case 'chat': {
        const channel_id = Number(parts[1]);
        this._deliver({ channel_id, sender_id: Number(parts[2]), id: data.id, body: data.body, reply_to: data.reply_to ?? null, source: 'live' });
        break;
      }
      case 'typing':
        if (Number(parts[2]) !== this.userId) this.emit('typing', { channel_id: Number(parts[1]), user_id: Number(parts[2]) });
        break;
      case 'presence':
        this.emit('presence', { community_id: Number(parts[1]), user_id: Number(parts[2]), status: data.status, at: data.at });
        break;
      case 'events':
        this.emit('event', data);
        break;
      case 'user':
        if (data.type === 'stored' && Array.isArray(data.ids)) {
          for (const id of data.ids) {
            const p = this.pending.get(id);
            if (p) {
              this.pending.delete(id);
              const ch = this._channels.get(p.channel_id);
              if (ch) ch.lastId = id;
              this.emit('stored', { id, channel_id: p.channel_id });
            }
          }
          this._savePending();
        } else if (data.type === 'refused' && Array.isArray(data.ids)) {
          // id_taken: the id is another message's (the first sender and channel that stored
          // it own it): keep the text, send it again under a new id. Any other reason
          // (store_failed: the server could not store this message and set it aside) would
          // fail again under any id: drop it and tell the app, never re-send it.
          const rename = (data.reason ?? 'id_taken') === 'id_taken';
          for (const id of data.ids) {
            const p = this.pending.get(id);
            if (!p) continue;
            this.pending.delete(id);
            if (!rename) {
              this.emit('failed', { id, channel_id: p.channel_id, reason: String(data.reason) });
              continue;
            }
            const q = { channel_id: p.channel_id, payload: { ...p.payload, id: randomId() }, sentAt: 0 };
            this.pending.set(q.payload.id, q);
            this._channels.get(q.channel_id)?.seen.add(q.payload.id);
            this.emit('renamed', { old_id: id, id: q.payload.id, channel_id: q.channel_id });
            this._publishChat(q);
          }
          this._savePending();
        } else {
          this.emit('inbox', data);
        }
        break;
      case 'signal':
        this.emit('signal', { call_id: Number(parts[1]), from: Number(parts[3]), data });
        break;
      default:
    }
  }

  _deliver(m) {
    const ch = this._channels.get(m.channel_id);
    if (ch) {
      if (ch.seen.has(m.id)) return;
      ch.seen.add(m.id);
      if (m.source !== 'self') ch.lastId = m.id;
    }
    this.emit('message', m);
  }

  /**
   * Drop the connection and open a new one (same subscriptions). The broker publishes a
   * user's presence for the communities they belong to when their connection opens, so call
   * this after joining a community to appear online there.
   */
  async reconnect() {
    if (!this.client) return this.connect();
    const old = this.client;
    this.client = null;
    this.connected = false;
    await new Promise((r) => old.end(false, {}, () => r()));
    this.emit('status', 'offline');
    return this.connect();
  }

  _sub(topic, qos = 1) {
    this._topics.set(topic, qos);
    return new Promise((resolve, reject) => {
      if (!this.client || !this.connected) return resolve();   // subscribed on (re)connect
      this.client.subscribe(topic, { qos }, (err, granted) => {
        if (err) return reject(err);
        const g = granted && granted[0];
        if (g && g.qos >= 128) return reject(new Error(`subscription refused: ${topic} (${g.qos})`));
        resolve();
      });
    });
  }

  /**
   * Subscribe to a channel's chat and typing, load its latest history (emitted as 'message'
   * with source 'history', oldest first) and resolve that page ({items, next_cursor}).
   */
  async joinChannel(channelId, { limit = 50 } = {}) {
    await this.connect();
    if (!this._channels.has(channelId)) this._channels.set(channelId, { lastId: null, seen: new Set() });
    await this._sub(`chat/${channelId}/+`);
    await this._sub(`typing/${channelId}/+`, 0);
    const page = await this.th.listMessages(channelId, { limit });
    for (const m of [...page.items].reverse()) this._deliverStored(m);
    return page;
  }

  leaveChannel(channelId) {
    this._channels.delete(channelId);
    this._topics.delete(`chat/${channelId}/+`);
    this._topics.delete(`typing/${channelId}/+`);
    if (this.client) this.client.unsubscribe([`chat/${channelId}/+`, `typing/${channelId}/+`]);
  }

  _deliverStored(m) {
    this._deliver({
      channel_id: m.channel_id, sender_id: m.sender ? m.sender.id : m.sender_id, sender: m.sender,
      id: m.id, body: m.body, reply_to: m.reply_to, seq: m.seq, created_at: m.created_at,
      deleted_at: m.deleted_at, source: 'history',
    });
    const ch = this._channels.get(m.channel_id);
    if (ch) ch.lastId = m.id;
  }

  /** Fetch what was stored after the last message seen (?after=), or the latest page. */
  async fillGap(channelId) {
    const ch = this._channels.get(channelId);
    if (!ch) return;
    if (ch.lastId) {
      let cursor;
      try {
        do {
          const page = await this.th.listMessages(channelId, { after: ch.lastId, limit: 100, cursor });
          for (const m of page.items) this._deliverStored(m);
          cursor = page.next_cursor;
        } while (cursor);
        return;
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 404)) throw e;
        // that message is not stored yet: fall back to the latest page
      }
    }
    const page = await this.th.listMessages(channelId, { limit: 100 });
    for (const m of [...page.items].reverse()) this._deliverStored(m);
  }

  /** Community events and presence of its members (presence needs membership). */
  async watchCommunity(communityId, { presence = true } = {}) {
    await this.connect();
    this._communities.add(communityId);
    await this._sub(`events/community/${communityId}`);
    if (presence) await this._sub(`presence/${communityId}/+`);
  }
  unwatchCommunity(communityId) {
    this._communities.delete(communityId);
    this._topics.delete(`events/community/${communityId}`);
    this._topics.delete(`presence/${communityId}/+`);
    if (this.client) this.client.unsubscribe([`events/community/${communityId}`, `presence/${communityId}/+`]);
  }

  /**
   * Publish a chat message with a client-chosen UUID. It stays in `pending` (and in storage)
   * until a receipt names it; it is re-sent after a reconnect and every 5 s without one.
   * Emits 'message' with source 'self' at once. Returns the id.
   */
  send(channelId, body, { reply_to } = {}) {
    const payload = { id: randomId(), body };
    if (reply_to) payload.reply_to = reply_to;
    const p = { channel_id: channelId, payload, sentAt: 0 };
    this.pending.set(payload.id, p);
    this._savePending();
    this._deliver({ channel_id: channelId, sender_id: this.userId, id: payload.id, body, reply_to: reply_to || null, source: 'self' });
    this._publishChat(p);
    return payload.id;
  }

  _publishChat(p) {
    p.sentAt = Date.now();
    if (!this.client || !this.connected) return;
    this.client.publish(`chat/${p.channel_id}/${this.userId}`, JSON.stringify(p.payload), { qos: 1 });
  }

  _resendDue() {
    if (!this.connected) return;
    const now = Date.now();
    for (const p of this.pending.values()) if (now - p.sentAt >= RESEND_AFTER_MS) this._publishChat(p);
  }

  /** Tell the channel we are typing (throttled to one publish per 2 s). */
  typing(channelId) {
    if (!this.connected) return;
    const last = this._typingSent.get(channelId) || 0;
    if (Date.now() - last < TYPING_THROTTLE_MS) return;
    this._typingSent.set(channelId, Date.now());
    this.client.publish(`typing/${channelId}/${this.userId}`, '{}', { qos: 0 });
  }

  async subscribeSignals(callId) {
    this._signalCalls.add(callId);
    await this._sub(`signal/${callId}/${this.userId}/+`);
  }
  unsubscribeSignals(callId) {
    this._signalCalls.delete(callId);
    this._topics.delete(`signal/${callId}/${this.userId}/+`);
    if (this.client) this.client.unsubscribe(`signal/${callId}/${this.userId}/+`);
  }
  signal(callId, to, data) {
    if (!this.client) return;
    this.client.publish(`signal/${callId}/${to}/${this.userId}`, JSON.stringify(data), { qos: 1 });
  }

  /** Close the connection for good (logout). */
  close() {
    clearInterval(this._resendTimer);
    clearTimeout(this._stableTimer);
    this._offSession();
    if (this.client) this.client.end(true);
    this.client = null;
    this.connected = false;
  }
}

/**
 * A WebRTC call. The participant who arrives later sends the offer to each one already in the
 * call; offers, answers and ICE candidates travel over signal/<call>/<to>/<from>.
 * Events: 'localstream' (MediaStream), 'remotestream' ({user_id, stream}),
 *         'state' ({user_id, state}: RTCPeerConnection.connectionState), 'ended'.
 */
export class Call extends Emitter {
  constructor(th, rt, opts) {
    super();
    this.th = th;
    this.rt = rt;
    this.opts = opts;
    this.id = null;
    this.info = null;
    this.peers = new Map();   // user_id -> { pc, queue: [], remoteSet }
    this.localStream = opts.localStream || null;
    this.iceServers = null;
    this._offs = [];
  }

  async _begin(rest) {
    if (!this.localStream) {
      this.localStream = await navigator.mediaDevices.getUserMedia(this.opts.media || { audio: true, video: true });
    }
    this.emit('localstream', this.localStream);
    const call = await rest();
    this.info = call;
    this.id = call.id;
    this.iceServers = call.ice_servers && call.ice_servers.length ? call.ice_servers : null;
    if (!this.iceServers) {
      try { this.iceServers = (await this.th.turn()).ice_servers; } catch { this.iceServers = []; }
    }
    this._offs.push(this.rt.on('signal', (s) => { if (s.call_id === this.id) this._onSignal(s.from, s.data); }));
    this._offs.push(this.rt.on('status', (st) => { if (st === 'online' && this.id) this.rt.subscribeSignals(this.id).catch(() => {}); }));
    await this.rt.subscribeSignals(this.id);
    // latecomer: offer to everyone already in the call
    for (const p of call.participants || []) {
      const uid = typeof p === 'object' ? (p.user_id ?? p.id ?? (p.user && p.user.id)) : p;
      if (uid && Number(uid) !== this.rt.userId) await this._offer(Number(uid));
    }
  }

  _peer(uid) {
    let peer = this.peers.get(uid);
    if (peer) return peer;
    const pc = new RTCPeerConnection({ iceServers: this.iceServers || [], iceTransportPolicy: this.opts.iceTransportPolicy || 'all' });
    peer = { pc, queue: [], remoteSet: false };
    this.peers.set(uid, peer);
    for (const t of this.localStream.getTracks()) pc.addTrack(t, this.localStream);
    pc.onicecandidate = (e) => { if (e.candidate) this.rt.signal(this.id, uid, { type: 'candidate', candidate: e.candidate.toJSON() }); };
    pc.ontrack = (e) => this.emit('remotestream', { user_id: uid, stream: e.streams[0] || new MediaStream([e.track]) });
    pc.onconnectionstatechange = () => this.emit('state', { user_id: uid, state: pc.connectionState });
    return peer;
  }

  async _offer(uid) {
    const { pc } = this._peer(uid);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.rt.signal(this.id, uid, { type: 'offer', sdp: pc.localDescription.sdp });
  }

  async _onSignal(from, data) {
    try {
      if (data.type === 'bye') { this._closePeer(from); return; }
      const peer = this._peer(from);
      const { pc } = peer;
      if (data.type === 'offer') {
        await pc.setRemoteDescription({ type: 'offer', sdp: data.sdp });
        peer.remoteSet = true;
        await this._flush(peer);
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        this.rt.signal(this.id, from, { type: 'answer', sdp: pc.localDescription.sdp });
      } else if (data.type === 'answer') {
        await pc.setRemoteDescription({ type: 'answer', sdp: data.sdp });
        peer.remoteSet = true;
        await this._flush(peer);
      } else if (data.type === 'candidate' && data.candidate) {
        if (peer.remoteSet) await pc.addIceCandidate(data.candidate);
        else peer.queue.push(data.candidate);
      }
    } catch (e) {
      console.warn('townhall: signal handling failed', e);
    }
  }

  async _flush(peer) {
    const q = peer.queue.splice(0);
    for (const c of q) { try { await peer.pc.addIceCandidate(c); } catch (e) { console.warn('townhall: bad candidate', e); } }
  }

  _closePeer(uid) {
    const peer = this.peers.get(uid);
    if (!peer) return;
    peer.pc.close();
    this.peers.delete(uid);
    this.emit('state', { user_id: uid, state: 'closed' });
  }

  /** The type of the local candidate of the selected pair ('host'|'srflx'|'relay'), per peer. */
  async candidateTypes() {
    const out = {};
    for (const [uid, { pc }] of this.peers) {
      const stats = await pc.getStats();
      let pair = null;
      stats.forEach((r) => {
        if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
      });
      if (!pair) stats.forEach((r) => { if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r; });
      const local = pair && stats.get(pair.localCandidateId);
      out[uid] = local ? local.candidateType : null;
    }
    return out;
  }

  /** Hang up: say bye, close the peer connections, stop the camera, leave over REST. */
  async hangup() {
    for (const uid of this.peers.keys()) this.rt.signal(this.id, uid, { type: 'bye' });
    for (const uid of [...this.peers.keys()]) this._closePeer(uid);
    for (const off of this._offs) off();
    this._offs = [];
    if (this.id) this.rt.unsubscribeSignals(this.id);
    if (this.localStream && !this.opts.localStream) for (const t of this.localStream.getTracks()) t.stop();
    try { if (this.id) await this.th.leaveCallRest(this.id); } finally { this.emit('ended'); }
  }
}

export default Townhall;
