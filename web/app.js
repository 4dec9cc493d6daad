// The Townhall demo app: plain DOM code on top of townhall.js.
import { Townhall, ApiError } from '/townhall.js';

const th = new Townhall();
const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
};
const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : '');
const REACTIONS = ['👍', '❤️', '🎉', '😂'];

const state = {
  rt: null,
  communities: [],
  community: null,          // the selected community
  channels: [],
  channelId: null,
  view: 'feed',
  members: new Map(),       // user_id -> user
  presence: new Map(),      // `${cid}/${uid}` -> status
  users: new Map(),         // user_id -> user (names for chat)
  openComments: new Set(),  // post ids with comments shown
  call: null,
  invite: null,
  typingTimers: new Map(),
  dms: [],                  // the caller's DMs (GET /api/dms)
  dm: null,                 // the open DM, when the content shows one
  unread: new Map(),        // channel_id -> {unread, mentions}
  notifCount: 0,
  notifs: [],               // the notifications shown in the bell's panel
};

// Text with every @username marked (the caller's own name also with class "me").
const MENTION = /(^|[^A-Za-z0-9_])@([A-Za-z0-9_]{3,32})(?![A-Za-z0-9_])/g;
function richText(text) {
  const frag = document.createDocumentFragment();
  let at = 0;
  for (const m of text.matchAll(MENTION)) {
    const start = m.index + m[1].length;
    frag.append(text.slice(at, start));
    const me = th.user && m[2].toLowerCase() === th.user.username;
    frag.append(el('mark', { class: me ? 'mention me' : 'mention' }, '@' + m[2]));
    at = start + 1 + m[2].length;
  }
  frag.append(text.slice(at));
  return frag;
}

function toast(text) {
  const t = $('#toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}

function errText(e) {
  if (e instanceof ApiError) return e.field ? `${e.message} (${e.field})` : e.message;
  return e && e.message ? e.message : String(e);
}

// ---- auth ----------------------------------------------------------------------------

function showAuth() {
  $('#auth-view').hidden = false;
  $('#app-view').hidden = true;
  $('#session').hidden = true;
  $('#verify-banner').hidden = true;
  $('#security-panel').hidden = true;
  oidcButtons();
}

// One screen of the auth card: 'signin', 'signup', 'forgot' or 'reset'; note: a line for
// the user (not an error).
const AUTH_FORMS = { signin: '#signin-form', signup: '#signup-form', forgot: '#forgot-form', reset: '#reset-form' };
function authScreen(name, note = '') {
  for (const [k, sel] of Object.entries(AUTH_FORMS)) $(sel).hidden = k !== name;
  for (const t of document.querySelectorAll('.auth-card .tab')) t.classList.toggle('active', t.dataset.tab === name);
  $('#oidc-totp-form').hidden = true;
  $('#auth-error').textContent = '';
  $('#auth-note').textContent = note;
}

for (const tab of document.querySelectorAll('.auth-card .tab')) {
  tab.addEventListener('click', () => authScreen(tab.dataset.tab));
}

// Sign in: an account with TOTP on answers 401 totp_required; the code field then shows
// and the same form is sent again with it.
$('#signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  const f = new FormData(form);
  const codeBox = $('#signin-totp');
  try {
    await th.login(f.get('login'), f.get('password'), codeBox.hidden ? undefined : f.get('totp'));
    codeBox.hidden = true;
    form.elements.totp.required = false;
    form.elements.totp.value = '';
    await start();
  } catch (e) {
    if (e instanceof ApiError && e.code === 'totp_required' && codeBox.hidden) {
      codeBox.hidden = false;
      form.elements.totp.required = true;
      form.elements.totp.focus();
      $('#auth-error').textContent = '';
      $('#auth-note').textContent = 'Enter the code from your authenticator app.';
      return;
    }
    $('#auth-error').textContent = errText(e);
  }
});

$('#signup-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try {
    await th.register({
      email: f.get('email'), username: f.get('username'), password: f.get('password'),
      display_name: f.get('display_name') || undefined,
    });
    await start();
  } catch (e) { $('#auth-error').textContent = errText(e); }
});

$('#logout').addEventListener('click', async () => {
  if (state.call) await hangup();
  try { await th.logout(); } catch { /* signed out locally anyway */ }
  location.reload();
});

// Delete account (DELETE /api/auth/me): the password, and a one-time code when TOTP is on.
$('#delete-account').addEventListener('click', async () => {
  if (!confirm('Delete your account for good? Your posts, comments and messages stay, without your name and emptied.')) return;
  const password = prompt('Your password, to confirm:');
  if (!password) return;
  const body = { password };
  for (;;) {
    try {
      await th.request('DELETE', '/api/auth/me', { body });
      break;
    } catch (e) {
      if (e instanceof ApiError && e.code === 'totp_required' && !body.totp) {
        body.totp = prompt('Your one-time code (or a recovery code):') || '';
        if (body.totp) continue;
        return;
      }
      alert(`Not deleted: ${errText(e)}`);
      return;
    }
  }
  if (state.call) await hangup();
  try { await th.logout(); } catch { /* the session is gone with the account */ }
  location.reload();
});

th.on('signedout', () => showAuth());

// ---- account mails: forgot / reset password, the verification link, the verify banner ---
// The mails link to TH_PUBLIC_URL + /reset-password?token= or /verify-email?token=
// (fcgi-apps/mail/templates.c); nginx serves this page at both paths.

$('#forgot-link').addEventListener('click', () => {
  authScreen('forgot');
  const login = $('#signin-form').elements.login.value;
  if (login.includes('@')) $('#forgot-form').elements.email.value = login;
});
for (const b of document.querySelectorAll('.auth-card [data-back]')) b.addEventListener('click', () => authScreen(b.dataset.back));

$('#forgot-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const email = new FormData(ev.target).get('email');
  try {
    await th.forgotPassword(email);
    authScreen('signin', `If an account has the address ${email}, we mailed it a link to choose a new password: check your mail.`);
  } catch (e) {
    $('#auth-error').textContent = e instanceof ApiError && e.status === 429
      ? 'Too many requests: please try again later.' : errText(e);
  }
});

