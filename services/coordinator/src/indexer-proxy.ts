/**
 * The coordinator's side of the indexer (search, favorites, best-of live
 * there): the headers every call to it carries, and the proxy that passes
 * a client's request on so clients need one address.
 *
 * Favorites are per user (issue 16): the indexer keeps each user's stars
 * and taste model, and learns whose a request is from `X-Nightshift-User`,
 * which it believes only from a caller holding NIGHTSHIFT_API_TOKEN (the
 * coordinator's credential there; services/indexer/src/users.ts). A
 * client's own `X-Nightshift-User` never reaches it: the proxy builds the
 * headers afresh from the caller callerAuth identified.
 */
import type { Context } from 'hono';
import type { Config } from '@nightshift/common';
import { callerOf } from './callers.js';
import { keepOwnImages, type OwnedImageEngine } from './owned-images.js';

export const INDEXER_USER_HEADER = 'x-nightshift-user';

/** What every request to the indexer carries: the farm token (when set) and whose favorites it means. */
export function indexerHeaders(token: string | undefined, user: string): Record<string, string> {
  return { ...(token ? { authorization: `Bearer ${token}` } : {}), [INDEXER_USER_HEADER]: user };
}

export interface IndexerProxyDeps {
  config: Pick<Config, 'NIGHTSHIFT_API_TOKEN' | 'NIGHTSHIFT_INDEXER_URL'>;
  engine: OwnedImageEngine;
}

/** Passes the request (path, query, method) on to the indexer as the caller; a non-admin's answer keeps only their own images (owned-images.ts). */
export function indexerProxy(deps: IndexerProxyDeps): (c: Context) => Promise<Response> {
  return async (c) => {
    const url = new URL(c.req.url);
    const target = `${deps.config.NIGHTSHIFT_INDEXER_URL}${url.pathname}${url.search}`;
    const caller = callerOf(c);
    try {
      const res = await fetch(target, { method: c.req.method, headers: indexerHeaders(deps.config.NIGHTSHIFT_API_TOKEN, caller.user) });
      if (!caller.admin && res.ok && /json/.test(res.headers.get('content-type') ?? '')) return c.json(await keepOwnImages(deps.engine, caller, await res.json()), res.status as 200);
      return c.body(await res.text(), res.status as 200, { 'Content-Type': res.headers.get('content-type') ?? 'application/json' });
    } catch {
      return c.json({ error: 'search is unavailable: the indexer cannot be reached' }, 503);
    }
  };
}
