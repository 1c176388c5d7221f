import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { KpCoordError } from '../errors.js';

// How every gRPC plane (control, data, health) is protected. Either mutual TLS — each side shows a
// certificate issued by the run's CA and checks the other's, with the worker token still on top —
// or plaintext, which must be asked for and is then allowed only on loopback addresses unless a
// second flag says otherwise. The files are read once at start (a restarted process picks up
// rotated certificates, as cert-manager rotates a Secret).
//
// Peers reach each other by pod IP, which no certificate issued in advance can name, so clients
// check the server's certificate for one fixed DNS name (`serverName`, default "kp-coord", sent as
// grpc's ssl_target_name_override) instead of the address they dialled: the CA is private to the
// run, and only holders of its certificates can serve that name.

export class TlsConfigError extends KpCoordError {}

/** File names in a --tls-dir: those of a kubernetes.io/tls Secret as cert-manager writes it. */
export const TLS_DIR_FILES = { ca: 'ca.crt', cert: 'tls.crt', key: 'tls.key' } as const;
export const DEFAULT_TLS_SERVER_NAME = 'kp-coord';

export type TransportSecurity =
  | {
      readonly kind: 'mtls';
      readonly ca: Buffer;
      readonly cert: Buffer;
      readonly key: Buffer;
      readonly serverName: string;
      /** Where the material came from (for logs and errors). */
      readonly files: { readonly ca: string; readonly cert: string; readonly key: string };
    }
  | { readonly kind: 'plaintext' };

export const PLAINTEXT: TransportSecurity = { kind: 'plaintext' };

export interface TlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/** The three files of a --tls-dir. */
export function tlsDirFiles(dir: string): TlsFiles {
  return { ca: join(dir, TLS_DIR_FILES.ca), cert: join(dir, TLS_DIR_FILES.cert), key: join(dir, TLS_DIR_FILES.key) };
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (cause) {
    throw new TlsConfigError(`${file}: cannot read the ${what}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause });
  }
}

function parseCert(file: string, pem: Buffer, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (cause) {
    throw new TlsConfigError(`${file}: not a PEM certificate (${what}): ${(cause as Error).message}`, { cause });
  }
}

/**
 * Read and check the CA, certificate and key: each parses, the key belongs to the certificate,
 * the CA issued it, and it is valid now. Every error names the file.
 */
export function loadMutualTls(files: TlsFiles, serverName = DEFAULT_TLS_SERVER_NAME, now = new Date()): TransportSecurity {
  const ca = readPem(files.ca, 'CA certificate');
  const cert = readPem(files.cert, 'certificate');
  const key = readPem(files.key, 'private key');
  const caX509 = parseCert(files.ca, ca, 'CA');
  const certX509 = parseCert(files.cert, cert, 'certificate');
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (cause) {
    throw new TlsConfigError(`${files.key}: not a PEM private key: ${(cause as Error).message}`, { cause });
  }
  if (!certX509.checkPrivateKey(privateKey)) throw new TlsConfigError(`${files.key}: this key does not belong to the certificate ${files.cert}`);
  if (!certX509.checkIssued(caX509) || !certX509.verify(caX509.publicKey)) {
    throw new TlsConfigError(`${files.cert}: not issued by the CA in ${files.ca} (subject "${certX509.subject}", issuer "${certX509.issuer}")`);
  }
  for (const [file, x] of [[files.ca, caX509], [files.cert, certX509]] as const) {
    if (now < new Date(x.validFrom) || now > new Date(x.validTo)) throw new TlsConfigError(`${file}: not valid now (valid from ${x.validFrom} to ${x.validTo})`);
  }
  if (!certX509.checkHost(serverName)) {
    throw new TlsConfigError(`${files.cert}: does not name "${serverName}" (subjectAltName ${certX509.subjectAltName ?? 'none'}); peers check that name (--tls-server-name)`);
  }
  return { kind: 'mtls', ca, cert, key, serverName, files };
}

/** Whether `host` (a name or address, no port) is a loopback address. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/u, '$1').toLowerCase();
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1';
  return false;
}

/** The host part of `host:port` (IPv6 in brackets). */
export function hostOf(address: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/u.exec(address);
  if (m) return m[1]!;
  const i = address.lastIndexOf(':');
  return i > 0 && address.indexOf(':') === i ? address.slice(0, i) : address;
}

export interface SecurityChoice {
  readonly tls: TlsFiles | null;
  readonly serverName?: string;
  readonly insecurePlaintext: boolean;
  readonly allowPlaintextNonLoopback: boolean;
}

/**
 * The planes' security from what the user asked for. `addresses` are every host:port this
 * process listens on or dials (as given): plaintext needs all of them on loopback, or the second
 * flag. Errors say which flag to use.
 */
export function chooseTransportSecurity(c: SecurityChoice, addresses: readonly string[]): TransportSecurity {
  if (c.tls && c.insecurePlaintext) throw new TlsConfigError('--insecure-plaintext and TLS files together: choose one');
  if (c.tls) return loadMutualTls(c.tls, c.serverName);
  if (!c.insecurePlaintext) {
    throw new TlsConfigError('no TLS configured: give --tls-dir DIR (ca.crt, tls.crt, tls.key) or --tls-ca/--tls-cert/--tls-key; or --insecure-plaintext, on loopback addresses only');
  }
  const exposed = addresses.filter((a) => !isLoopbackHost(hostOf(a)));
  if (exposed.length > 0 && !c.allowPlaintextNonLoopback) {
    throw new TlsConfigError(`--insecure-plaintext on a non-loopback address (${exposed.join(', ')}): the token and all weights would cross the network in clear text; use TLS, or add --allow-plaintext-non-loopback if you really mean it`);
  }
  return { kind: 'plaintext' };
}

/** Server side: with mTLS, clients must show a certificate issued by the CA. */
export function serverCredentials(s: TransportSecurity): grpc.ServerCredentials {
  if (s.kind === 'plaintext') return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(s.ca, [{ private_key: s.key, cert_chain: s.cert }], true);
}

/** Client side: the CA to trust, this process's certificate, and the channel options that go with them. */
export function channelCredentials(s: TransportSecurity): { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions } {
  if (s.kind === 'plaintext') return { credentials: grpc.credentials.createInsecure(), options: {} };
  return {
    credentials: grpc.credentials.createSsl(s.ca, s.key, s.cert),
    options: { 'grpc.ssl_target_name_override': s.serverName, 'grpc.default_authority': s.serverName },
  };
}