// The token of a mail's link when this load is one ({kind: 'reset-password'|'verify-email',
// token}); the address bar keeps it no longer (it works once).
function mailLink() {
  const kind = location.pathname.replace(/^\//, '');
  const token = new URLSearchParams(location.search).get('token');
  if (!token || (kind !== 'reset-password' && kind !== 'verify-email')) return null;
  history.replaceState(null, '', '/');
  return { kind, token };
}

function resetScreen(token) {
  showAuth();
  authScreen('reset');
  $('#reset-form').onsubmit = async (ev) => {
    ev.preventDefault();
    try {
      await th.resetPassword(token, new FormData(ev.target).get('password'));
    } catch (e) {
      $('#auth-error').textContent = `${errText(e)}: ask for a new link with "Forgot password?".`;
      $('#reset-form').hidden = true;
      $('#signin-form').hidden = false;
      return;
    }
    ev.target.reset();
    // the reset ended every session of the account, this browser's too
    if (th.signedIn) await th.logout().catch(() => {});
    showAuth();
    authScreen('signin', 'Your password is changed and every session signed out: sign in with your new password.');
  };
}

async function verifyLink(token) {
  try {
    await th.verifyEmail(token);
  } catch (e) {
    if (th.signedIn) { await start(); toast(`Not confirmed: ${errText(e)}`); return; }
    showAuth();
    $('#auth-error').textContent = `Not confirmed: ${errText(e)}`;
    return;
  }
  if (th.signedIn) { await start(); toast('Your email address is confirmed.'); return; }
  showAuth();
  authScreen('signin', 'Your email address is confirmed: sign in.');
}

// The banner for an account whose address is not confirmed (me: email_verified false).
function verifyBanner(me) {
  $('#verify-banner').hidden = me.email_verified !== false;
  $('#verify-state').textContent = '';
}

$('#verify-resend').addEventListener('click', async () => {
  const out = $('#verify-state');
  try {
    await th.requestVerifyEmail();
    out.textContent = 'Sent: check your mail.';
  } catch (e) {
    if (e instanceof ApiError && e.status === 429) {
      const min = e.retryAfter ? Math.max(1, Math.ceil(e.retryAfter / 60)) : null;
      out.textContent = `We sent several mails already: please wait${min ? ` ${min} min` : ' a while'} before asking again.`;
    } else out.textContent = errText(e);
  }
});

// ---- security settings: sessions, password, TOTP ----------------------------------------

$('#security-btn').addEventListener('click', () => {
  const panel = $('#security-panel');
  panel.hidden = !panel.hidden;
  if (!panel.hidden) loadSecurity();
});
$('#security-close').addEventListener('click', () => { $('#security-panel').hidden = true; });
$('#sessions-refresh').addEventListener('click', () => loadSessions());

function securityError(e) { $('#security-error').textContent = e ? errText(e) : ''; }

async function loadSecurity() {
  securityError(null);
  $('#totp-setup-box').hidden = true;
  $('#totp-recovery').hidden = true;
  try {
    renderTotp((await th.me()).totp_enabled === true);
  } catch (e) { securityError(e); }
  await loadSessions();
}

async function loadSessions() {
  let page;
  try { page = await th.sessions({ limit: 50 }); } catch (e) { securityError(e); return; }
  $('#session-list').replaceChildren(...page.items.map((x) => el('li', {
    dataset: { id: x.id, current: x.current ? '1' : '0' },
  },
  el('span', { class: 'device' }, x.user_agent || 'unknown device'),
  el('span', { class: 'muted small' }, `${x.ip || '?'} · last used ${fmtTime(x.last_used_at || x.created_at)}`),
  x.current ? el('b', { class: 'badge this-device' }, 'this device') : el('button', {
    class: 'ghost small badge', dataset: { action: 'revoke' },
    onclick: async () => {
      try { await th.revokeSession(x.id); } catch (e) { securityError(e); }
      await loadSessions();
    },
  }, 'Sign out'))));
}

$('#password-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try {
    await th.changePassword(f.get('current_password'), f.get('new_password'));
  } catch (e) { securityError(e); return; }
  securityError(null);
  ev.target.reset();
  toast('Password changed: every other session is signed out.');
  await loadSessions();
});

function renderTotp(on) {
  $('#totp-state').textContent = on
    ? 'On: signing in asks for a code from your app.'
    : 'Off: your password alone signs you in.';
  $('#totp-state').dataset.on = on ? '1' : '0';
  $('#totp-setup').hidden = on;
  $('#totp-disable-form').hidden = !on;
}

// The otpauth:// URL as a QR code: qrcode-generator (npm, served by nginx at /vendor/).
async function qrImage(text) {
  const { default: qrcode } = await import('/vendor/qrcode.mjs');
  const qr = qrcode(0, 'M');
  qr.addData(text);
  qr.make();
  const cell = 4, margin = 4, size = qr.getModuleCount() * cell + 2 * margin;
  return el('img', { src: qr.createDataURL(cell, margin), width: size, height: size, alt: 'QR code for your authenticator app' });
}

$('#totp-setup').addEventListener('click', async () => {
  securityError(null);
  try {
    const { secret, otpauth_url: url } = await th.totpSetup();
    $('#totp-secret').textContent = secret;
    $('#totp-qr').replaceChildren();
    $('#totp-setup-box').hidden = false;
    $('#totp-setup').hidden = true;
    $('#totp-qr').append(await qrImage(url));
  } catch (e) { securityError(e); }
});

$('#totp-enable-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  let out;
  try { out = await th.totpEnable(new FormData(ev.target).get('code')); } catch (e) { securityError(e); return; }
  securityError(null);
  ev.target.reset();
  $('#totp-setup-box').hidden = true;
  $('#totp-secret').textContent = '';
  $('#totp-qr').replaceChildren();
  $('#recovery-codes').replaceChildren(...(out.recovery_codes || []).map((c) => el('li', {}, c)));
  $('#totp-recovery').hidden = false;
  renderTotp(true);
});
$('#totp-recovery-done').addEventListener('click', () => {
  $('#recovery-codes').replaceChildren();
  $('#totp-recovery').hidden = true;
});

$('#totp-disable-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try { await th.totpDisable(f.get('password'), f.get('code')); } catch (e) { securityError(e); return; }
  securityError(null);
  ev.target.reset();
  renderTotp(false);
  toast('Two-step sign-in is off.');
});

