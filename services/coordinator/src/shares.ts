/**
 * Share links put together (issue 15): the shares table (the engine's), the
 * signing secret kept in the coordinator's data folder, the API that makes
 * and revokes them, and the pages a link opens. http.ts mounts the two at
 * /api/shares and SHARE_PATH.
 */
import type { Hono } from 'hono';
import { ShareTokens } from './shares-token.js';
import { shareRoutes, type ShareParts } from './shares-routes.js';
import { SHARE_PATH, sharePages, type SharePageDeps } from './shares-public.js';

export { SHARE_PATH };

/**
 * `secret`: the links' signing secret (shares-token.ts shareSecretFor); `now`
 * the clock expiry is measured by here (the engine keeps its own for the table).
 */
export function createShares(deps: SharePageDeps, secret: Buffer, now: () => number = Date.now): ShareParts & { api: Hono; pages: Hono } {
  const parts: ShareParts = { shares: deps.engine.shares, tokens: new ShareTokens(secret) };
  return { ...parts, api: shareRoutes(deps, parts, now), pages: sharePages(deps, parts) };
}
