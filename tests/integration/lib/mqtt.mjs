// mqtt.js clients for the tests of the broker (mqtt.test.mjs) and of the bridge
// (bridge.test.mjs): over WebSocket through nginx, as a browser connects, unless told
// another url (the service account's TCP listener on BASE+3).
//
// Every client made here is in `clients` until end(); a test file closes what is left with
// after(closeClients). Every wait has a deadline.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import mqtt from 'mqtt';
import { HTTP_HOST, HTTP_PORT, VAR_DIR, sleep } from './http.mjs';
import { rnd } from './fixtures.mjs';

export const WS_URL = `ws://${HTTP_HOST}:${HTTP_PORT}/mqtt`;
export const CONNECT_MS = 5000;  // a connection attempt is decided within this
export const DELIVER_MS = 5000;  // a message that should arrive arrives within this

export const clients = new Set();
export function closeClients() {
  for (const c of clients) c.end(true);
  clients.clear();
}

// The service account's (th-service) password: the one client the broker plugin lets publish
// anything, e.g. to a user's inbox or invalid chat payloads for the bridge.
export function serviceSecret() {
  return readFileSync(path.join(VAR_DIR, 'keys/mqtt-service.secret'), 'utf8').trim();
}

export const cid = (u) => `u${u.id}-${rnd(4)}`;

// connect(user|{token,id}, opts) -> {client, messages, clientId, closed, closedAt()} within
// CONNECT_MS, or throws with .refused (CONNACK failure, or the connection closed before a
// CONNACK). closed stays true once the connection closed, even if mqtt.js reconnects it.
// reconnectPeriod > 0: mqtt.js retries by itself, and an error or close before the first
// CONNACK is not a refusal (it waits for CONNACK until the deadline).
export function connect(u, o = {}) {
  const {
    url = WS_URL, clientId = cid(u), username = 'ignored', password = u.token, protocolVersion = 5, reconnectPeriod = 0,
  } = o;
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, {
      protocolVersion, clientId, username, password, reconnectPeriod, connectTimeout: CONNECT_MS,
      clean: true, keepalive: 30,
    });
    clients.add(client);
    const messages = [];
    let closedAt = null;
    let settled = false;
    const conn = {
      client, messages, clientId,
      get closed() { return closedAt !== null; },
      closedAt: () => closedAt,
    };
    client.on('message', (topic, payload, packet) => messages.push({
      topic, payload: payload.toString('utf8'), retain: packet.retain, at: Date.now(),
      userProperties: packet.properties?.userProperties,
    }));
    client.on('close', () => {
      if (closedAt === null) closedAt = Date.now();
      if (!settled && reconnectPeriod === 0) {
        settled = true; clearTimeout(timer);
        const e = new Error(`connection closed before CONNACK (${clientId})`); e.refused = true; reject(e);
      }
    });
    client.on('error', (e) => {
      if (!settled && reconnectPeriod === 0) { settled = true; clearTimeout(timer); client.end(true); e.refused = true; reject(e); }
    });
    client.on('connect', () => { if (!settled) { settled = true; clearTimeout(timer); resolve(conn); } });
    const timer = setTimeout(() => {
      if (!settled) { settled = true; client.end(true); reject(new Error(`no CONNACK within ${CONNECT_MS} ms (${clientId})`)); }
    }, CONNECT_MS + 1000);
  });
}

// Close connections cleanly (DISCONNECT), forcibly after 2 s; a closed one is only stopped
// (no reconnect).
export function end(...conns) {
  return Promise.all(conns.filter(Boolean).map((c) => new Promise((resolve) => {
    clients.delete(c.client);
    if (c.closed) { c.client.end(true); resolve(); return; }
    const t = setTimeout(() => { c.client.end(true); resolve(); }, 2000);
    c.client.end(false, {}, () => { clearTimeout(t); resolve(); });
  })));
}

// subscribe(conn, topic) -> the SUBACK code (0..2 granted, >= 0x80 refused)
export function subscribe(conn, topic, qos = 1) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no SUBACK for ${topic} within ${DELIVER_MS} ms`)), DELIVER_MS);
    conn.client.subscribe(topic, { qos }, (err, _subs, packet) => {
      clearTimeout(t);
      if (packet?.granted?.length === 1) resolve(packet.granted[0]);
      else reject(err || new Error(`SUBACK without a code for ${topic}`));
    });
  });
}
export async function mustSubscribe(conn, topic, what = topic) {
  const code = await subscribe(conn, topic);
  assert.ok(code < 0x80, `${what}: subscribe ${topic} refused (SUBACK 0x${code.toString(16)})`);
}

// publish(conn, topic, payload, {qos, retain, properties}) -> PUBACK reason code (0 when
// none: QoS 0 / 3.1.1; >= 0x80: refused)
export function publish(conn, topic, payload, { qos = 1, retain = false, properties } = {}) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no PUBACK for ${topic} within ${DELIVER_MS} ms`)), DELIVER_MS);
    conn.client.publish(topic, payload, { qos, retain, ...(properties ? { properties } : {}) }, (err, packet) => {
      clearTimeout(t);
      if (err && err.code === undefined) { reject(err); return; }
      resolve(packet?.reasonCode ?? err?.code ?? 0);
    });
  });
}

// Poll fn() (sync or async) every 25 ms until truthy; fail after ms. what: a string or a
// function giving one (evaluated at the failure, e.g. a diagnosis of the state then).
export async function waitFor(fn, ms = DELIVER_MS, what = 'condition') {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() >= end) assert.fail(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? what() : what}`);
    await sleep(25);
  }
}

// Whether conn received a message with this payload: a string (the exact payload) or a
// predicate on the message {topic, payload, retain, at}.
export const hasPayload = (conn, p) => conn.messages.some(typeof p === 'function' ? p : (m) => m.payload === p);
