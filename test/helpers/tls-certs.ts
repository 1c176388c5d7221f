import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// Test certificates made with the openssl CLI, the same commands README "TLS" gives users: a CA,
// and leaf certificates it signs for serverAuth + clientAuth with a DNS subjectAltName.

export const opensslMissing = spawnSync('openssl', ['version'], { encoding: 'utf8' }).error ? 'openssl is not installed (apt-get install -y openssl)' : false;

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A new CA in `dir` (ca.crt, ca.key). */
export function makeCa(dir: string, name = 'kp-coord test CA'): void {
  mkdirSync(dir, { recursive: true });
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '30',
    '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
}

/**
 * A --tls-dir in `out` (ca.crt, tls.crt, tls.key) with a certificate signed by the CA in `caDir`,
 * naming `dnsName`.
 */
export function makeTlsDir(caDir: string, out: string, dnsName = 'kp-coord'): string {
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'ext.cnf'), `subjectAltName=DNS:${dnsName}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n`);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'tls.key', '-out', 'tls.csr', '-subj', `/CN=${dnsName}`], out);
  openssl(['x509', '-req', '-in', 'tls.csr', '-CA', join(caDir, 'ca.crt'), '-CAkey', join(caDir, 'ca.key'), '-CAcreateserial', '-out', 'tls.crt', '-days', '30', '-extfile', 'ext.cnf'], out);
  execFileSync('cp', [join(caDir, 'ca.crt'), join(out, 'ca.crt')]);
  return out;
}