// ---- sign in with a provider (OIDC) ----------------------------------------------------
// A button per configured provider sends the browser to /start with this page as the
// redirect URI; the provider sends it back here with ?code=&state=, and the page finishes
// with GET /callback (fetch: the tokens never travel in a URL). An account with TOTP on
// answers 401 totp_required: the code form then finishes with the same state.

const OIDC_KEY = 'townhall.oidc'; // the provider a sign-in went to
const oidcRedirect = () => location.origin + '/';

async function oidcButtons() {
  const box = $('#oidc-signin');
  if (box.dataset.loaded) return;
  box.dataset.loaded = '1';
  let providers = [];
  try { providers = await th.oidcProviders(); } catch { /* none shown */ }
  for (const p of providers) {
    box.append(el('button', {
      type: 'button',
      class: 'ghost',
      'data-provider': p.name,
      onclick: () => {
        sessionStorage.setItem(OIDC_KEY, p.name);
        location.assign(th.oidcStartUrl(p.name, oidcRedirect()));
      },
    }, `Sign in with ${p.label}`));
  }
  box.hidden = providers.length === 0;
}

// The provider's answer in the URL, if this load is one: {provider, code, state, error}.
function oidcReturn() {
  const q = new URLSearchParams(location.search);
  const provider = sessionStorage.getItem(OIDC_KEY);
  if (!provider || !q.get('state') || !(q.get('code') || q.get('error'))) return null;
  sessionStorage.removeItem(OIDC_KEY);
  history.replaceState(null, '', location.pathname); // the code is used once; keep it out of history
  return { provider, code: q.get('code'), state: q.get('state'), error: q.get('error') };
}

async function oidcFinish(ret) {
  showAuth();
  if (ret.error) {
    $('#auth-error').textContent = `The provider did not sign you in (${ret.error}).`;
    return;
  }
  try {
    await th.oidcCallback(ret.provider, { code: ret.code, state: ret.state });
    await start();
  } catch (e) {
    if (e instanceof ApiError && e.code === 'totp_required') {
      const form = $('#oidc-totp-form');
      form.hidden = false;
      $('#signin-form').hidden = true;
      form.onsubmit = async (ev) => {
        ev.preventDefault();
        form.hidden = true;
        $('#signin-form').hidden = false;
        try {
          await th.oidcCallback(ret.provider, { state: ret.state, totp: new FormData(form).get('totp') });
          await start();
        } catch (e2) { $('#auth-error').textContent = errText(e2); }
      };
      return;
    }
    $('#auth-error').textContent = errText(e);
  }
}

// ---- start ---------------------------------------------------------------------------

async function start() {
  $('#auth-view').hidden = true;
  $('#app-view').hidden = false;
  $('#session').hidden = false;
  $('#me-name').textContent = th.user.display_name || th.user.username;
  state.users.set(th.user.id, th.user);
  th.me().then(verifyBanner, (e) => console.warn(e));
  const rt = await th.realtime();
  state.rt = rt;
  setConn(rt.connected ? 'online' : 'connecting');
  rt.on('status', setConn);
  rt.on('message', onChatMessage);
  rt.on('stored', ({ id }) => {
    const li = document.querySelector(`#messages li[data-id="${id}"]`);
    if (li) li.classList.remove('pending');
  });
  rt.on('renamed', ({ old_id: oldId, id }) => {
    const li = document.querySelector(`#messages li[data-id="${oldId}"]`);
    if (li) li.dataset.id = id;
  });
  rt.on('typing', onTyping);
  rt.on('presence', onPresence);
  rt.on('event', onCommunityEvent);
  rt.on('inbox', onInbox);
  await loadCommunities();
  await Promise.all([loadDms(), loadUnread()]).catch((e) => console.warn(e));
  const last = Number(sessionStorage.getItem('townhall.community'));
  const pick = state.communities.find((c) => c.id === last);
  if (pick) await selectCommunity(pick.id, sessionStorage.getItem('townhall.view') || 'feed');
}

function setConn(s) {
  const c = $('#conn-status');
  c.textContent = s;
  c.classList.toggle('online', s === 'online');
}

// ---- communities ---------------------------------------------------------------------

async function loadCommunities() {
  const page = await th.listCommunities({ limit: 100 });
  state.communities = page.items;
  renderCommunities();
}

function renderCommunities() {
  const ul = $('#community-list');
  ul.replaceChildren(...state.communities.map((c) => el('li', {
    class: state.community && state.community.id === c.id ? 'active' : '',
    dataset: { id: c.id, slug: c.slug },
    onclick: () => selectCommunity(c.id),
  }, c.name, el('span', { class: 'badge' }, c.my_role ? c.my_role : `${c.member_count} members`))));
  if (!state.communities.length) ul.append(el('li', { class: 'muted' }, 'No communities yet.'));
}

$('#refresh-communities').addEventListener('click', () => loadCommunities().catch((e) => toast(errText(e))));
window.addEventListener('focus', () => { if (th.signedIn && state.rt) loadCommunities().catch(() => {}); });

$('#community-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try {
    const c = await th.createCommunity({
      name: f.get('name'), slug: f.get('slug'), description: f.get('description') || undefined,
      visibility: f.get('visibility'),
    });
    ev.target.reset();
    $('#create-community').open = false;
    await loadCommunities();
    // the broker announces presence per community at connect: reconnect to appear online here
    await state.rt.reconnect();
    await selectCommunity(c.id);
  } catch (e) { toast(errText(e)); }
});

async function selectCommunity(id, view) {
  const c = await th.getCommunity(id);
  state.community = c;
  state.dm = null;
  renderDms();
  $('#community-tabs').hidden = false;
  $('#channel-select').hidden = false;
  $('#call-btn').hidden = false;
  sessionStorage.setItem('townhall.community', String(id));
  const idx = state.communities.findIndex((x) => x.id === id);
  if (idx >= 0) state.communities[idx] = c;
  renderCommunities();
  $('#empty-state').hidden = true;
  $('#community-view').hidden = false;
  $('#community-name').textContent = c.name;
  $('#community-desc').textContent = c.description || '';
  $('#join-btn').hidden = !!c.my_role;
  $('#leave-btn').hidden = !c.my_role || c.my_role === 'owner';
  $('#post-form').hidden = !c.my_role;
  $('#message-form').hidden = !c.my_role;
  $('#call-btn').disabled = !c.my_role;
  modOnCommunity(c);
  state.presence.clear();
  await state.rt.watchCommunity(id, { presence: !!c.my_role }).catch((e) => console.warn(e));
  await loadMembers();
  const ch = await th.listChannels(id, { limit: 100 });
  state.channels = ch.items;
  const sel = $('#channel-select');
  sel.replaceChildren(...state.channels.map((x) => el('option', { value: x.id }, '#' + x.name)));
  if (state.channelId && !state.channels.some((x) => x.id === state.channelId)) state.channelId = null;
  await showView(view || state.view);
}

