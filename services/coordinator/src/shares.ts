/**
 * Share links put together (issue 15): the shares table, the signing secret
 * kept next to the database, the API that makes and revokes them, and the
 * pages a link opens. http.ts mounts the two at /api/shares and SHARE_PATH.
 */
import type { Hono } from 'hono';
import { ShareStore } from './store/shares.js';
import { ShareTokens, shareSecretFor } from './shares-token.js';
import { shareRoutes, type ShareParts } from './shares-routes.js';
import { SHARE_PATH, sharePages, type SharePageDeps } from './shares-public.js';

export { SHARE_PATH };

export function createShares(deps: SharePageDeps, now: () => number = Date.now): ShareParts & { api: Hono; pages: Hono } {
  const parts: ShareParts = { shares: new ShareStore(deps.store.db, now), tokens: new ShareTokens(shareSecretFor(deps.store.db.name)) };
  return { ...parts, api: shareRoutes(deps, parts, now), pages: sharePages(deps, parts) };
}
