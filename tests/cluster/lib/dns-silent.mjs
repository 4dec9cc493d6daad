// A DNS server that does not answer (tests/cluster: "a resolver that drops queries"): it
// takes every UDP and TCP query on ADDRESS:53 and never replies, as a resolver that is
// overloaded or cut off behind a firewall that drops. Each query is logged (its name), so
// the step can tell that a process really asked it. Until SIGTERM.
//   node dns-silent.mjs ADDRESS
import dgram from 'node:dgram';
import net from 'node:net';

const address = process.argv[2];
if (!address) {
  process.stderr.write('usage: node dns-silent.mjs ADDRESS\n');
  process.exit(2);
}

// the question's name of a DNS message (after the 12-byte header), bounded
function qname(msg) {
  const labels = [];
  let i = 12;
  while (i < msg.length && msg[i] !== 0 && labels.length < 32) {
    const n = msg[i];
    if (n > 63 || i + 1 + n > msg.length) break;
    labels.push(msg.subarray(i + 1, i + 1 + n).toString('latin1').replace(/[^\x21-\x7e]/g, '?'));
    i += 1 + n;
  }
  return labels.join('.');
}

const udp = dgram.createSocket('udp4');
udp.on('message', (msg, from) => {
  process.stdout.write(`${new Date().toISOString()} udp query ${qname(msg)} from ${from.address} (dropped)\n`);
});
udp.bind(53, address);
// TCP: accepted and never answered (held until the client gives up)
const tcp = net.createServer((s) => {
  process.stdout.write(`${new Date().toISOString()} tcp connection from ${s.remoteAddress} (never answered)\n`);
  s.on('error', () => {});
});
tcp.listen(53, address);
const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
