// An S3-compatible object store on loopback for the tests: s3rver (npm, devDependency),
// in this process, on 127.0.0.1:(TH_PORT_BASE + 6) unless told otherwise, over a temporary
// directory that stop() removes. Credentials are s3rver's fixed pair S3RVER / S3RVER;
// it checks AWS Signature V4 (header and presigned query) against them.
//
//   const s3 = await startS3({ bucket: 'th-media' });
//   s3.endpoint   // http://127.0.0.1:<port>  (path style: /<bucket>/<key>)
//   s3.vhostEndpoint  // http://s3.localhost:<port> (virtual-host style: <bucket>.s3.localhost)
//   await s3.listKeys()   // keys in the bucket, from s3rver's directory
//   await s3.stop();
import { mkdtempSync, rmSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PORT_BASE } from './http.mjs';

export const S3_ACCESS_KEY = 'S3RVER';
export const S3_SECRET_KEY = 'S3RVER';
export const S3_REGION = 'us-east-1';

// Object keys in a bucket of the s3rver keeping its files in dir (it stores
// each object as <key>._S3rver_object), sorted.
export function bucketKeys(dir, bucket) {
  const out = [];
  const walk = (d, rel) => {
    let names;
    try { names = readdirSync(d); } catch { return; }
    for (const n of names) {
      const p = path.join(d, n);
      const r = rel ? `${rel}/${n}` : n;
      if (statSync(p).isDirectory()) walk(p, r);
      else if (n.endsWith('._S3rver_object')) out.push(r.slice(0, -'._S3rver_object'.length));
    }
  };
  walk(path.join(dir, bucket), '');
  return out.sort();
}

export async function startS3({ port = PORT_BASE + 6, address = '127.0.0.1', bucket = 'th-media', timeoutMs = 10000 } = {}) {
  const { default: S3rver } = await import('s3rver');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'th-s3rver.'));
  const server = new S3rver({
    port, address, directory: dir, silent: true, resetOnClose: true,
    // virtual-host style: <bucket>.s3.localhost names the bucket (curl resolves *.localhost
    // to loopback by itself); path style: http://127.0.0.1:<port>/<bucket>/<key>
    serviceEndpoint: 'localhost',
    configureBuckets: [{ name: bucket }],
  });
  let timer;
  try {
    await Promise.race([
      server.run(),
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`s3rver did not start within ${timeoutMs} ms`)), timeoutMs); }),
    ]);
  } catch (e) {
    try { await server.close(); } catch { /* not listening */ }
    rmSync(dir, { recursive: true, force: true });
    throw e;
  } finally {
    clearTimeout(timer);
  }
  let stopped = false;
  return {
    endpoint: `http://${address}:${port}`,
    // for virtual-host-style addressing: the client puts the bucket in front of the host
    vhostEndpoint: `http://s3.localhost:${port}`,
    host: address,
    port,
    bucket,
    dir,
    accessKey: S3_ACCESS_KEY,
    secretKey: S3_SECRET_KEY,
    region: S3_REGION,
    listKeys() { return bucketKeys(dir, bucket); },
    async stop() {
      if (stopped) return;
      stopped = true;
      let timer2;
      try {
        await Promise.race([
          server.close(),
          new Promise((r) => { timer2 = setTimeout(r, timeoutMs); }),
        ]);
      } catch { /* already closed */ } finally {
        clearTimeout(timer2);
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

// The media app's settings for this store (scripts/fcgi-pool restart media with them):
// path-style addressing at the loopback endpoint, or virtual-host style (vhost: true) at
// <bucket>.s3.localhost.
export function mediaS3Env(s3, { vhost = false } = {}) {
  return {
    TH_MEDIA_STORAGE: 's3',
    TH_S3_ENDPOINT: vhost ? s3.vhostEndpoint : s3.endpoint,
    TH_S3_PATH_STYLE: vhost ? '0' : '1',
    TH_S3_BUCKET: s3.bucket,
    TH_S3_REGION: s3.region,
    TH_S3_ACCESS_KEY: s3.accessKey,
    TH_S3_SECRET_KEY: s3.secretKey,
  };
}
