// A minimal FastCGI client (one request per connection, responder role), to talk to a pool
// on TCP directly, without nginx or HAProxy: fcgiRequest({host, port, localAddress, params})
// -> {closed, stdout, status} where stdout is what the worker wrote (CGI headers + body),
// status the number of its Status: line, and closed true when the pool closed the connection
// without writing a byte (libfcgi refusing a caller not in FCGI_WEB_SERVER_ADDRS).
import net from 'node:net';

const VERSION = 1;
const BEGIN_REQUEST = 1;
const END_REQUEST = 3;
const PARAMS = 4;
const STDIN = 5;
const STDOUT = 6;

function record(type, content, id = 1) {
  const pad = (8 - (content.length % 8)) % 8;
  const h = Buffer.alloc(8);
  h.writeUInt8(VERSION, 0);
  h.writeUInt8(type, 1);
  h.writeUInt16BE(id, 2);
  h.writeUInt16BE(content.length, 4);
  h.writeUInt8(pad, 6);
  return Buffer.concat([h, content, Buffer.alloc(pad)]);
}

function nvLen(n) {
  if (n < 128) return Buffer.from([n]);
  const b = Buffer.alloc(4);
  b.writeUInt32BE((n | 0x80000000) >>> 0);
  return b;
}

function encodeParams(params) {
  const parts = [];
  for (const [k, v] of Object.entries(params)) {
    const kb = Buffer.from(k);
    const vb = Buffer.from(String(v));
    parts.push(nvLen(kb.length), nvLen(vb.length), kb, vb);
  }
  return Buffer.concat(parts);
}

export function fcgiRequest({
  host = '127.0.0.1', port, localAddress, params, timeoutMs = 5000,
}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port, localAddress });
    const chunks = [];
    let got = 0;
    const timer = setTimeout(() => sock.destroy(new Error(`FastCGI timeout after ${timeoutMs} ms`)), timeoutMs);
    sock.on('connect', () => {
      const begin = Buffer.alloc(8);
      begin.writeUInt16BE(1, 0); // FCGI_RESPONDER
      sock.write(Buffer.concat([
        record(BEGIN_REQUEST, begin),
        record(PARAMS, encodeParams(params)),
        record(PARAMS, Buffer.alloc(0)),
        record(STDIN, Buffer.alloc(0)),
      ]));
    });
    sock.on('data', (d) => { chunks.push(d); got += d.length; });
    sock.on('error', (e) => {
      clearTimeout(timer);
      // a reset without a byte is a refusal too
      if (got === 0 && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) resolve({ closed: true, stdout: '', status: 0 });
      else reject(e);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      const buf = Buffer.concat(chunks);
      if (buf.length === 0) { resolve({ closed: true, stdout: '', status: 0 }); return; }
      let out = '';
      let ended = false;
      for (let o = 0; o + 8 <= buf.length;) {
        const type = buf.readUInt8(o + 1);
        const len = buf.readUInt16BE(o + 4);
        const pad = buf.readUInt8(o + 6);
        if (type === STDOUT) out += buf.subarray(o + 8, o + 8 + len).toString('utf8');
        if (type === END_REQUEST) ended = true;
        o += 8 + len + pad;
      }
      const m = /^Status:\s*(\d+)/mi.exec(out);
      resolve({ closed: false, ended, stdout: out, status: m ? Number(m[1]) : 200 });
    });
  });
}

// The CGI parameters of a GET of urlPath (what nginx's fastcgi_params would send).
export function getParams(urlPath, remoteAddr = '127.0.0.1') {
  return {
    REQUEST_METHOD: 'GET', REQUEST_URI: urlPath, SCRIPT_NAME: urlPath, QUERY_STRING: '',
    SERVER_PROTOCOL: 'HTTP/1.1', GATEWAY_INTERFACE: 'CGI/1.1', REMOTE_ADDR: remoteAddr,
    SERVER_NAME: 'localhost', SERVER_PORT: '80', CONTENT_LENGTH: '',
  };
}
