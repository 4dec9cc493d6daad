// A TCP proxy on 127.0.0.1 between the pools and a server, that a test can switch to
// "silent": every connection stays open, every byte it receives is read and dropped, nothing
// is answered and nothing is closed — a primary cut off by the network (or a middlebox that
// swallows), not a primary that died. The kernel still acknowledges every segment, so TCP
// timeouts (tcp_user_timeout, keepalives) see a healthy peer: only a client-side deadline
// ends the wait.
//
// A connection that was silenced stays silent when the proxy forwards again (the bytes it
// dropped left the protocol in an unknown state); new connections are forwarded.
import net from 'node:net';

export async function tcpProxy({ listenPort, targetPort, targetHost = '127.0.0.1' }) {
  let silent = false;
  const conns = new Set();

  const server = net.createServer((client) => {
    const c = { client, upstream: null, silenced: silent };
    conns.add(c);
    const drop = () => {}; // silenced: read and forget
    const close = () => {
      conns.delete(c);
      client.destroy();
      c.upstream?.destroy();
    };
    client.on('error', close);
    client.on('close', close);
    if (c.silenced) { client.on('data', drop); return; }
    const up = net.connect({ host: targetHost, port: targetPort });
    c.upstream = up;
    up.on('error', close);
    up.on('close', () => { if (!c.silenced) close(); });
    client.on('data', (d) => { if (!c.silenced) up.write(d); });
    up.on('data', (d) => { if (!c.silenced) client.write(d); });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenPort, '127.0.0.1', resolve);
  });

  return {
    port: listenPort,
    // Silence every open connection and every new one.
    silence() {
      silent = true;
      for (const c of conns) c.silenced = true;
    },
    // Forward new connections again (silenced ones stay silent until their client closes).
    forward() { silent = false; },
    // How many client connections are open now (silenced ones included).
    open: () => conns.size,
    async close() {
      for (const c of conns) { c.client.destroy(); c.upstream?.destroy(); }
      conns.clear();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