$('#join-btn').addEventListener('click', async () => {
  try {
    await th.joinCommunity(state.community.id);
    await state.rt.reconnect();
    await loadCommunities();
    await selectCommunity(state.community.id);
    toast(`Welcome to ${state.community.name}!`);
  } catch (e) { toast(errText(e)); }
});

$('#leave-btn').addEventListener('click', async () => {
  try {
    await th.leaveCommunity(state.community.id);
    state.rt.unwatchCommunity(state.community.id);
    await loadCommunities();
    await selectCommunity(state.community.id);
  } catch (e) { toast(errText(e)); }
});

for (const tab of document.querySelectorAll('#community-view .tab')) {
  tab.addEventListener('click', () => showView(tab.dataset.view));
}

async function showView(view) {
  state.view = view;
  sessionStorage.setItem('townhall.view', view);
  for (const t of document.querySelectorAll('#community-view .tab')) t.classList.toggle('active', t.dataset.view === view);
  $('#feed-view').hidden = view !== 'feed';
  $('#chat-view').hidden = view !== 'chat';
  $('#mod-view').hidden = view !== 'mod';
  if (view === 'feed') await loadPosts();
  else if (view === 'mod') await loadModeration();
  else await openChannel(state.channelId || (state.channels[0] && state.channels[0].id));
}

// ---- members & presence ----------------------------------------------------------------

async function loadMembers() {
  const page = await th.listMembers(state.community.id, { limit: 100 });
  state.members = new Map(page.items.map((m) => [m.user.id, m]));
  for (const m of page.items) state.users.set(m.user.id, m.user);
  renderMembers();
}

function renderMembers() {
  const cid = state.community && state.community.id;
  const ul = $('#member-list');
  const items = [...state.members.values()].map((m) => {
    const online = m.user.id === th.user.id ? state.rt.connected : state.presence.get(`${cid}/${m.user.id}`) === 'online';
    return el('li', { dataset: { user: m.user.username, status: online ? 'online' : 'offline' } },
      el('span', { class: 'dot' + (online ? ' online' : ''), title: online ? 'online' : 'offline' }),
      m.user.display_name || m.user.username,
      el('span', { class: 'badge' }, m.role),
      m.user.id === th.user.id ? null : el('button', {
        class: 'ghost small dm-btn', title: 'Direct message', dataset: { action: 'dm' },
        onclick: () => openDmWith(m.user.id),
      }, '✉'));
  });
  ul.replaceChildren(...items);
}

function onPresence(p) {
  // 'gone': their membership ended (the member list drops them on its next read)
  if (p.status === 'gone') state.presence.delete(`${p.community_id}/${p.user_id}`);
  else state.presence.set(`${p.community_id}/${p.user_id}`, p.status);
  if (state.community && p.community_id === state.community.id) renderMembers();
}

// ---- feed ----------------------------------------------------------------------------

$('#post-image').addEventListener('change', (ev) => {
  const f = ev.target.files[0];
  $('#post-image-name').textContent = f ? f.name : '';
});

$('#post-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  const f = new FormData(form);
  const file = $('#post-image').files[0];
  const btn = $('#post-submit');
  btn.disabled = true;
  try {
    const media_ids = [];
    if (file) media_ids.push((await th.uploadMedia(file, { communityId: state.community.id })).id);
    // the post's media come back in post.media (with their variant URLs)
    const body = f.get('body');
    await th.createPost(state.community.id, { title: f.get('title') || undefined, body, media_ids: media_ids.length ? media_ids : undefined });
    form.reset();
    $('#post-image-name').textContent = '';
    await loadPosts();
  } catch (e) { toast(errText(e)); } finally { btn.disabled = false; }
});

async function loadPosts() {
  if (!state.community) return;
  const cid = state.community.id;
  const page = await th.listPosts(cid, { limit: 30 });
  if (!state.community || state.community.id !== cid) return;
  const box = $('#posts');
  box.replaceChildren(...page.items.map(renderPostSafe));
  if (!page.items.length) box.append(el('p', { class: 'muted' }, 'No posts yet.'));
  for (const id of state.openComments) if (page.items.some((p) => p.id === id)) loadComments(id);
}

// posts made by older demo builds carry a [media:<id>] marker in the body: hidden, never
// fetched (any post could carry hundreds, each a request from every reader's browser; a post
// shows the media of its media_ids)
const MEDIA_MARK = /\n?\[media:([0-9a-f-]{36})\]/g;

function renderMedia(m) {
  return m.kind === 'image'
    ? el('a', { href: m.variants.medium || m.variants.original, target: '_blank' },
      el('img', { class: 'thumb', src: m.variants.thumb || m.variants.original, alt: m.filename || 'image' }))
    : el('a', { href: m.variants.original, target: '_blank' }, `📎 ${m.filename || m.kind}`);
}

// one post the client cannot render is left out, not the whole page with it
function renderPostSafe(p) {
  try { return renderPost(p); } catch (e) {
    console.warn('townhall: post not shown', p && p.id, e);
    return el('article', { class: 'card post muted', dataset: { id: p && p.id } }, 'This post cannot be shown.');
  }
}

