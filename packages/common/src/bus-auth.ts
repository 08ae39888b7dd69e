/**
 * NATS credentials from the configuration: a user and password, or a creds
 * file (JWT and nkey seed, as `nsc generate creds` writes). connectBus is the
 * one place services connect, so this is the one place they are read.
 */
import { readFileSync } from 'node:fs';
import { credsAuthenticator, type ConnectionOptions } from '@nats-io/transport-node';
import type { Config } from './config.js';

export type NatsAuthConfig = Partial<Pick<Config, 'NIGHTSHIFT_NATS_USER' | 'NIGHTSHIFT_NATS_PASSWORD' | 'NIGHTSHIFT_NATS_CREDS'>>;

/** How to authenticate to NATS; empty: anonymously. */
export interface NatsAuth {
  user?: string;
  password?: string;
  credsFile?: string;
}

/** The credentials the configuration names; throws on a half-set or doubly-set pair (a typo would otherwise connect anonymously). */
export function natsAuth(c: NatsAuthConfig): NatsAuth {
  const user = c.NIGHTSHIFT_NATS_USER || undefined;
  const password = c.NIGHTSHIFT_NATS_PASSWORD || undefined;
  const credsFile = c.NIGHTSHIFT_NATS_CREDS || undefined;
  if (!user !== !password) throw new Error('NIGHTSHIFT_NATS_USER and NIGHTSHIFT_NATS_PASSWORD must be set together');
  if (credsFile && user) throw new Error('set either NIGHTSHIFT_NATS_CREDS or NIGHTSHIFT_NATS_USER/NIGHTSHIFT_NATS_PASSWORD, not both');
  if (credsFile) return { credsFile };
  return user && password ? { user, password } : {};
}

/** The connect options for `auth` (the creds file is read now, so a missing file fails at once, naming it). */
export function natsAuthOptions(auth: NatsAuth): Pick<ConnectionOptions, 'user' | 'pass' | 'authenticator'> {
  if (auth.credsFile) {
    let creds: Buffer;
    try {
      creds = readFileSync(auth.credsFile);
    } catch (err) {
      throw new Error(`NIGHTSHIFT_NATS_CREDS: cannot read ${auth.credsFile}`, { cause: err });
    }
    return { authenticator: credsAuthenticator(creds) };
  }
  if (auth.user !== undefined) return { user: auth.user, pass: auth.password ?? '' };
  return {};
}
