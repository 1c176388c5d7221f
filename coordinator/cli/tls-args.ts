import type { Argv } from 'yargs';
import {
  chooseTransportSecurity, DEFAULT_TLS_SERVER_NAME, hostOf, isLoopbackHost, tlsDirFiles, type TlsFiles, type TransportSecurity,
} from '../../shared/tls/transport-security.js';

// The flags that choose how a command's gRPC planes are protected (shared/tls/transport-security.ts).
// Combination mistakes are usage errors (exit 2, checked by yargs); unreadable or mismatched files
// are input errors (exit 1, naming the file).

export interface TlsArgs {
  readonly 'tls-dir'?: string | undefined;
  readonly 'tls-ca'?: string | undefined;
  readonly 'tls-cert'?: string | undefined;
  readonly 'tls-key'?: string | undefined;
  readonly 'tls-server-name': string;
  readonly 'insecure-plaintext': boolean;
  readonly 'allow-plaintext-non-loopback': boolean;
}

export function withTlsOptions<T>(y: Argv<T>) {
  const group = 'Transport security (mTLS on every gRPC plane):';
  return y
    .option('tls-dir', { type: 'string', group, describe: 'Folder with ca.crt, tls.crt and tls.key (a kubernetes.io/tls Secret as cert-manager writes it); turns mutual TLS on' })
    .option('tls-ca', { type: 'string', group, describe: 'CA certificate (PEM) that issued every kp-coord certificate (overrides --tls-dir\'s)' })
    .option('tls-cert', { type: 'string', group, describe: 'This process\'s certificate (PEM; overrides --tls-dir\'s)' })
    .option('tls-key', { type: 'string', group, describe: 'This process\'s private key (PEM; overrides --tls-dir\'s)' })
    .option('tls-server-name', { type: 'string', default: DEFAULT_TLS_SERVER_NAME, group, describe: 'DNS name every server certificate carries and every client checks' })
    .option('insecure-plaintext', { type: 'boolean', default: false, group, describe: 'No TLS (the token and tensors in clear text): loopback addresses only' })
    .option('allow-plaintext-non-loopback', { type: 'boolean', default: false, group, describe: 'With --insecure-plaintext: allow non-loopback addresses too (a private test network)' });
}

/** The TLS files the flags name, or null when none is given. Throws a usage message when incomplete. */
export function tlsFilesFromArgs(a: TlsArgs): TlsFiles | null {
  const dir = a['tls-dir'] !== undefined ? tlsDirFiles(a['tls-dir']) : null;
  const ca = a['tls-ca'] ?? dir?.ca;
  const cert = a['tls-cert'] ?? dir?.cert;
  const key = a['tls-key'] ?? dir?.key;
  if (ca === undefined && cert === undefined && key === undefined) return null;
  const missing = [['--tls-ca', ca], ['--tls-cert', cert], ['--tls-key', key]].filter(([, v]) => v === undefined).map(([f]) => f);
  if (missing.length > 0) throw new Error(`mutual TLS needs a CA, a certificate and a key: ${missing.join(', ')} missing (or give --tls-dir)`);
  return { ca: ca!, cert: cert!, key: key! };
}

/**
 * A yargs check: TLS or --insecure-plaintext, never both; plaintext only with every address on
 * loopback, unless --allow-plaintext-non-loopback.
 */
export function checkTlsArgs(a: TlsArgs, addresses: readonly string[]): true | string {
  let files: TlsFiles | null;
  try {
    files = tlsFilesFromArgs(a);
  } catch (e) {
    return (e as Error).message;
  }
  if (files && a['insecure-plaintext']) return '--insecure-plaintext and TLS files together: choose one';
  if (!files && !a['insecure-plaintext']) {
    return 'no TLS configured: give --tls-dir DIR (ca.crt, tls.crt, tls.key) or --tls-ca/--tls-cert/--tls-key; or --insecure-plaintext, on loopback addresses only';
  }
  if (!files && !a['allow-plaintext-non-loopback']) {
    const exposed = addresses.filter((x) => !isLoopbackHost(hostOf(x)));
    if (exposed.length > 0) {
      return `--insecure-plaintext on a non-loopback address (${exposed.join(', ')}): the token and all weights would cross the network in clear text; use TLS, or add --allow-plaintext-non-loopback if you really mean it`;
    }
  }
  return true;
}

/** Load what the (checked) flags ask for; file problems throw TlsConfigError naming the file. */
export function securityFromArgs(a: TlsArgs, addresses: readonly string[]): TransportSecurity {
  return chooseTransportSecurity(
    { tls: tlsFilesFromArgs(a), serverName: a['tls-server-name'], insecurePlaintext: a['insecure-plaintext'], allowPlaintextNonLoopback: a['allow-plaintext-non-loopback'] },
    addresses,
  );
}

/** The same choice as flags for a child `kp-coord worker` (local mode). */
export function tlsArgsForChild(a: TlsArgs): string[] {
  const files = tlsFilesFromArgs(a);
  if (!files) return ['--insecure-plaintext'];
  return ['--tls-ca', files.ca, '--tls-cert', files.cert, '--tls-key', files.key, '--tls-server-name', a['tls-server-name']];
}

/** Whether no TLS file flag is given at all (local mode then runs plaintext on loopback). */
export function noTlsFiles(a: TlsArgs): boolean {
  return a['tls-dir'] === undefined && a['tls-ca'] === undefined && a['tls-cert'] === undefined && a['tls-key'] === undefined;
}