function renderPost(p) {
  const mediaBox = el('div', { class: 'media' }, (p.media || []).map(renderMedia));
  const reactions = el('div', { class: 'reactions' }, REACTIONS.map((emoji) => {
    const mine = (p.my_reactions || []).includes(emoji);
    const n = (p.reactions || {})[emoji] || 0;
    return el('button', {
      class: mine ? 'mine' : '', dataset: { emoji }, disabled: !state.community.my_role,
      onclick: async () => {
        try { await (mine ? th.unreact(p.id, emoji) : th.react(p.id, emoji)); await loadPosts(); } catch (e) { toast(errText(e)); }
      },
    }, `${emoji} ${n || ''}`.trim());
  }), el('button', {
    class: 'ghost', dataset: { action: 'comments' },
    onclick: () => {
      if (state.openComments.has(p.id)) state.openComments.delete(p.id); else state.openComments.add(p.id);
      loadPosts();
    },
  }, `💬 ${p.comment_count}`), reportButton('post', p.id, p.author && p.author.id));
  const comments = el('div', { class: 'comments', id: `comments-${p.id}`, hidden: !state.openComments.has(p.id) });
  return el('article', { class: 'card post', dataset: { id: p.id } },
    p.title ? el('h3', {}, p.title) : null,
    el('div', { class: 'meta' }, `${whoIs(p.author)} · ${fmtTime(p.created_at)}`),
    el('div', { class: 'body' }, richText(p.body.replace(MEDIA_MARK, '').trim())),
    mediaBox, reactions, comments);
}

async function loadComments(postId) {
  const box = document.getElementById(`comments-${postId}`);
  if (!box) return;
  const page = await th.listComments(postId, { limit: 100 });
  const form = el('form', {
    class: 'comment-form',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const body = ev.target.elements.body.value.trim();
      if (!body) return;
      try { await th.createComment(postId, { body }); await loadPosts(); } catch (e) { toast(errText(e)); }
    },
  }, el('input', { name: 'body', placeholder: 'Write a comment…', maxlength: 10000 }), el('button', { type: 'submit' }, 'Reply'));
  box.replaceChildren(
    ...page.items.map((c) => el('div', { class: 'comment' }, el('b', {}, whoIs(c.author)), richText(c.body))),
    state.community.my_role ? form : el('p', { class: 'muted small' }, 'Join to comment.'));
}

function onCommunityEvent(ev) {
  if (!state.community || ev.community_id !== state.community.id) return;
  switch (ev.type) {
    case 'post_created': case 'post_edited': case 'post_deleted': case 'comment_created': case 'comment_deleted':
      if (state.view === 'feed') loadPosts();
      break;
    case 'member_joined': case 'member_left': case 'member_removed': case 'member_banned': case 'role_changed':
      loadMembers();
      if (ev.user_id === th.user.id) selectCommunity(state.community.id);
      break;
    case 'channel_created':
      selectCommunity(state.community.id, state.view);
      break;
    case 'call_invite':
      onInbox(ev);
      break;
    case 'message_deleted': {
      const li = document.querySelector(`#messages li[data-id="${ev.message_id}"]`);
      if (li) { li.classList.add('deleted'); li.querySelector('.text').textContent = 'message deleted'; }
      break;
    }
    case 'community_updated':
      selectCommunity(state.community.id, state.view);
      break;
    default:
  }
}

// ---- chat ----------------------------------------------------------------------------

$('#channel-select').addEventListener('change', (ev) => openChannel(Number(ev.target.value)));

async function openChannel(channelId) {
  if (!channelId) return;
  if (state.channelId && state.channelId !== channelId) state.rt.leaveChannel(state.channelId);
  state.channelId = channelId;
  $('#channel-select').value = String(channelId);
  $('#messages').replaceChildren();
  $('#typing').textContent = '';
  state.rt.leaveChannel(channelId);   // start clean: the history below is rendered again
  await state.rt.joinChannel(channelId, { limit: 50 });
  markChannelRead(channelId);
  // our own messages still waiting for a receipt (e.g. sent just before a reload)
  for (const p of state.rt.pending.values()) {
    if (p.channel_id === channelId && !document.querySelector(`#messages li[data-id="${p.payload.id}"]`)) {
      onChatMessage({ channel_id: channelId, sender_id: th.user.id, id: p.payload.id, body: p.payload.body, source: 'self' });
    }
  }
  scrollChat();
}

// An author or sender as the UI names them: the display name, which anyone may copy, with
// the username, which is unique; an erased account's content has no author (null)
function whoIs(u) {
  if (!u) return 'deleted account';
  return u.display_name && u.display_name !== u.username ? `${u.display_name} (@${u.username})` : `@${u.username}`;
}

function nameOf(uid, sender) {
  if (sender) state.users.set(uid, sender);
  const u = state.users.get(uid) || (state.members.get(uid) && state.members.get(uid).user);
  return u ? (u.display_name || u.username) : `user ${uid}`;
}

// a message's sender: whoIs() once the user is known (history carries it; a live message
// only the id, then the members' list or an earlier message names them)
function senderOf(m) {
  nameOf(m.sender_id, m.sender);
  const u = state.users.get(m.sender_id) || (state.members.get(m.sender_id) && state.members.get(m.sender_id).user);
  return u ? whoIs(u) : (m.sender_id ? `user ${m.sender_id}` : whoIs(null));
}

function onChatMessage(m) {
  if (m.channel_id !== state.channelId) return;
  const ol = $('#messages');
  const existing = ol.querySelector(`li[data-id="${m.id}"]`);
  if (existing) return;
  const mine = m.sender_id === th.user.id;
  const li = el('li', {
    class: `msg${mine ? ' mine' : ''}${m.source === 'self' && state.rt.pending.has(m.id) ? ' pending' : ''}${m.deleted_at ? ' deleted' : ''}`,
    dataset: { id: m.id, sender: m.sender_id },
  }, el('div', { class: 'who' }, `${senderOf(m)}${m.created_at ? ' · ' + new Date(m.created_at).toLocaleTimeString() : ''}`),
  el('div', { class: 'text' }, m.deleted_at ? 'message deleted' : richText(m.body)),
  m.deleted_at ? null : reportButton('message', m.id, m.sender_id));
  const nearBottom = ol.scrollHeight - ol.scrollTop - ol.clientHeight < 80;
  ol.append(li);
  if (nearBottom || mine) scrollChat();
  // whoever sent a message stopped typing
  clearTyping(m.sender_id);
  if (!mine) markChannelReadSoon(m.channel_id);
}

function scrollChat() { const ol = $('#messages'); ol.scrollTop = ol.scrollHeight; }

$('#message-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('#message-input');
  const body = input.value.trim();
  if (!body || !state.channelId) return;
  state.rt.send(state.channelId, body);
  input.value = '';
});

