// ChatSender: a chat client as API.md and web/townhall.js want it, for the tests that kill
// brokers and count what was stored. It keeps every message until a `stored` receipt names
// it, publishes the unreceipted ones again (same ids) after every reconnect and any that
// waited `resendMs` without a receipt (a broker that restarted before the bridge
// re-subscribed accepted them and found no subscriber: only the sender can repair that;
// docs/events.md, "Receipts"), and reconnects by itself, to the next of `urls` each time (a
// dead edge's clients are sent to another one by the front). MQTT 5, clean sessions.
import mqtt from 'mqtt';
import { uuid } from './fixtures.mjs';
import { WS_URL, CONNECT_MS, clients, cid } from './mqtt.mjs';

export class ChatSender {
  constructor(user, channel, { urls = [WS_URL], resendMs = 5000, redialMs = 300 } = {}) {
    this.user = user;
    this.channel = channel;
    this.topic = `chat/${channel}/${user.id}`;
    this.urls = urls;
    this.resendMs = resendMs;
    this.redialMs = redialMs;
    this.next = 0;
    this.sent = [];            // ids in send order
    this.byId = new Map();     // id -> {n, payload, at}
    this.pending = new Map();  // id -> payload, until its receipt
    this.lastTry = new Map();  // id -> ms of the last publish
    this.stored = new Set();   // ids named by a receipt
    this.resent = new Set();   // ids published more than once
    this.connects = 0;
    this.receipts = 0;
    this.dropReceipts = false; // true: receipts are lost on the way (a test sets it)
    this.receiptsDropped = 0;  // receipts lost so while dropReceipts was true
    this.pubErrors = 0;
    this.log = [];
    this.stopped = false;
  }

  // resolves at the first CONNACK (and inbox SUBACK)
  start() {
    this.timer = setInterval(() => this.resendStale(), 500);
    this.timer.unref();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`sender u${this.user.id}: no CONNACK within ${CONNECT_MS} ms`)), CONNECT_MS);
      this.onFirst = () => { clearTimeout(t); resolve(); };
      this.dial();
    });
  }

  dial() {
    if (this.stopped) return;
    const url = this.urls[this.next++ % this.urls.length];
    const client = mqtt.connect(url, {
      protocolVersion: 5, clientId: cid(this.user), username: 'ignored', password: this.user.token,
      clean: true, keepalive: 10, reconnectPeriod: 0, connectTimeout: 2000,
    });
    this.client = client;
    clients.add(client);
    client.on('message', (topic, payload) => {
      let m;
      try { m = JSON.parse(payload.toString('utf8')); } catch { return; }
      if (topic !== `user/${this.user.id}/inbox` || m?.type !== 'stored' || !Array.isArray(m.ids)) return;
      if (this.dropReceipts) { this.receiptsDropped += 1; return; }
      this.receipts += 1;
      for (const id of m.ids) { this.pending.delete(id); this.stored.add(id); }
    });
    client.on('error', (e) => this.log.push(`${Date.now()} ${url} error ${e.message}`));
    client.on('close', () => {
      clients.delete(client);
      client.end(true);
      if (this.client !== client || this.stopped) return;
      this.log.push(`${Date.now()} ${url} closed`);
      setTimeout(() => this.dial(), this.redialMs);
    });
    client.on('connect', () => {
      this.connects += 1;
      this.log.push(`${Date.now()} ${url} connect #${this.connects}`);
      // the inbox first: the receipts of what follows come there
      client.subscribe(`user/${this.user.id}/inbox`, { qos: 1 }, (err, granted) => {
        if (err || (granted?.length && granted[0].qos >= 0x80)) {
          this.log.push(`${Date.now()} inbox subscribe failed ${err?.message ?? JSON.stringify(granted)}`);
        }
        if (this.connects === 1) { this.onFirst(); return; }
        this.log.push(`${Date.now()} re-sending ${this.pending.size} unreceipted`);
        for (const [id, payload] of this.pending) { this.resent.add(id); this.publishRaw(id, payload); }
      });
    });
  }

  publishRaw(id, payload) {
    this.lastTry.set(id, Date.now());
    if (this.client?.connected) {
      this.client.publish(this.topic, payload, { qos: 1 }, (err) => { if (err) this.pubErrors += 1; });
    }
  }

  // re-publish what waited too long for its receipt (runs while connected)
  resendStale() {
    if (!this.client?.connected) return;
    const now = Date.now();
    for (const [id, payload] of this.pending) {
      if (now - (this.lastTry.get(id) ?? now) < this.resendMs) continue;
      this.resent.add(id);
      this.publishRaw(id, payload);
    }
  }

  send() {
    const n = this.sent.length;
    const id = uuid();
    const payload = JSON.stringify({ id, body: `sender=${this.user.id} n=${n}` });
    this.sent.push(id);
    this.byId.set(id, { n, payload, at: Date.now() });
    this.pending.set(id, payload);
    this.publishRaw(id, payload);
    return id;
  }

  // steady load: `rate` messages a second for `ms`
  load(rate, ms) {
    return new Promise((resolve) => {
      const t0 = Date.now();
      const total = Math.round((rate * ms) / 1000);
      const iv = setInterval(() => {
        const due = Math.min(total, Math.floor(((Date.now() - t0) * rate) / 1000));
        while (this.sent.length < due) this.send();
        if (this.sent.length >= total) { clearInterval(iv); resolve(); }
      }, 10);
    });
  }

  diag() {
    return `u${this.user.id}: sent ${this.sent.length}, pending ${this.pending.size}, stored ${this.stored.size}, resent ${this.resent.size}, connects ${this.connects}, log [${this.log.slice(-8).join('; ')}]`;
  }

  stop() {
    this.stopped = true;
    clearInterval(this.timer);
    if (this.client) { clients.delete(this.client); this.client.end(true); }
  }
}
