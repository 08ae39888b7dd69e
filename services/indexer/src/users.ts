/**
 * Whose favorites a request means (issue 16). The indexer knows no keys:
 * the coordinator, which does, names the caller in `X-Nightshift-User` when
 * it proxies. The header is believed only from a request that proves it
 * comes from the coordinator, i.e. carries NIGHTSHIFT_API_TOKEN (the
 * coordinator's credential here; bearerAuth has already refused any
 * request without it). An indexer without a token cannot tell the
 * coordinator from anyone else who reaches it, so there the header may
 * only name the local user: claiming another is a 403 naming the setting.
 * Without the header a request is the local user's (the single-user farm).
 */
import type { Context, MiddlewareHandler } from 'hono';
import { bearerMatches } from '@nightshift/common';
import { LOCAL_USER } from './catalog-schema.js';

export { LOCAL_USER } from './catalog-schema.js';

export const USER_HEADER = 'x-nightshift-user';
/** The coordinator's key names (keys-routes.ts KEY_NAME_RE) and `local`. */
const USER_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

declare module 'hono' {
  interface ContextVariableMap {
    favoritesUser: string;
  }
}

/** Sets `favoritesUser` from the header, or answers 400 (malformed) or 403 (not from the coordinator). */
export function favoritesUser(apiToken: string | undefined): MiddlewareHandler {
  return async (c, next) => {
    const claimed = c.req.header(USER_HEADER);
    if (claimed === undefined) {
      c.set('favoritesUser', LOCAL_USER);
      return next();
    }
    if (!USER_RE.test(claimed)) return c.json({ error: `${USER_HEADER} must be a user name (1-64 of a-z, 0-9, ".", "_", "-")` }, 400);
    const fromCoordinator = apiToken !== undefined && apiToken !== '' && bearerMatches(apiToken, c.req.header('authorization'));
    if (claimed !== LOCAL_USER && !fromCoordinator) {
      return c.json({ error: `${USER_HEADER} is taken only from the coordinator, which proves itself with NIGHTSHIFT_API_TOKEN; set the same token on the coordinator and the indexer to keep favorites per user` }, 403);
    }
    c.set('favoritesUser', claimed);
    return next();
  };
}

/** The request's user, as favoritesUser set it (the local user on a route it does not cover). */
export const userOf = (c: Context): string => (c.get('favoritesUser') as string | undefined) ?? LOCAL_USER;