$('#message-input').addEventListener('input', () => {
  if (state.channelId && $('#message-input').value) state.rt.typing(state.channelId);
});

function onTyping({ channel_id, user_id }) {
  if (channel_id !== state.channelId) return;
  clearTimeout(state.typingTimers.get(user_id));
  state.typingTimers.set(user_id, setTimeout(() => clearTyping(user_id), 3500));
  renderTyping();
}
function clearTyping(uid) {
  if (!state.typingTimers.has(uid)) return;
  clearTimeout(state.typingTimers.get(uid));
  state.typingTimers.delete(uid);
  renderTyping();
}
function renderTyping() {
  const names = [...state.typingTimers.keys()].map((u) => nameOf(u));
  $('#typing').textContent = names.length ? `${names.join(', ')} ${names.length > 1 ? 'are' : 'is'} typing…` : '';
}

// ---- DMs and read markers ------------------------------------------------------------

async function loadDms() {
  const page = await th.dms({ limit: 50 });
  state.dms = page.items;
  for (const d of state.dms) state.unread.set(d.id, { unread: d.unread, mentions: d.mentions });
  renderDms();
}

function dmTitle(d) {
  const others = (d.members || []).filter((u) => u.id !== th.user.id);
  return others.map((u) => u.display_name || u.username).join(', ') || 'just you';
}

function unreadBadge(channelId) {
  const u = state.unread.get(channelId);
  if (!u || (!u.unread && !u.mentions)) return null;
  return el('span', { class: 'unread-badge' + (u.mentions ? ' mention' : ''), title: `${u.unread} unread` }, u.mentions ? `@${u.mentions}` : String(u.unread));
}

function renderDms() {
  const ul = $('#dm-list');
  ul.replaceChildren(...state.dms.map((d) => el('li', {
    class: state.dm && state.dm.id === d.id ? 'active' : '',
    dataset: { id: d.id, with: (d.members || []).filter((u) => u.id !== th.user.id).map((u) => u.username).join(',') },
    onclick: () => openDm(d).catch((e) => toast(errText(e))),
  }, dmTitle(d), unreadBadge(d.id))));
  if (!state.dms.length) ul.append(el('li', { class: 'muted small' }, 'No conversations yet.'));
}

async function openDmWith(userId) {
  try {
    const d = await th.openDm([userId]);
    await loadDms();
    await openDm(state.dms.find((x) => x.id === d.id) || d);
  } catch (e) { toast(errText(e)); }
}

async function openDm(d) {
  if (state.community) state.rt.unwatchCommunity(state.community.id);
  state.community = null;
  state.dm = d;
  sessionStorage.removeItem('townhall.community');
  renderCommunities();
  renderDms();
  $('#empty-state').hidden = true;
  $('#community-view').hidden = false;
  $('#community-name').textContent = dmTitle(d);
  $('#community-desc').textContent = d.group ? 'Group conversation' : 'Direct message';
  $('#join-btn').hidden = true;
  $('#leave-btn').hidden = true;
  $('#community-tabs').hidden = true;
  $('#feed-view').hidden = true;
  $('#chat-view').hidden = false;
  $('#channel-select').hidden = true;
  $('#call-btn').hidden = true;
  $('#message-form').hidden = false;
  modOnCommunity(null);
  state.members = new Map((d.members || []).map((u) => [u.id, { user: u, role: 'member' }]));
  for (const u of d.members || []) state.users.set(u.id, u);
  renderMembers();
  await openChannel(d.id);
}

function applyUnread({ channel_id, unread, mentions }) {
  state.unread.set(channel_id, { unread, mentions });
  const d = state.dms.find((x) => x.id === channel_id);
  if (d) { d.unread = unread; d.mentions = mentions; }
  renderDms();
}

async function loadUnread() {
  const u = await th.unread();
  for (const c of u.channels) state.unread.set(c.channel_id, { unread: c.unread, mentions: c.mentions });
  state.notifCount = u.notifications;
  renderDms();
  renderBell();
}

// The marker of a channel to its newest message (the history's first item).
async function markChannelRead(channelId) {
  try {
    const page = await th.listMessages(channelId, { limit: 1 });
    if (!page.items.length) return;
    applyUnread(await th.markRead(channelId, page.items[0].seq));
  } catch (e) { console.warn(e); }
}
const readTimers = new Map();
function markChannelReadSoon(channelId) {
  if (readTimers.has(channelId)) return;
  readTimers.set(channelId, setTimeout(() => { readTimers.delete(channelId); if (state.channelId === channelId) markChannelRead(channelId); }, 500));
}

// ---- notifications ---------------------------------------------------------------------

const NOTE_TEXT = {
  mention: 'mentioned you', reply: 'replied to you', dm: 'started a conversation with you', call: 'is calling',
  role: 'changed your role', ban: 'banned you', post: 'posted', report_resolved: 'resolved your report',
};

function renderBell() {
  const c = $('#notif-count');
  c.textContent = String(state.notifCount);
  c.dataset.n = String(state.notifCount);
  if ($('#notif-panel').hidden) return;
  const ul = $('#notif-list');
  ul.replaceChildren(...state.notifs.map((n) => el('li', {
    class: n.read_at ? '' : 'unread', dataset: { id: n.id, type: n.type },
    onclick: () => openNotification(n),
  }, el('span', {}, `${n.actor ? (n.actor.display_name || n.actor.username) : 'Someone'} ${NOTE_TEXT[n.type] || n.type}`),
  el('span', { class: 'muted small' }, fmtTime(n.created_at)))));
  if (!state.notifs.length) ul.append(el('li', { class: 'muted small' }, 'Nothing yet.'));
}

$('#bell').addEventListener('click', async () => {
  const panel = $('#notif-panel');
  panel.hidden = !panel.hidden;
  if (panel.hidden) return;
  try { state.notifs = (await th.notifications({ limit: 30 })).items; } catch (e) { toast(errText(e)); }
  renderBell();
  pushState().catch(() => {});
});

$('#notif-read-all').addEventListener('click', async () => {
  try { await th.readNotifications('all'); } catch (e) { toast(errText(e)); return; }
  state.notifCount = 0;
  for (const n of state.notifs) n.read_at = n.read_at || new Date().toISOString();
  renderBell();
});

