import { connect as tcpConnect } from 'node:net';
import { EventError } from '../../shared/errors.js';

// A NATS server speaks first: on every new connection it sends one `INFO {...}` line (also when it
// requires TLS, unless configured for a TLS handshake first). nats.js 2.x waits for that line
// without a socket timeout of its own, and its connect timeout rejects without closing the socket
// (the transport's close is a no-op before the handshake): against a service that is not NATS
// (the monitoring port, an HTTP proxy) the process never exits. So kp-coord asks first, on a socket
// it owns and always destroys.

const INFO = Buffer.from('INFO ');

/** host and port of a NATS URL (`nats://h:p`, `tls://h:p`, `h:p`, `h`; default port 4222). */
export function natsHostPort(url: string): { host: string; port: number } {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//iu.test(url) ? url : `nats://${url}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch (cause) {
    throw new EventError(`${url}: not a NATS URL (expected nats://host:port)`, { cause });
  }
  return { host: u.hostname.replace(/^\[(.*)\]$/u, '$1'), port: u.port === '' ? 4222 : Number(u.port) };
}

/** Resolves once `url` answers like a NATS server; rejects with EventError naming what it found. */
export function probeNatsServer(url: string, timeoutMs: number): Promise<void> {
  if (url.includes(',')) return Promise.resolve(); // a server list: nats.js tries them in turn
  const { host, port } = natsHostPort(url);
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host, port });
    let got = Buffer.alloc(0);
    const finish = (err: EventError | null) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => finish(new EventError(`${url} is not a NATS server: it sent no INFO line within ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', (e) => finish(new EventError(`cannot reach NATS at ${url}: ${e.message}`, { cause: e })));
    socket.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length < INFO.length) return;
      if (got.subarray(0, INFO.length).equals(INFO)) finish(null);
      else finish(new EventError(`${url} is not a NATS server: it answered ${JSON.stringify(got.subarray(0, 40).toString('latin1'))}`));
    });
    socket.on('end', () => finish(new EventError(`${url} closed the connection without a NATS INFO line`)));
  });
}
