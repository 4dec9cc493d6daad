// wrk's text output -> numbers (milliseconds, requests per second).

const UNITS = { us: 0.001, ms: 1, s: 1000, m: 60000 };

export function ms(v) {
  const m = /^([0-9.]+)(us|ms|s|m)$/.exec(v.trim());
  if (!m) return NaN;
  return Number(m[1]) * UNITS[m[2]];
}

// {rps, requests, errors, latency: {p50, p75, p90, p99}} from `wrk --latency` output
export function parseWrk(text) {
  const out = { rps: NaN, requests: 0, errors: 0, latency: {} };
  for (const line of text.split('\n')) {
    let m;
    if ((m = /^Requests\/sec:\s+([0-9.]+)/.exec(line))) out.rps = Number(m[1]);
    // a script's done() may print wrk's own count of bytes read per second
    else if ((m = /^bytes_per_sec\s+([0-9.]+)/.exec(line))) out.bytes_per_sec = Number(m[1]);
    else if ((m = /^\s*(\d+) requests in /.exec(line))) out.requests = Number(m[1]);
    else if ((m = /^\s+(50|75|90|99)%\s+(\S+)/.exec(line))) out.latency[`p${m[1]}`] = ms(m[2]);
    else if ((m = /Non-2xx or 3xx responses:\s+(\d+)/.exec(line))) out.errors += Number(m[1]);
    else if ((m = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(line))) {
      out.errors += Number(m[1]) + Number(m[2]) + Number(m[3]) + Number(m[4]);
    }
  }
  return out;
}

export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const h = Math.floor(v.length / 2);
  return v.length % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}