async function openNotification(n) {
  $('#notif-panel').hidden = true;
  if (!n.read_at) th.readNotifications([n.id]).catch(() => {});
  try {
    if (n.channel_id && !n.community_id) {
      if (!state.dms.some((d) => d.id === n.channel_id)) await loadDms();
      const d = state.dms.find((x) => x.id === n.channel_id);
      if (d) await openDm(d);
    } else if (n.community_id) {
      await selectCommunity(n.community_id, n.channel_id ? 'chat' : 'feed');
      if (n.channel_id) await openChannel(n.channel_id);
    }
  } catch (e) { toast(errText(e)); }
}

// ---- Web Push: a service worker shows what the server pushes while no tab is connected --

const b64u = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));

async function pushState() {
  const out = $('#push-state');
  if (!('serviceWorker' in navigator) || !('PushManager' in window) || !th.pushKey) { out.textContent = 'not supported here'; return; }
  const reg = await navigator.serviceWorker.getRegistration('/');
  const sub = reg && await reg.pushManager.getSubscription();
  out.textContent = sub ? 'on' : Notification.permission === 'denied' ? 'blocked by the browser' : 'off';
}

$('#push-enable').addEventListener('click', async () => {
  try {
    if (await Notification.requestPermission() !== 'granted') { await pushState(); return; }
    const reg = await navigator.serviceWorker.register('/sw.js', { scope: '/' });
    await navigator.serviceWorker.ready;
    const { public_key: key } = await th.pushKey();
    const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64u(key) });
    await th.subscribePush(sub.toJSON());
    toast('Push notifications are on');
  } catch (e) { toast(`Push: ${errText(e)}`); }
  await pushState().catch(() => {});
});

// the service worker is registered at start (it shows pushes; subscribing asks first)
if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch((e) => console.warn(e));

// ---- calls ---------------------------------------------------------------------------

function onInbox(msg) {
  switch (msg.type) {
    case 'unread':
      applyUnread(msg);
      // a device that shows the channel reads what others wrote in it
      if (msg.channel_id === state.channelId && msg.unread > 0) markChannelReadSoon(msg.channel_id);
      return;
    case 'dm_created': case 'dm_left':
      loadDms().catch(() => {});
      return;
    case 'notification':
      state.notifCount += 1;
      state.notifs.unshift(msg.notification);
      renderBell();
      if (msg.notification.type === 'mention') toast(`${msg.notification.actor ? nameOf(msg.notification.actor.id, msg.notification.actor) : 'Someone'} mentioned you`);
      return;
    case 'notifications_read': {
      state.notifCount = msg.unread;
      const done = new Set(msg.ids || []);
      for (const n of state.notifs) if (msg.all || done.has(n.id)) n.read_at = n.read_at || new Date().toISOString();
      renderBell();
      return;
    }
    default:
  }
  if (msg.type === 'call_invite' && msg.from !== th.user.id && !state.call) {
    state.invite = msg;
    $('#incoming-text').textContent = `📞 ${nameOf(msg.from)} is calling in #${(state.channels.find((c) => c.id === msg.channel_id) || {}).name || msg.channel_id}`;
    $('#incoming-call').hidden = false;
  }
}

function callOpts() {
  return { iceTransportPolicy: $('#force-relay').checked ? 'relay' : 'all', media: { audio: true, video: true } };
}

function wireCall(call) {
  state.call = call;
  $('#call-panel').hidden = false;
  $('#call-btn').disabled = true;
  $('#call-state').textContent = 'waiting';
  $('#call-path').textContent = '';
  call.on('localstream', (s) => { $('#local-video').srcObject = s; });
  if (call.localStream) $('#local-video').srcObject = call.localStream;
  call.on('remotestream', ({ stream }) => { $('#remote-video').srcObject = stream; });
  call.on('state', async ({ state: st }) => {
    $('#call-state').textContent = st;
    if (st === 'connected') {
      try {
        const types = Object.values(await call.candidateTypes()).filter(Boolean);
        $('#call-path').textContent = types.length ? `(${types.join(', ')})` : '';
      } catch { /* stats are a nicety */ }
    }
  });
  call.on('ended', () => {
    $('#call-panel').hidden = true;
    $('#call-btn').disabled = false;
    $('#remote-video').srcObject = null;
    $('#local-video').srcObject = null;
    state.call = null;
  });
}

$('#call-btn').addEventListener('click', async () => {
  if (!state.channelId || state.call) return;
  try {
    const call = await th.startCall(state.channelId, callOpts());
    wireCall(call);
    $('#call-id').textContent = '#' + call.id;
  } catch (e) { toast(errText(e)); }
});

$('#accept-call').addEventListener('click', async () => {
  const inv = state.invite;
  $('#incoming-call').hidden = true;
  state.invite = null;
  if (!inv || state.call) return;
  try {
    const call = await th.joinCall(inv.call_id, callOpts());
    wireCall(call);
    $('#call-id').textContent = '#' + call.id;
  } catch (e) { toast(errText(e)); }
});

$('#dismiss-call').addEventListener('click', () => { $('#incoming-call').hidden = true; state.invite = null; });

async function hangup() {
  if (state.call) await state.call.hangup().catch(() => {});
}
$('#hangup-btn').addEventListener('click', hangup);
window.addEventListener('pagehide', () => { if (state.call) state.call.hangup(); });

// ---- moderation: report buttons, the mod queue, the modlog, the chat rules -------------
// (API.md v1.1 "Moderation"; the routes: POST /api/reports, GET /api/communities/:id/reports,
// POST /api/reports/:id/resolve, GET /api/communities/:id/modlog, PATCH /api/communities/:id)

const ROLE_RANK = { member: 1, moderator: 2, admin: 3, owner: 4 };
const atLeast = (role, need) => (ROLE_RANK[role] || 0) >= ROLE_RANK[need];
const RESOLVE_ACTIONS = ['dismiss', 'remove', 'ban', 'warn'];
let reportTarget = null; // {type, id} while the report dialog is open

// A "report" button for something of another user (none for the caller's own).
function reportButton(type, id, authorId) {
  if (!th.user || authorId === th.user.id) return null;
  return el('button', {
    class: 'ghost small report', dataset: { action: 'report', type, id }, title: `Report this ${type}`,
    onclick: (ev) => { ev.stopPropagation(); openReport(type, id); },
  }, '⚑ Report');
}

