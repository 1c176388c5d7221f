import { readFileSync } from 'node:fs';
import { timingSafeEqual } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { z } from 'zod';
import { KpCoordError } from './errors.js';

// The shared worker token: from KPCOORD_TOKEN, or a file named by KPCOORD_TOKEN_FILE (a k8s
// Secret mount). Never a command-line flag, which any user can read in `ps`.
export const TOKEN_ENV = 'KPCOORD_TOKEN';
export const TOKEN_FILE_ENV = 'KPCOORD_TOKEN_FILE';

export class AuthError extends KpCoordError {}

// At least 16 characters and no white space at all: 16 spaces (or a token padded with them) is
// not a secret, and white space inside a bearer value is a copy-paste accident.
const TokenSchema = z
  .string()
  .min(16, { error: (i) => `is ${String(i.input).length} characters; use at least 16` })
  .regex(/^\S+$/u, { error: 'contains white space; use printable characters only (e.g. openssl rand -hex 32)' });

/** Whether the environment names a token (the variable or the file). */
export function tokenInEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[TOKEN_FILE_ENV] !== undefined || env[TOKEN_ENV] !== undefined;
}

/**
 * The token, from the file named by KPCOORD_TOKEN_FILE (a trailing newline is dropped), else from
 * KPCOORD_TOKEN. Errors name the variable or file and what is wrong.
 */
export function tokenFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const file = env[TOKEN_FILE_ENV];
  let token: string | undefined;
  let source: string;
  if (file !== undefined) {
    source = `${TOKEN_FILE_ENV} (${file})`;
    try {
      token = readFileSync(file, 'utf8').replace(/\r?\n$/u, '');
    } catch (cause) {
      throw new AuthError(`${source}: cannot read the worker token: ${(cause as Error).message}`, { cause });
    }
  } else {
    source = TOKEN_ENV;
    token = env[TOKEN_ENV];
  }
  if (!token) throw new AuthError(file === undefined ? `no worker token: set ${TOKEN_ENV} or ${TOKEN_FILE_ENV}` : `${source}: the worker token is empty`);
  const parsed = TokenSchema.safeParse(token);
  if (!parsed.success) throw new AuthError(`${source}: the worker token ${parsed.error.issues[0]!.message}`);
  return parsed.data;
}

export function authMetadata(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

/** Constant-time check of a call's bearer token. */
export function hasToken(metadata: grpc.Metadata, token: string): boolean {
  const value = metadata.get('authorization')[0];
  if (typeof value !== 'string' || !value.startsWith('Bearer ')) return false;
  const given = Buffer.from(value.slice(7));
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}
