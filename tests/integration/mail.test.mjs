// Mail (issue 22 point 1): the outbox drained by th-mailer into the stack's SMTP sink.
// Rows are queued here with psql, as lib/mail.c's mail_queue() writes them (plus its NOTIFY),
// so this file tests the sender alone; accounts.test.mjs queues them through the API.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  mkdtempSync, readdirSync, readFileSync, writeFileSync, rmSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ROOT, PORT_BASE, VAR_DIR, BIN_DIR, readPid, waitGone, until, request, runProgram,
} from './lib/http.mjs';
import { psql, stackUp, poolMetrics, metric } from './lib/stack.mjs';
import { rnd } from './lib/fixtures.mjs';
import { mailsFor, newestMail, extractLink } from './lib/mail.mjs';

const queue = async (values) => {
  const r = await psql(`INSERT INTO mail_outbox (kind, to_addr, params) ${values}; NOTIFY townhall_mail`);
  assert.equal(r.code, 0, r.stderr);
};
const sq = (s) => `'${s.replace(/'/g, "''")}'`;
const token = () => Buffer.from(rnd(32), 'hex').toString('base64url');

describe('mail', () => {
  test('a queued mail arrives as multipart text + HTML with its link on the public URL, values escaped', async () => {
    const to = `m1_${rnd()}@example.test`;
    const t = token();
    const before = await poolMetrics('mailer');
    await queue(`VALUES ('verify_email', ${sq(to)}, jsonb_build_object('token', ${sq(t)}, 'name', '<b>Eve & "co"</b>'))`);
    const m = await newestMail(to);
    assert.ok(m, `no mail for ${to}`);
    assert.equal(m.subject, 'Confirm your email address');
    assert.match(m.headers['content-type'][0], /^multipart\/alternative; boundary=/);
    assert.match(m.headers['message-id'][0], /^<[0-9a-f]{32}@/);
    assert.ok(m.headers.date, 'Date header');
    const link = extractLink(m, '/verify-email');
    assert.ok(link, `no link in ${m.text}`);
    assert.equal(link.origin, `http://127.0.0.1:${PORT_BASE}`);
    assert.equal(link.searchParams.get('token'), t);
    assert.ok(m.html.includes('&lt;b&gt;Eve &amp; &quot;co&quot;&lt;/b&gt;'), m.html);
    assert.ok(!m.html.includes('<b>Eve'), 'the name reached the HTML unescaped');
    assert.ok(m.html.includes(`href="http://127.0.0.1:${PORT_BASE}/verify-email?token=${t}"`), m.html);
    // the row is gone once sent; the counters moved
    const rows = await psql(`SELECT count(*) FROM mail_outbox WHERE to_addr = ${sq(to)}`);
    assert.equal(rows.stdout.trim(), '0');
    const now = await until(async () => {
      const x = await poolMetrics('mailer');
      return metric(x, 'th_mail_sent_total') > metric(before, 'th_mail_sent_total') ? x : null;
    }, { timeoutMs: 5000 }) || await poolMetrics('mailer');
    assert.ok(metric(now, 'th_mail_sent_total') > metric(before, 'th_mail_sent_total'), JSON.stringify(now));
    assert.ok('th_mail_queue_depth' in now, JSON.stringify(now));
  });

  test('a mail that cannot be rendered fails at once, is counted, and keeps no params', async () => {
    const to = `m2_${rnd()}@example.test`;
    const before = await poolMetrics('mailer');
    await queue(`VALUES ('verify_email', ${sq(to)}, '{"name": "no token"}')`);
    const row = await until(async () => {
      const r = await psql(`SELECT attempts, params::text, last_error FROM mail_outbox WHERE to_addr = ${sq(to)} AND failed_at IS NOT NULL`);
      return r.stdout.trim() || null;
    }, { timeoutMs: 15000 });
    assert.ok(row, 'not marked failed');
    const [attempts, params] = row.split('|');
    assert.equal(attempts, '1');
    assert.equal(params, '{}');
    const now = await poolMetrics('mailer');
    assert.ok(metric(now, 'th_mail_failed_total') > metric(before, 'th_mail_failed_total'));
    assert.equal(mailsFor(to).length, 0);
  });

  test('with the SMTP server down the mail is retried with backoff and delivered once it is back', async () => {
    const pid = readPid('run/smtp-sink.pid');
    process.kill(pid, 'SIGTERM');
    assert.ok(await waitGone(pid), 'the sink did not stop');
    const to = `m3_${rnd()}@example.test`;
    const before = await poolMetrics('mailer');
    try {
      await queue(`VALUES ('password_reset', ${sq(to)}, jsonb_build_object('token', ${sq(token())}))`);
      // two failed attempts at least (TH_MAIL_RETRY_BASE_MS=400 in tests/integration/run)
      const attempts = await until(async () => {
        const r = await psql(`SELECT attempts, next_at > now() FROM mail_outbox WHERE to_addr = ${sq(to)}`);
        const [a, waits] = r.stdout.trim().split('|');
        return Number(a) >= 2 && waits === 't' ? Number(a) : null;
      }, { timeoutMs: 20000 });
      assert.ok(attempts >= 2, 'not retried');
      const mid = await poolMetrics('mailer');
      assert.ok(metric(mid, 'th_mail_retried_total') >= metric(before, 'th_mail_retried_total') + 2);
      assert.equal(mailsFor(to).length, 0);
    } finally {
      await stackUp(); // the sink comes back (the rest is running)
    }
    const m = await newestMail(to, { timeoutMs: 20000 });
    assert.ok(m, 'not delivered after the sink came back');
    assert.equal(m.subject, 'Reset your Townhall password');
    assert.equal(mailsFor(to).length, 1);
  });

  test('two senders at once: every mail goes out exactly once', async () => {
    const second = spawn(path.join(BIN_DIR, 'th-mailer'), [], {
      env: {
        PATH: process.env.PATH,
        TH_VAR_DIR: VAR_DIR,
        TH_DB_CONNINFO: `host=127.0.0.1 port=${PORT_BASE + 1} dbname=townhall user=townhall passfile=${path.join(VAR_DIR, 'keys', 'pgpass')}`,
        TH_SMTP_URL: `smtp://127.0.0.1:${PORT_BASE + 36}`,
        TH_SMTP_TLS: 'none',
        TH_PUBLIC_URL: `http://127.0.0.1:${PORT_BASE}`,
        TH_MAILER_ID: 'mailer-test-second',
        TH_MAIL_BATCH: '3',
        TH_MAIL_POLL_MS: '100',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    second.stdout.on('data', (d) => { log += d; });
    second.stderr.on('data', (d) => { log += d; });
    after(() => { if (second.exitCode === null) second.kill('SIGTERM'); });
    try {
      assert.ok(await until(() => /started/.test(log), { timeoutMs: 10000 }), `second mailer: ${log}`);
      const tag = rnd();
      const n = 200;
      await queue(`SELECT 'verify_email', 'm4_${tag}_' || i || '@example.test', jsonb_build_object('token', md5(i::text || '${tag}'))
        FROM generate_series(1, ${n}) i`);
      const addrs = Array.from({ length: n }, (_, i) => `m4_${tag}_${i + 1}@example.test`);
      const done = await until(async () => {
        const r = await psql(`SELECT count(*) FROM mail_outbox WHERE to_addr LIKE 'm4_${tag}_%'`);
        return r.stdout.trim() === '0';
      }, { timeoutMs: 30000 });
      assert.ok(done, 'not all sent');
      const counts = addrs.map((a) => mailsFor(a).length);
      assert.deepEqual(counts.filter((c) => c !== 1), [], `mails per address: ${counts}`);
      const bySecond = (log.match(/mailer: mail \d+ \(verify_email\) sent/g) || []).length;
      assert.ok(bySecond > 0 && bySecond < n, `the second sender sent ${bySecond} of ${n}`);
    } finally {
      second.kill('SIGTERM');
      await until(() => second.exitCode !== null || second.signalCode !== null, { timeoutMs: 10000 });
    }
    assert.equal(second.exitCode, 0, log);
  });

  test('/metrics/mailer answers loopback callers only', async () => {
    const r = await request('GET', '/metrics/mailer');
    assert.equal(r.status, 200);
    assert.match(r.text, /th_mail_sent_total/);
  });
});

// A mailer of this test's own (the stack's is stopped meanwhile, so that no other sender takes
// the rows): the stack's database, the given SMTP settings.
function startMailer(env) {
  const p = spawn(path.join(BIN_DIR, 'th-mailer'), [], {
    env: {
      PATH: process.env.PATH,
      TH_DB_CONNINFO: `host=127.0.0.1 port=${PORT_BASE + 1} dbname=townhall user=townhall passfile=${path.join(VAR_DIR, 'keys', 'pgpass')}`,
      TH_PUBLIC_URL: `http://127.0.0.1:${PORT_BASE}`,
      TH_MAIL_POLL_MS: '100',
      TH_MAIL_RETRY_BASE_MS: '300',
      TH_SMTP_TIMEOUT_S: '10',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  p.log = '';
  p.stdout.on('data', (d) => { p.log += d; });
  p.stderr.on('data', (d) => { p.log += d; });
  p.stop = async () => {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    await until(() => p.exitCode !== null || p.signalCode !== null, { timeoutMs: 15000 });
  };
  return p;
}

describe('mail over STARTTLS with AUTH', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'th-smtp-tls-'));
  const port = PORT_BASE + 37;
  let sink;
  let stackMailer;

  after(async () => {
    if (sink && sink.exitCode === null) sink.kill('SIGTERM');
    await stackUp(); // the stack's mailer comes back
    rmSync(dir, { recursive: true, force: true });
  });

  const received = (to) => {
    let names = [];
    try { names = readdirSync(path.join(dir, 'mail')).filter((n) => n.endsWith('.eml')); } catch { /* none yet */ }
    return names.filter((n) => readFileSync(path.join(dir, 'mail', n), 'utf8').includes(`X-Envelope-To: <${to}>`)).length;
  };
  const rowOf = async (to) => {
    const r = await psql(`SELECT attempts, failed_at IS NOT NULL, coalesce(last_error, '') FROM mail_outbox WHERE to_addr = ${sq(to)}`);
    const [attempts, failed, err] = r.stdout.trim().split('|');
    return r.stdout.trim() ? { attempts: Number(attempts), failed: failed === 't', err } : null;
  };
  const base = () => ({
    TH_SMTP_URL: `smtp://127.0.0.1:${port}`, TH_SMTP_TLS: 'all', TH_SMTP_CA_FILE: path.join(dir, 'cert.pem'),
    TH_SMTP_USERNAME: 'mailer', TH_SMTP_PASSWORD_FILE: path.join(dir, 'pass'),
  });

  test('set-up: a TLS sink requiring AUTH; the stack\'s mailer stopped', async () => {
    const r = await runProgram('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')]);
    assert.equal(r.code, 0, r.stderr);
    writeFileSync(path.join(dir, 'pass'), 's3cret-smtp\n', { mode: 0o600 });
    writeFileSync(path.join(dir, 'wrong'), 'not-it\n', { mode: 0o600 });
    sink = spawn(process.execPath, [path.join(ROOT, 'scripts', 'smtp-sink.mjs')], {
      env: {
        PATH: process.env.PATH, TH_VAR_DIR: dir, TH_SMTP_SINK_PORT: String(port),
        TH_SMTP_SINK_TLS_KEY: path.join(dir, 'key.pem'), TH_SMTP_SINK_TLS_CERT: path.join(dir, 'cert.pem'),
        TH_SMTP_SINK_AUTH_USER: 'mailer', TH_SMTP_SINK_AUTH_PASSWORD_FILE: path.join(dir, 'pass'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    sink.stdout.on('data', (d) => { log += d; });
    sink.stderr.on('data', (d) => { log += d; });
    assert.ok(await until(() => /listening/.test(log), { timeoutMs: 10000 }), `sink: ${log}`);
    stackMailer = readPid('run/mailer.pid');
    process.kill(stackMailer, 'SIGTERM');
    assert.ok(await waitGone(stackMailer), 'the stack\'s mailer did not stop');
  });

  test('STARTTLS with the right credentials: delivered', async () => {
    const to = `tls1_${rnd()}@example.test`;
    const m = startMailer({ ...base(), TH_MAILER_ID: 'mailer-tls-1' });
    try {
      await queue(`VALUES ('password_reset', ${sq(to)}, jsonb_build_object('token', ${sq(token())}))`);
      assert.ok(await until(() => received(to) === 1, { timeoutMs: 15000 }), `not delivered over TLS: ${m.log}`);
      assert.equal(await rowOf(to), null);
    } finally { await m.stop(); }
  });

  test('a wrong password: the server\'s 535 fails the mail at once, counted, not retried', async () => {
    const to = `tls2_${rnd()}@example.test`;
    const m = startMailer({ ...base(), TH_SMTP_PASSWORD_FILE: path.join(dir, 'wrong'), TH_MAILER_ID: 'mailer-tls-2' });
    try {
      await queue(`VALUES ('password_reset', ${sq(to)}, jsonb_build_object('token', ${sq(token())}))`);
      const row = await until(async () => { const x = await rowOf(to); return x?.failed ? x : null; }, { timeoutMs: 15000 });
      assert.ok(row, `not failed: ${JSON.stringify(await rowOf(to))} ${m.log}`);
      assert.equal(row.attempts, 1);
      assert.match(row.err, /535/);
      assert.equal(received(to), 0);
    } finally { await m.stop(); }
  });

  test('TLS required but not offered (the plain sink): never sent in clear, retried', async () => {
    const to = `tls3_${rnd()}@example.test`;
    const m = startMailer({ ...base(), TH_SMTP_URL: `smtp://127.0.0.1:${PORT_BASE + 36}`, TH_MAILER_ID: 'mailer-tls-3' });
    try {
      await queue(`VALUES ('password_reset', ${sq(to)}, jsonb_build_object('token', ${sq(token())}))`);
      const row = await until(async () => { const x = await rowOf(to); return x && x.attempts >= 2 ? x : null; }, { timeoutMs: 15000 });
      assert.ok(row && !row.failed, `not retried: ${JSON.stringify(await rowOf(to))} ${m.log}`);
      assert.equal(mailsFor(to).length, 0, 'sent without TLS');
    } finally {
      await m.stop();
      await psql(`DELETE FROM mail_outbox WHERE to_addr = ${sq(to)}`);
    }
  });
});