function openReport(type, id) {
  reportTarget = { type, id };
  $('#report-what').textContent = type;
  $('#report-form').reset();
  $('#report-dialog').showModal();
}

$('#report-cancel').addEventListener('click', () => { reportTarget = null; $('#report-dialog').close(); });
$('#report-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!reportTarget) return;
  const f = new FormData(ev.target);
  const body = { target: reportTarget, reason: f.get('reason') };
  if (f.get('note')) body.note = f.get('note');
  try {
    await th.request('POST', '/api/reports', { body });
    toast('Reported: the moderators will look at it.');
  } catch (e) {
    toast(e instanceof ApiError && e.status === 409 ? 'You reported this already.' : errText(e));
  }
  reportTarget = null;
  $('#report-dialog').close();
});

// The Moderation tab for moderators and above; the rules form for admins and above.
// c null: a DM (no community, no rules).
function modOnCommunity(c) {
  const mod = !!c && atLeast(c.my_role, 'moderator');
  $('#tab-mod').hidden = !mod;
  $('#rules-form').hidden = !c || !atLeast(c.my_role, 'admin');
  if (!c) $('#mod-view').hidden = true;
  if (!mod && state.view === 'mod') state.view = 'feed';
  if (!c) c = {};
  // the chat rules as the composer shows them (moderators and above are exempt)
  const input = $('#message-input');
  input.maxLength = mod ? 4000 : (c.max_message_length || 4000);
  input.placeholder = !mod && c.slow_mode_seconds > 0 ? `Message (slow mode: one every ${c.slow_mode_seconds} s)` : 'Message';
}

async function loadModeration() {
  const c = state.community;
  if (!c) return;
  const f = $('#rules-form');
  f.elements.slow_mode_seconds.value = c.slow_mode_seconds ?? 0;
  f.elements.max_message_length.value = c.max_message_length ?? 4000;
  f.elements.links_allowed.checked = c.links_allowed !== false;
  await Promise.all([loadReports(), loadModlog()]).catch((e) => toast(errText(e)));
}

// A report's target as the queue shows it: the content when the server includes it.
function reportContent(r) {
  const t = r.target || {};
  const c = t.content || r.content || t;
  return c.body || c.title || c.username || `${t.type} ${t.id}`;
}

async function loadReports() {
  const status = $('#report-status').value;
  const page = await th.request('GET', `/api/communities/${state.community.id}/reports`, { query: { status, limit: 100 } });
  const ul = $('#report-queue');
  ul.replaceChildren(...page.items.map((r) => el('li', {
    class: 'report-item', dataset: { id: r.id, type: r.target && r.target.type, target: r.target && r.target.id, status: r.status || status },
  },
  el('div', {}, el('b', {}, r.reason), ` · ${r.target ? r.target.type : ''} · ${fmtTime(r.created_at)}`,
    r.reporter ? ` · by ${r.reporter.display_name || r.reporter.username}` : ''),
  el('div', { class: 'body' }, reportContent(r)),
  r.note ? el('div', { class: 'muted small' }, r.note) : null,
  status === 'open' ? el('div', { class: 'row' }, RESOLVE_ACTIONS.map((action) => el('button', {
    class: action === 'dismiss' ? 'ghost small' : 'small', dataset: { action },
    onclick: () => resolveReport(r.id, action),
  }, action))) : el('div', { class: 'muted small' }, r.resolution ? `${r.resolution.action || r.resolution}` : (r.action || 'resolved')))));
  if (!page.items.length) ul.append(el('li', { class: 'muted small' }, status === 'open' ? 'No open reports.' : 'Nothing resolved yet.'));
}

async function resolveReport(id, action) {
  try {
    await th.request('POST', `/api/reports/${id}/resolve`, { body: { action } });
    toast(`Report ${action === 'dismiss' ? 'dismissed' : 'resolved: ' + action}.`);
  } catch (e) { toast(errText(e)); }
  await Promise.all([loadReports(), loadModlog()]).catch((e) => toast(errText(e)));
  if (action === 'remove' || action === 'ban') loadPosts().catch(() => {});
}

async function loadModlog() {
  const page = await th.request('GET', `/api/communities/${state.community.id}/modlog`, { query: { limit: 50 } });
  const ul = $('#modlog');
  ul.replaceChildren(...page.items.map((e) => el('li', {
    class: 'modlog-entry', dataset: { id: e.id, action: e.action, type: e.target && e.target.type, target: e.target && e.target.id },
  }, el('b', {}, e.action), ` ${e.target ? `${e.target.type} ${e.target.id ?? ''}` : ''} · `,
  e.actor ? (e.actor.display_name || e.actor.username) : 'someone', ` · ${fmtTime(e.created_at)}`,
  e.note ? el('div', { class: 'muted small' }, e.note) : null)));
  if (!page.items.length) ul.append(el('li', { class: 'muted small' }, 'Nothing logged yet.'));
}

$('#report-status').addEventListener('change', () => loadReports().catch((e) => toast(errText(e))));
$('#reports-refresh').addEventListener('click', () => loadReports().catch((e) => toast(errText(e))));
$('#modlog-refresh').addEventListener('click', () => loadModlog().catch((e) => toast(errText(e))));
$('#rules-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = ev.target.elements;
  try {
    state.community = await th.request('PATCH', `/api/communities/${state.community.id}`, {
      body: {
        slow_mode_seconds: Number(f.slow_mode_seconds.value),
        max_message_length: Number(f.max_message_length.value),
        links_allowed: f.links_allowed.checked,
      },
    });
    toast('Chat rules saved.');
    await loadModlog().catch(() => {});
  } catch (e) { toast(errText(e)); }
});

// ---- boot ----------------------------------------------------------------------------

const mailRet = mailLink();
const oidcRet = mailRet ? null : oidcReturn();
if (mailRet && mailRet.kind === 'reset-password') {
  resetScreen(mailRet.token);
} else if (mailRet) {
  verifyLink(mailRet.token).catch((e) => { console.error(e); toast(errText(e)); });
} else if (oidcRet) {
  oidcFinish(oidcRet);
} else if (th.signedIn) {
  start().catch((e) => { console.error(e); if (!th.signedIn) showAuth(); else toast(errText(e)); });
} else {
  showAuth();
}

// for debugging and tests
window.townhall = { th, state };
