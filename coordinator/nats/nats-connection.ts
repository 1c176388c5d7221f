import { readFileSync } from 'node:fs';
import { credsAuthenticator, type ConnectionOptions } from 'nats';
import { z } from 'zod';
import { EventError } from '../../shared/errors.js';

// How kp-coord reaches NATS: the URL and a .creds file from the run config (or flags), secrets from
// the environment only (a config file is committed and shared; a password must not be in it).
//   KPCOORD_NATS_URL                          used when neither --nats nor the config names a server
//   KPCOORD_NATS_USER + KPCOORD_NATS_PASSWORD user/password
//   KPCOORD_NATS_TOKEN                        token
//   KPCOORD_NATS_CREDS                        a .creds file (JWT + nkey seed), if the config has none
//   KPCOORD_NATS_TLS_CA / _CERT / _KEY        TLS files; any of them (or a tls:// URL) turns TLS on

export const NATS_URL_ENV = 'KPCOORD_NATS_URL';
export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

const NatsEnvSchema = z
  .object({
    KPCOORD_NATS_USER: z.string().min(1).optional(),
    KPCOORD_NATS_PASSWORD: z.string().min(1).optional(),
    KPCOORD_NATS_TOKEN: z.string().min(1).optional(),
    KPCOORD_NATS_CREDS: z.string().min(1).optional(),
    KPCOORD_NATS_TLS_CA: z.string().min(1).optional(),
    KPCOORD_NATS_TLS_CERT: z.string().min(1).optional(),
    KPCOORD_NATS_TLS_KEY: z.string().min(1).optional(),
  })
  .refine((e) => (e.KPCOORD_NATS_USER === undefined) === (e.KPCOORD_NATS_PASSWORD === undefined), { error: () => 'KPCOORD_NATS_USER and KPCOORD_NATS_PASSWORD go together' })
  .refine((e) => (e.KPCOORD_NATS_TLS_CERT === undefined) === (e.KPCOORD_NATS_TLS_KEY === undefined), { error: () => 'KPCOORD_NATS_TLS_CERT and KPCOORD_NATS_TLS_KEY go together' });

export interface NatsEndpoint {
  readonly url: string;
  /** From the run config's nats.credentials_file (already resolved to an absolute path). */
  readonly credentialsFile?: string | null | undefined;
}

/** Connection options for one endpoint; throws EventError naming the variable or file that is wrong. */
export function natsConnectionOptions(ep: NatsEndpoint, env: NodeJS.ProcessEnv = process.env): ConnectionOptions {
  const parsed = NatsEnvSchema.safeParse(Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('KPCOORD_NATS_') && k !== NATS_URL_ENV)));
  if (!parsed.success) throw new EventError(`NATS environment: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'variables'}: ${i.message}`).join('; ')}`);
  const e = parsed.data;
  const o: ConnectionOptions = { servers: ep.url, name: 'kp-coord' };
  if (e.KPCOORD_NATS_USER !== undefined) Object.assign(o, { user: e.KPCOORD_NATS_USER, pass: e.KPCOORD_NATS_PASSWORD });
  if (e.KPCOORD_NATS_TOKEN !== undefined) o.token = e.KPCOORD_NATS_TOKEN;
  const creds = ep.credentialsFile ?? e.KPCOORD_NATS_CREDS;
  if (creds) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(creds);
    } catch (err) {
      throw new EventError(`NATS credentials file ${creds}: ${(err as Error).message}`, { cause: err });
    }
    o.authenticator = credsAuthenticator(bytes);
  }
  const tlsFiles = { caFile: e.KPCOORD_NATS_TLS_CA, certFile: e.KPCOORD_NATS_TLS_CERT, keyFile: e.KPCOORD_NATS_TLS_KEY };
  if (ep.url.startsWith('tls://') || Object.values(tlsFiles).some((f) => f !== undefined)) {
    o.tls = Object.fromEntries(Object.entries(tlsFiles).filter(([, f]) => f !== undefined));
  }
  return o;
}
