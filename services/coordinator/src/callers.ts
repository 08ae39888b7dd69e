/**
 * Who is calling (issue 16 "People and keys"). A request's bearer token is
 * either the farm's own NIGHTSHIFT_API_TOKEN (the local user, admin) or a
 * named API key (its user; admin when the key was made so). A farm with
 * neither a token nor any active key is open: everyone is the local user,
 * admin, as before users existed. Keys are looked up by their SHA-256 on
 * every request, with no cache, so a revoked key is refused by the next one.
 */
import { createHash } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { bearerMatches, bearerToken } from '@nightshift/common';
import type { PeopleEngine, StoreEngine } from './store-engine/engine.js';
import { LOCAL_USER } from './store/users.js';

export { LOCAL_USER } from './store/users.js';

export interface Caller {
  user: string;
  admin: boolean;
}

declare module 'hono' {
  interface ContextVariableMap {
    caller: Caller;
  }
}

/** What finding the caller reads: keys by hash, and whether any is active (the engine, asked on every request). */
export type CallerEngine = Pick<StoreEngine, 'userByKeyHash'> & { people: Pick<PeopleEngine, 'hasActiveKeys'> };

export const LOCAL_ADMIN: Caller = { user: LOCAL_USER, admin: true };

/** The hex SHA-256 of a key's secret: all the coordinator keeps of it. */
export const keyHash = (secret: string): string => createHash('sha256').update(secret, 'utf8').digest('hex');

/** The caller an `Authorization` header names, or undefined when it names nobody (missing, wrong or revoked). */
export async function identify(engine: CallerEngine, farmToken: string | undefined, authorization: string | undefined): Promise<Caller | undefined> {
  if (farmToken && bearerMatches(farmToken, authorization)) return LOCAL_ADMIN;
  const secret = bearerToken(authorization);
  if (secret !== undefined && secret.length <= 256) {
    const user = await engine.userByKeyHash(keyHash(secret));
    if (user) return { user: user.name, admin: user.admin === 1 };
  }
  if (!farmToken && !(await engine.people.hasActiveKeys())) return LOCAL_ADMIN;
  return undefined;
}

/** Whether this farm asks for a token at all (one is set, or a key exists). */
export const authRequired = async (engine: CallerEngine, farmToken: string | undefined): Promise<boolean> => Boolean(farmToken) || (await engine.people.hasActiveKeys());

/** Sets `caller` on the context, or answers 401. */
export function callerAuth(engine: CallerEngine, farmToken: string | undefined): MiddlewareHandler {
  return async (c, next) => {
    const caller = await identify(engine, farmToken, c.req.header('authorization'));
    if (!caller) {
      c.header('WWW-Authenticate', 'Bearer realm="nightshift"');
      return c.json({ error: 'missing, wrong or revoked API token or key' }, 401);
    }
    c.set('caller', caller);
    return next();
  };
}

/** The request's caller, set by callerAuth; a route it does not cover is refused rather than taken as anyone's. */
export function callerOf(c: Context): Caller {
  const caller = c.get('caller') as Caller | undefined;
  if (!caller) throw new HTTPException(401, { message: 'this route is not behind the API key check' });
  return caller;
}

/** Whether `caller` may see and act on what `owner` owns: their own, or anything for an admin. */
export const mayUse = (caller: Caller, owner: string): boolean => caller.admin || caller.user === owner;

/** The owner filter for a listing: none for an admin, else the caller's name. */
export const ownerFilter = (caller: Caller): string | undefined => (caller.admin ? undefined : caller.user);
