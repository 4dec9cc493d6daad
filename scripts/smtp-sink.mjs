#!/usr/bin/env node
// The development stack's SMTP sink (scripts/stack): every mail it receives is written to
// $TH_VAR_DIR/mail/ as one RFC 5322 .eml file (the bytes as received, after a Return-Path and
// an X-Envelope-To line), so tests and developers can read the links.  Loopback only, no
// authentication, no STARTTLS (th-mailer talks to it with TH_SMTP_TLS=none).
// Env: TH_SMTP_SINK_PORT (required), TH_VAR_DIR (required), TH_SMTP_SINK_MAX_BYTES (1 MiB).
// Tests of the mailer's TLS and AUTH start another instance with TH_SMTP_SINK_TLS_KEY and
// TH_SMTP_SINK_TLS_CERT (PEM files: STARTTLS offered) and TH_SMTP_SINK_AUTH_USER with
// TH_SMTP_SINK_AUTH_PASSWORD_FILE (AUTH PLAIN/LOGIN required, only after STARTTLS).
import { SMTPServer } from 'smtp-server';
import { mkdirSync, writeFileSync, renameSync, readFileSync } from 'node:fs';
import { timingSafeEqual } from 'node:crypto';
import path from 'node:path';

const port = Number(process.env.TH_SMTP_SINK_PORT);
const varDir = process.env.TH_VAR_DIR;
const maxBytes = Number(process.env.TH_SMTP_SINK_MAX_BYTES || 1024 * 1024);
if (!port || !varDir) {
  console.error('smtp-sink: TH_SMTP_SINK_PORT and TH_VAR_DIR are required');
  process.exit(2);
}
const dir = path.join(varDir, 'mail');
mkdirSync(dir, { recursive: true });
let seq = 0;

// one header line per envelope address; an address with CR/LF never reaches a file
const clean = (s) => String(s).replace(/[\r\n]/g, '');

const tlsKey = process.env.TH_SMTP_SINK_TLS_KEY;
const tlsCert = process.env.TH_SMTP_SINK_TLS_CERT;
const authUser = process.env.TH_SMTP_SINK_AUTH_USER;
const authPass = authUser ? readFileSync(process.env.TH_SMTP_SINK_AUTH_PASSWORD_FILE, 'utf8').trim() : '';
const same = (a, b) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

const server = new SMTPServer({
  name: 'townhall-sink',
  banner: 'townhall development sink',
  disabledCommands: [...(tlsKey ? [] : ['STARTTLS']), ...(authUser ? [] : ['AUTH'])],
  ...(tlsKey ? { key: readFileSync(tlsKey), cert: readFileSync(tlsCert) } : {}),
  authMethods: ['PLAIN', 'LOGIN'],
  authOptional: !authUser,
  allowInsecureAuth: false,
  onAuth(auth, session, cb) {
    if (authUser && same(String(auth.username), authUser) && same(String(auth.password), authPass)) return cb(null, { user: authUser });
    const err = new Error('invalid username or password');
    err.responseCode = 535;
    return cb(err);
  },
  // no reverse DNS of the client (127.0.0.1): it costs ~100 ms a mail on hosts without a resolver
  disableReverseLookup: true,
  closeTimeout: 1000,
  size: maxBytes,
  logger: false,
  onData(stream, session, done) {
    const chunks = [];
    let n = 0;
    stream.on('data', (c) => { n += c.length; if (n <= maxBytes) chunks.push(c); });
    stream.on('end', () => {
      if (stream.sizeExceeded || n > maxBytes) {
        const err = new Error('message too large');
        err.responseCode = 552;
        return done(err);
      }
      const head = `Return-Path: <${clean(session.envelope.mailFrom.address)}>\r\n`
        + session.envelope.rcptTo.map((r) => `X-Envelope-To: <${clean(r.address)}>\r\n`).join('');
      const name = `${Date.now()}-${process.pid}-${String(++seq).padStart(6, '0')}.eml`;
      const tmp = path.join(dir, `.${name}.tmp`);
      try {
        // written whole, then renamed: a reader never sees half a mail
        writeFileSync(tmp, Buffer.concat([Buffer.from(head), ...chunks]), { mode: 0o640 });
        renameSync(tmp, path.join(dir, name));
      } catch (e) {
        console.error(`smtp-sink: cannot write ${name}: ${e.message}`);
        const err = new Error('cannot store the message');
        err.responseCode = 451;
        return done(err);
      }
      console.log(`smtp-sink: ${name} for ${session.envelope.rcptTo.map((r) => clean(r.address)).join(',')}`);
      return done();
    });
  },
});
server.on('error', (e) => console.error(`smtp-sink: ${e.message}`));
server.listen(port, '127.0.0.1', () => console.log(`smtp-sink: listening on 127.0.0.1:${port}, writing to ${dir}`));
// Clients keep their connection open between mails (th-mailer does): close() would wait for
// them, so stop within a second. A mail is on disk before it is acknowledged: one cut short
// here was never acknowledged, and its sender sends it again.
const stop = () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
