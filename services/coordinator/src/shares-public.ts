/**
 * What a share link opens, without the API token (issue 15): under
 * /s/<token>/ the share page (the album's index.html) and the image and
 * thumbnail bytes of exactly the shared images, nothing else. This is the
 * coordinator's one way in without the API token besides /healthz and the
 * dashboard's static files: /s/ lies outside /api/ and /files/, which the
 * token guards, and every request here proves itself with the link's token.
 *
 * The token must be signed by this coordinator (shares-token.ts) and its
 * share still in the table and unexpired; anything else, revoked and expired
 * links included, is the same 404. Object keys are rebuilt from a render key
 * the share holds, under images/ or thumbs/ only.
 */
import { Hono, type Context } from 'hono';
import { ALBUM_CSS_HASH, albumHtml } from '@nightshift/album';
import { imageKey, renderKeyOf, thumbKey, type Storage } from '@nightshift/common';
import { albumOfKeys, type AlbumDeps } from './albums.js';
import type { ShareParts } from './shares-routes.js';
import type { PeopleEngine, ShareEngine, ShareRow } from './store-engine/engine.js';
import { LOCAL_USER } from './store/users.js';

/** Where share links live; outside /api and /files, so the API token's check never sees them. */
export const SHARE_PATH = '/s';

/** What every answer here carries. */
const HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  // The token is in the URL: never send it on to another site.
  'Referrer-Policy': 'no-referrer',
  'X-Robots-Tag': 'noindex, nofollow',
  // Revoking must take effect at once: nothing here is kept by a cache.
  'Cache-Control': 'no-store',
};

/** The page's own: it has no script, its one style block is allowed by hash, images only from here. */
const PAGE_HEADERS = {
  ...HEADERS,
  'Content-Security-Policy': `default-src 'none'; img-src 'self'; style-src ${ALBUM_CSS_HASH}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`,
};

const NOT_FOUND = 'This share link is not valid: it has expired, been revoked, or never existed.\n';

export interface SharePageDeps extends AlbumDeps {
  storage: Pick<Storage, 'get'>;
  engine: AlbumDeps['engine'] & { people: Pick<PeopleEngine, 'activeUser'>; shares: ShareEngine };
}

export function sharePages(deps: SharePageDeps, parts: ShareParts): Hono {
  const app = new Hono();
  const notFound = (c: Context) => c.text(NOT_FOUND, 404, PAGE_HEADERS);

  /**
   * The live share a token opens, or undefined. A link is its owner's: it
   * stops with their last active key (the farm's own user, `local`, is the
   * farm token's and never stops) and works again if they get a new one.
   */
  const shareOf = async (token: string): Promise<ShareRow | undefined> => {
    const claim = parts.tokens.verify(token);
    const row = claim && (await parts.shares.live(claim.id));
    if (!row || row.expires_at !== claim.expiresAt) return undefined;
    return row.owner === LOCAL_USER || (await deps.engine.people.activeUser(row.owner)) ? row : undefined;
  };

  // Relative links on the page need the trailing slash.
  app.get('/:token', async (c) => ((await shareOf(c.req.param('token'))) ? c.redirect(`${SHARE_PATH}/${c.req.param('token')}/`) : notFound(c)));

  app.get('/:token/', async (c) => {
    const row = await shareOf(c.req.param('token'));
    if (!row) return notFound(c);
    // Images whose jobs are gone since (retention) drop out of the page.
    const album = await albumOfKeys(deps, await parts.shares.renderKeys(row.id), { title: row.title, strict: false, owner: row.owner, now: row.created_at });
    return c.html(albumHtml(album, { upscaled: false }), 200, PAGE_HEADERS);
  });

  for (const [prefix, build] of [['images', imageKey], ['thumbs', thumbKey]] as const) {
    app.get(`/:token/${prefix}/:name`, async (c) => {
      const row = await shareOf(c.req.param('token'));
      const rk = renderKeyOf(`${prefix}/${c.req.param('name')}`, prefix);
      if (!row || !rk || !(await parts.shares.holds(row.id, rk))) return notFound(c);
      let body: Buffer;
      try {
        body = await deps.storage.get(build(rk));
      } catch {
        return notFound(c);
      }
      return c.body(new Uint8Array(body), 200, { ...HEADERS, 'Content-Type': prefix === 'images' ? 'image/png' : 'image/webp' });
    });
  }

  app.all('*', notFound);
  return app;
}
