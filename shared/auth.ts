import { readFileSync } from 'node:fs';
import { timingSafeEqual } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { KpCoordError } from './errors.js';

// The shared worker token: from KPCOORD_TOKEN, or a file named by KPCOORD_TOKEN_FILE (a k8s
// Secret mount). Never a command-line flag, which any user can read in `ps`.
export const TOKEN_ENV = 'KPCOORD_TOKEN';
export const TOKEN_FILE_ENV = 'KPCOORD_TOKEN_FILE';

export class AuthError extends KpCoordError {}

export function tokenFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const file = env[TOKEN_FILE_ENV];
  const token = file ? readFileSync(file, 'utf8').trim() : env[TOKEN_ENV];
  if (!token) throw new AuthError(`no worker token: set ${TOKEN_ENV} or ${TOKEN_FILE_ENV}`);
  if (token.length < 16) throw new AuthError(`the worker token is ${token.length} characters; use at least 16`);
  return token;
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
