/**
 * /api/shares (issue 15): make, list and revoke share links. Behind the API
 * token like the rest of /api; the link's own token opens only the share
 * page and its images (shares-public.ts).
 *   POST   /api/shares      {favorites|sweep|keys, title?, expiresIn} → 201 {id, url, expiresAt, images}
 *   GET    /api/shares      → {shares: [{id, owner, title, images, url, createdAt, expiresAt, expired}]} (an admin's: every owner's)
 *   DELETE /api/shares/:id  → 204: the link answers 404 from now on
 * expiresIn is seconds (10 s to 30 days; default 7 days) or text like "12h" or "7d".
 */
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { fieldIssues } from '@nightshift/common';
import { tooLarge } from './body-rules.js';
import { AlbumError, resolveAlbum, selectionIssues, SelectionFields, type AlbumDeps } from './albums.js';
import { albumErrorResponse } from './albums-routes.js';
import type { ShareEngine, ShareRow } from './store-engine/engine.js';
import type { ShareTokens } from './shares-token.js';
import { SHARE_PATH } from './shares-public.js';
import { callerOf, mayUse, ownerFilter } from './callers.js';
import { CapReached } from './store-engine/engine.js';

export const MAX_SHARE_SECONDS = 30 * 24 * 3600;
/** Short enough for a link meant for the next minute (and for a test to see one expire). */
export const MIN_SHARE_SECONDS = 10;
export const DEFAULT_SHARE_SECONDS = 7 * 24 * 3600;
/** How long an expired share stays in GET /api/shares before its row is dropped. */
const EXPIRED_KEPT_MS = 7 * 24 * 3600 * 1000;
/** Live shares one owner may hold at once. */
export const MAX_SHARES = 1_000;

const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;
const ExpiresIn = z
  .union([z.number().int(), z.string().regex(/^\d{1,7}[smhd]$/, 'a number of seconds, or text like "30m", "12h", "7d"')])
  .transform((v) => (typeof v === 'number' ? v : Number(v.slice(0, -1)) * UNIT_SECONDS[v.slice(-1) as keyof typeof UNIT_SECONDS]))
  .refine((s) => s >= MIN_SHARE_SECONDS && s <= MAX_SHARE_SECONDS, `must be from ${MIN_SHARE_SECONDS} seconds to ${MAX_SHARE_SECONDS / 86_400} days`);

const NewShare = z.strictObject({ ...SelectionFields, expiresIn: ExpiresIn.default(DEFAULT_SHARE_SECONDS) });

export interface ShareParts {
  shares: ShareEngine;
  tokens: ShareTokens;
}

const iso = (t: number) => new Date(t).toISOString();

export function shareRoutes(deps: AlbumDeps, parts: ShareParts, now: () => number = Date.now): Hono {
  const app = new Hono();
  const url = (c: Context, row: ShareRow) => `${new URL(c.req.url).origin}${SHARE_PATH}/${parts.tokens.sign(row.id, row.expires_at)}/`;

  app.post('/', tooLarge(256 * 1024, '256 KiB'), async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return c.json({ error: 'request body is not valid JSON', details: [] }, 400);
    }
    const parsed = NewShare.safeParse(body);
    if (!parsed.success) return c.json({ error: 'invalid share', details: fieldIssues(parsed.error.issues) }, 400);
    const { expiresIn, ...selection } = parsed.data;
    const issues = selectionIssues(selection);
    if (issues.length) return c.json({ error: issues[0]!.message, details: issues }, 400);
    const owner = callerOf(c).user;
    // Expired links stay listed (as expired) for a week, then their rows go.
    await parts.shares.pruneExpired(now() - EXPIRED_KEPT_MS);
    const live = (await parts.shares.list(owner)).filter((s) => s.expires_at > now()).length;
    const full = () => c.json({ error: `at most ${MAX_SHARES} live share links: revoke some first (DELETE /api/shares/:id)`, details: [] }, 409);
    if (live >= MAX_SHARES) return full();
    try {
      const album = await resolveAlbum(deps, selection, now(), callerOf(c));
      // Counted again in the insert's own transaction: two creations at once, through one replica or two, cannot both pass the cap.
      const row = await parts.shares.create({ title: album.title, renderKeys: album.images.map((i) => i.renderKey), expiresAt: now() + expiresIn * 1000, owner, maxLive: MAX_SHARES });
      return c.json({ id: row.id, url: url(c, row), expiresAt: iso(row.expires_at), images: row.images }, 201);
    } catch (err) {
      if (err instanceof AlbumError) return albumErrorResponse(c, err);
      if (err instanceof CapReached) return full();
      throw err;
    }
  });

  // A user lists their own links; an admin every owner's, like other listings (each names its owner).
  app.get('/', async (c) => {
    const owner = ownerFilter(callerOf(c));
    const rows = owner === undefined ? await parts.shares.listAll() : await parts.shares.list(owner);
    return c.json({
      shares: rows.map((s) => ({ id: s.id, owner: s.owner, title: s.title, images: s.images, url: url(c, s), createdAt: iso(s.created_at), expiresAt: iso(s.expires_at), expired: s.expires_at <= now() })),
    });
  });

  // Another user's share is as absent as a missing one; an admin may revoke any.
  app.delete('/:id', async (c) => {
    const row = await parts.shares.get(c.req.param('id'));
    if (!row || !mayUse(callerOf(c), row.owner)) return c.json({ error: 'no such share' }, 404);
    return (await parts.shares.delete(row.id, row.owner)) ? c.body(null, 204) : c.json({ error: 'no such share' }, 404);
  });
  return app;
}
