// Small helpers shared by the integration tests: HTTP requests against the
// stack's nginx (port TH_PORT_BASE; or TH_TEST_BASE_URL, below), running repo scripts,
// reading pid files.
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const ROOT = process.env.TH_ROOT
  || path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const PORT_BASE = Number(process.env.TH_PORT_BASE || 8080);
export const VAR_DIR = process.env.TH_VAR_DIR || path.join(ROOT, 'var');
export const BIN_DIR = process.env.TH_BIN_DIR || path.join(ROOT, 'build/bin');
// TH_TEST_BASE_URL (http://host:port): the files that allow it run against another entry
// than the local stack's nginx, e.g. the load balancer of tests/cluster. Every request and
// the MQTT WebSocket (lib/mqtt.mjs) go there; a loopback localAddress is dropped (it reaches
// only a local nginx: the per-address budgets see one client then); psql() and redis() of
// lib/stack.mjs refuse; a test that reads the local stack (its files, pids, database,
// Redis) or needs the settings tests/integration/run gives it skips itself with
// `{ skip: LOCAL_ONLY }`.
const REMOTE = process.env.TH_TEST_BASE_URL ? new URL(process.env.TH_TEST_BASE_URL) : null;
if (REMOTE && (REMOTE.protocol !== 'http:' || REMOTE.pathname !== '/')) {
  throw new Error(`TH_TEST_BASE_URL must be http://host[:port] (got ${process.env.TH_TEST_BASE_URL})`);
}
export const HTTP_HOST = REMOTE ? REMOTE.hostname : '127.0.0.1';
export const HTTP_PORT = REMOTE ? Number(REMOTE.port || 80) : PORT_BASE;
export const BASE_URL = `http://${HTTP_HOST}:${HTTP_PORT}`;
export const LOCAL_ONLY = REMOTE
  ? `needs the local stack (its files, processes, database, Redis or test settings): not through TH_TEST_BASE_URL=${BASE_URL}`
  : false;
export const APPS = ['auth', 'community', 'realtime', 'media'];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// request('GET', '/api/auth/health', { headers, body, localAddress, timeoutMs, host, port })
// body: string | Buffer | async iterable (streamed as it comes, with backpressure: chunked
// unless the headers give a Content-Length) | object (-> JSON). Content-Length is the
// body's size unless the headers give one (media.test.mjs declares sizes it never sends).
// host / port: another server than nginx (e.g. where an S3 redirect points).
// Resolves {status, headers, rawHeaders, body, text, json}: rawHeaders as received (a
// repeated header stays repeated), body the raw bytes, json the parsed body, or undefined
// when it is not JSON. Never follows redirects.
export function request(method, urlPath, opts = {}) {
  const {
    headers = {}, timeoutMs = 10000, host = HTTP_HOST, port = HTTP_PORT,
  } = opts;
  const localAddress = REMOTE && /^127\./.test(opts.localAddress ?? '') ? undefined : opts.localAddress;
  let body = opts.body;
  const hdrs = { ...headers };
  const streamed = body != null && typeof body[Symbol.asyncIterator] === 'function';
  if (body !== undefined && !streamed && !Buffer.isBuffer(body) && typeof body !== 'string') {
    body = JSON.stringify(body);
    hdrs['content-type'] ??= 'application/json';
  }
  if (body !== undefined && !streamed) hdrs['content-length'] ??= Buffer.byteLength(body);
  return new Promise((resolve, reject) => {
    let done = false;
    const fail = (e) => { if (!done) { done = true; reject(e); } };
    const req = http.request({
      host, port, method, path: urlPath, headers: hdrs, localAddress, agent: false, timeout: timeoutMs,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', fail);
      res.on('end', () => {
        if (done) return;
        done = true;
        const b = Buffer.concat(chunks);
        const text = b.toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({
          status: res.statusCode, headers: res.headers, rawHeaders: res.rawHeaders, body: b, text, json,
        });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${urlPath}`)));
    // A server may answer (e.g. 413) and close before the whole body is written:
    // write errors after that are not the test's concern.
    req.on('error', fail);
    if (!streamed) {
      if (body !== undefined) req.write(body);
      req.end();
      return;
    }
    (async () => {
      try {
        for await (const chunk of body) {
          if (done || req.destroyed) return;
          if (!req.write(chunk)) await new Promise((r) => { req.once('drain', r); req.once('close', r); });
        }
        req.end();
      } catch (e) { req.destroy(e); }
    })();
  });
}

export const get = (p, o) => request('GET', p, o);
export const post = (p, body, o = {}) => request('POST', p, { ...o, body });

// Run any program, with the test's environment and ROOT as the working directory.
// Never rejects: resolves {code, stdout, stderr}.
export function runProgram(file, args = [], { timeoutMs = 120000, env = {} } = {}) {
  return new Promise((resolve) => {
    execFile(file, args, {
      cwd: ROOT, env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 16 << 20,
    }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : (err.signal || 'error')) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

// wrk with these arguments (its own -d bounds it) -> {code, out}: stdout and stderr together.
export const wrk = (args) => runProgram('wrk', args, { timeoutMs: 600000 })
  .then((r) => ({ code: r.code, out: r.stdout + r.stderr }));

// A wrk run that went clean: it exited 0, completed requests, all 2xx/3xx, no socket error.
// -> {requests, out}
export function assertWrkClean({ code, out }) {
  assert.equal(code, 0, out);
  const m = /(\d+) requests in/.exec(out);
  assert.ok(m && Number(m[1]) > 0, `no requests completed:\n${out}`);
  assert.doesNotMatch(out, /Non-2xx or 3xx responses/, out);
  assert.doesNotMatch(out, /Socket errors/, out);
  return { requests: Number(m[1]), out };
}

// Run a repo script (path relative to ROOT), same contract as runProgram().
export const run = (script, args = [], o = {}) => runProgram(path.join(ROOT, script), args, o);

export function readPid(file) {
  const p = path.isAbsolute(file) ? file : path.join(VAR_DIR, file);
  const n = parseInt(readFileSync(p, 'utf8').split('\n')[0].trim(), 10);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`no pid in ${p}`);
  return n;
}

export function isAlive(pid) {
  try { process.kill(pid, 0); } catch (e) { return e.code === 'EPERM'; }
  // a zombie still answers kill(0): treat it as gone
  try { return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; }
}

export async function waitGone(pid, timeoutMs = 15000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (!isAlive(pid)) return true;
    await sleep(50);
  }
  return !isAlive(pid);
}

// Direct children of a process (from /proc), e.g. the workers of a multiwatch.
export function childrenOf(ppid) {
  const out = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat;
    try { stat = readFileSync(`/proc/${d}/stat`, 'utf8'); } catch { continue; }
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(rest[1]) === ppid && rest[0] !== 'Z') out.push(Number(d));
  }
  return out.sort((a, b) => a - b);
}

// Poll fn() until it returns a truthy value or the time is up; returns the last value.
export async function until(fn, { timeoutMs = 15000, intervalMs = 200 } = {}) {
  const end = Date.now() + timeoutMs;
  let v;
  for (;;) {
    try { v = await fn(); } catch (e) { v = undefined; }
    if (v || Date.now() >= end) return v;
    await sleep(intervalMs);
  }
}

// Prometheus text -> [{name, labels, value}]
export function parseProm(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    let l;
    while ((l = re.exec(m[2] || '')) !== null) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    out.push({ name: m[1], labels, value: Number(m[3]), line });
  }
  return out;
}
