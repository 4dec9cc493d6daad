// The mails the stack's SMTP sink received (scripts/smtp-sink.mjs writes each one to
// $TH_VAR_DIR/mail/<ms>-<pid>-<seq>.eml): find the newest for an address, decode its parts,
// extract a link.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { VAR_DIR, until } from './http.mjs';

export const MAIL_DIR = path.join(VAR_DIR, 'mail');

// RFC 5322 text -> {headers: {lower-name: [values]}, body}; folded lines unfolded
export function parseMessage(text) {
  const cut = text.indexOf('\r\n\r\n');
  const head = cut < 0 ? text : text.slice(0, cut);
  const body = cut < 0 ? '' : text.slice(cut + 4);
  const headers = {};
  for (const line of head.replace(/\r\n[ \t]/g, ' ').split('\r\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const k = line.slice(0, i).toLowerCase();
    (headers[k] ||= []).push(line.slice(i + 1).trim());
  }
  return { headers, body };
}

// RFC 2047 encoded words (B and Q) of a header value, decoded
export const decodeWords = (v) => v.replace(/\s*=\?([^?]+)\?([BbQq])\?([^?]*)\?=\s*/g, (_, cs, enc, t) => (
  enc.toUpperCase() === 'B' ? Buffer.from(t, 'base64').toString('utf8')
    : Buffer.from(t.replace(/_/g, ' ').replace(/=([0-9A-F]{2})/gi, (m, h) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8')));

function decodePart(headers, body) {
  const cte = (headers['content-transfer-encoding']?.[0] || '7bit').toLowerCase();
  if (cte === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  if (cte === 'quoted-printable') {
    return Buffer.from(body.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/gi, (m, h) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8');
  }
  return body;
}

// One .eml file -> {file, raw, headers, to, subject, text, html}
export function readMail(file) {
  const raw = readFileSync(file, 'utf8');
  const { headers, body } = parseMessage(raw);
  const out = {
    file, raw, headers, to: headers['x-envelope-to'] || headers.to || [], subject: decodeWords(headers.subject?.[0] || ''),
  };
  const ct = headers['content-type']?.[0] || 'text/plain';
  const b = /boundary="?([^";]+)"?/i.exec(ct);
  if (b) {
    for (const chunk of body.split(`--${b[1]}`).slice(1)) {
      if (chunk.startsWith('--')) break;
      const p = parseMessage(chunk.replace(/^\r\n/, ''));
      const type = (p.headers['content-type']?.[0] || '').toLowerCase();
      if (type.startsWith('text/plain')) out.text = decodePart(p.headers, p.body);
      else if (type.startsWith('text/html')) out.html = decodePart(p.headers, p.body);
    }
  } else {
    out.text = decodePart(headers, body);
  }
  return out;
}

// every mail received for address (envelope recipient), oldest first
export function mailsFor(address) {
  let names;
  try { names = readdirSync(MAIL_DIR).filter((n) => n.endsWith('.eml')).sort(); } catch { return []; }
  const want = `<${address.toLowerCase()}>`;
  return names.map((n) => readMail(path.join(MAIL_DIR, n)))
    .filter((m) => m.to.some((t) => t.toLowerCase() === want));
}

// The newest mail for address once there are more than `after` of them (wait up to
// timeoutMs), or undefined. filter(mail): only mails it accepts count.
export async function newestMail(address, { after = 0, timeoutMs = 20000, filter = () => true } = {}) {
  return until(() => {
    const all = mailsFor(address).filter(filter);
    return all.length > after ? all[all.length - 1] : undefined;
  }, { timeoutMs, intervalMs: 150 });
}

// The first link of the mail's text part whose path starts with pathPrefix, as a URL, or
// undefined
export function extractLink(mail, pathPrefix) {
  for (const m of (mail.text || '').matchAll(/https?:\/\/[^\s<>"]+/g)) {
    const u = new URL(m[0]);
    if (u.pathname.startsWith(pathPrefix)) return u;
  }
  return undefined;
}

// the token of the mail's link under pathPrefix
export function linkToken(mail, pathPrefix) {
  return extractLink(mail, pathPrefix)?.searchParams.get('token') ?? undefined;
}
