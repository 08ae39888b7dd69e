/**
 * The dashboard, served by the coordinator: server-rendered pages under /ui,
 * a small vanilla-JS client (ES modules under /ui/static/, no build step:
 * assets.ts), and the few JSON endpoints only the dashboard needs:
 *
 * - POST /api/sweeps/preview — job count and sample prompts of a spec (JSON,
 *   or pasted YAML/JSON text), by the same code that expands it on submit.
 * - GET  /api/gallery — rendered images, newest first, a page at a time
 *   (filters: sweep, favorites). Text search stays GET /api/search.
 * - GET  /api/gallery/:key — one image with prompt, seed, params, node, time.
 * - POST /ui/session + GET /ui/files/* — image bytes for <img> when an API
 *   token is set (see session.ts).
 *
 * Mounted by http.ts after the API routes, so the API's bearer check covers
 * the /api routes here too; they check it themselves as well.
 */
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { tooLarge } from '../body-rules.js';
import { compress } from 'hono/compress';
import { getCookie, setCookie } from 'hono/cookie';
import { SpecError } from '@nightshift/sweep';
import { expansionLimits, filesRoute, renderKeyOfImageRef, type Config, type LimitsConfig, type Logger, type Storage } from '@nightshift/common';
import type { GalleryEngine, PeopleEngine, StoreEngine } from '../store-engine/engine.js';
import { galleryPage, layout, nodesPage, submitPage, sweepPage, sweepsPage, type PageName } from './pages.js';
import { parseSpecText, previewSpec } from './preview.js';
import { specWildcards, type WildcardBucket } from '../wildcards-store.js';
import { MAX_PAGE } from './gallery.js';
import { acceptsGzip, loadStaticAssets, STATIC_PATH } from './assets.js';
import { FILES_COOKIE, FILES_PATH, issueFilesCookie, SESSION_TTL_S, verifyFilesCookie } from './session.js';
import { authRequired, callerAuth, callerOf, identify, LOCAL_ADMIN, LOCAL_USER, ownerFilter, type Caller, type CallerEngine } from '../callers.js';
import { mayUseFile, mayUseImage, type OwnedImageEngine } from '../owned-images.js';
import { mayUseWildcard } from '../wildcard-owners.js';
import { indexerHeaders } from '../indexer-proxy.js';

/** What the dashboard reads: a subset of CoordinatorDeps, so tests and benchmarks can stub the rest. */
export interface DashboardDeps {
  config: Pick<Config, 'NIGHTSHIFT_API_TOKEN' | 'NIGHTSHIFT_INDEXER_URL'> & LimitsConfig;
  log: Pick<Logger, 'warn'>;
  engine: Pick<StoreEngine, 'getSweep'> & { people: Pick<PeopleEngine, 'wildcardOwner' | 'activeUser'>; gallery: Pick<GalleryEngine, 'listImages' | 'imageDetail'> } & CallerEngine & OwnedImageEngine;
  /** The bucket's client, when there is one, holds the wildcard lists the preview reads. */
  storage: Pick<Storage, 'get'> & Partial<WildcardBucket>;
}

const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'same-origin',
};

export function createDashboard(deps: DashboardDeps): Hono {
  const app = new Hono();
  const token = deps.config.NIGHTSHIFT_API_TOKEN;
  // The image cookie's key: the farm token, or (a farm of named keys only) a secret of this process.
  const cookieKey = token ?? randomBytes(32).toString('base64url');
  const { base: assetBase, modules, serve } = loadStaticAssets();
  const fileUrl = (key: string) => `/files/${key}`;

  const html = (c: Context, page: PageName, title: string, body: string, data?: Record<string, string>) => {
    const text = Buffer.from(layout({ page, title, body, assetBase, modules, ...(data ? { data } : {}) }));
    const headers: Record<string, string> = { ...SECURITY_HEADERS, 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-cache', Vary: 'Accept-Encoding' };
    if (acceptsGzip(c)) return c.body(new Uint8Array(gzipSync(text)), 200, { ...headers, 'Content-Encoding': 'gzip' });
    return c.body(new Uint8Array(text), 200, headers);
  };

  // ---------------------------------------------------------------- pages
  app.get('/', (c) => c.redirect('/ui/'));
  app.get('/ui', (c) => c.redirect('/ui/'));
  app.get('/ui/', (c) => html(c, 'sweeps', 'Sweeps', sweepsPage()));
  app.get('/ui/submit', (c) => html(c, 'submit', 'Submit a sweep', submitPage(deps.config.NIGHTSHIFT_MAX_JOBS)));
  app.get('/ui/sweeps/:id', (c) => html(c, 'sweep', `Sweep ${c.req.param('id')}`, sweepPage(), { 'sweep-id': c.req.param('id') }));
  app.get('/ui/gallery', (c) => html(c, 'gallery', 'Gallery', galleryPage()));
  app.get('/ui/nodes', (c) => html(c, 'nodes', 'Nodes', nodesPage()));

  app.get(`${STATIC_PATH}/*`, serve);

  // ---------------------------------------------------------------- images for <img>
  app.post('/ui/session', async (c) => {
    if (!(await authRequired(deps.engine, token))) return c.json({ auth: false });
    const caller = await identify(deps.engine, token, c.req.header('authorization'));
    if (!caller) return c.json({ error: 'missing, wrong or revoked API token or key' }, 401);
    const expiresAt = Date.now() + SESSION_TTL_S * 1000;
    const secure = new URL(c.req.url).protocol === 'https:' || c.req.header('x-forwarded-proto') === 'https';
    setCookie(c, FILES_COOKIE, issueFilesCookie(cookieKey, caller.user, expiresAt), { path: FILES_PATH, httpOnly: true, sameSite: 'Strict', secure, maxAge: SESSION_TTL_S });
    return c.json({ auth: true, expiresAt: new Date(expiresAt).toISOString() });
  });

  /** The caller a cookie names, while they still may be: the farm token's user while the token is set, a key's user while the key is active. */
  const cookieCaller = async (user: string | undefined): Promise<Caller | undefined> => {
    if (user === undefined) return undefined;
    if (user === LOCAL_USER) return token ? LOCAL_ADMIN : undefined;
    const row = await deps.engine.people.activeUser(user);
    return row ? { user: row.name, admin: row.admin === 1 } : undefined;
  };
  const filesAuth: MiddlewareHandler = async (c, next) => {
    const locked = await authRequired(deps.engine, token);
    const caller = (await identify(deps.engine, token, c.req.header('authorization'))) ?? (await cookieCaller(verifyFilesCookie(cookieKey, getCookie(c, FILES_COOKIE))));
    if (locked && !caller) return c.json({ error: 'image session expired or missing: reload the dashboard' }, 401);
    // A user's key or cookie opens their own images only; another's answers as a missing one.
    if (caller && !(await mayUseFile(deps.engine, caller, c.req.path.slice(FILES_PATH.length + 1)))) return c.json({ error: 'not found' }, 404);
    await next();
    // Behind a token the bytes are private to this browser.
    if (locked && c.res.status === 200) c.res.headers.set('Cache-Control', 'private, max-age=3600');
  };
  app.use(`${FILES_PATH}/*`, filesAuth);
  app.route(FILES_PATH, filesRoute(deps.storage));

  // ---------------------------------------------------------------- JSON API for the dashboard
  const apiAuth: MiddlewareHandler = callerAuth(deps.engine, token);
  app.use('/api/sweeps/preview', apiAuth);
  app.use('/api/gallery', apiAuth);
  app.use('/api/gallery/*', apiAuth);
  // A page of the gallery is ~50 KiB of JSON, ~8 KiB gzipped.
  app.use('/api/gallery', compress());

  app.post(
    '/api/sweeps/preview',
    tooLarge(1024 * 1024, '1 MiB'),
    async (c) => {
      const type = c.req.header('content-type') ?? '';
      try {
        let input: unknown;
        if (/json/.test(type)) {
          try {
            input = await c.req.json();
          } catch {
            return c.json({ error: 'request body is not valid JSON', details: [] }, 400);
          }
        } else {
          input = parseSpecText(await c.req.text());
        }
        return c.json(previewSpec(input, expansionLimits(deps.config), 12, await specWildcards(deps.storage, input, mayUseWildcard(deps.engine, callerOf(c)))));
      } catch (err) {
        if (err instanceof SpecError) return c.json({ error: err.message, details: err.details }, 400);
        throw err;
      }
    },
  );

  app.get('/api/gallery', async (c) => {
    const offset = intParam(c.req.query('offset'), 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = intParam(c.req.query('limit'), 120, 1, MAX_PAGE);
    if (offset === undefined || limit === undefined) return c.json({ error: `offset must be ≥ 0 and limit from 1 to ${MAX_PAGE}` }, 400);
    const sweep = c.req.query('sweep') || undefined;
    const owner = ownerFilter(callerOf(c));
    if (sweep && owner !== undefined && (await deps.engine.getSweep(sweep))?.owner !== owner) return c.json({ error: 'no such sweep' }, 404);
    const onlyFavorites = c.req.query('favorites') === 'true';
    const fav = await favorites(deps, sweep, callerOf(c).user);
    if (onlyFavorites && !fav.keys) return c.json({ error: `favorites are unavailable: ${fav.problem}`, total: 0, offset, limit, images: [] }, 503);
    const page = await deps.engine.gallery.listImages({ sweep, ...(owner !== undefined ? { owner } : {}), renderKeys: onlyFavorites ? [...fav.keys!] : undefined, offset, limit }, fileUrl, fav.keys);
    return c.json({ ...page, offset, limit, favorites: fav.keys ? 'ok' : fav.problem });
  });

  app.get('/api/gallery/:key', async (c) => {
    const detail = (await mayUseImage(deps.engine, callerOf(c), c.req.param('key'))) ? await deps.engine.gallery.imageDetail(c.req.param('key'), fileUrl) : undefined;
    if (!detail) return c.json({ error: 'no rendered image with that key' }, 404);
    const fav = await favorites(deps, detail.sweepId, callerOf(c).user);
    return c.json({ ...detail, favorite: fav.keys ? fav.keys.has(detail.renderKey) : null });
  });

  return app;
}

function intParam(text: string | undefined, dflt: number, min: number, max: number): number | undefined {
  if (text === undefined || text === '') return dflt;
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n >= min && n <= max ? n : undefined;
}

/**
 * The render keys `user` marked favorite, from the indexer (favorites live there, per user).
 * Uses its GET /api/favorites; an indexer without it is asked through the
 * search filter instead (exact over its flat index, first 500 favorites).
 */
async function favorites(deps: DashboardDeps, sweep: string | undefined, user: string): Promise<{ keys?: Set<string>; problem?: string }> {
  const base = deps.config.NIGHTSHIFT_INDEXER_URL;
  const headers = indexerHeaders(deps.config.NIGHTSHIFT_API_TOKEN, user);
  const qs = sweep ? `sweep=${encodeURIComponent(sweep)}` : '';
  const get = async (path: string) => {
    const res = await fetch(`${base}${path}`, { headers, signal: AbortSignal.timeout(5_000) });
    return { status: res.status, body: res.ok ? ((await res.json()) as Record<string, unknown>) : undefined };
  };
  try {
    const listed = await get(`/api/favorites${qs ? `?${qs}` : ''}`);
    if (listed.body && Array.isArray(listed.body.favorites)) {
      return { keys: new Set((listed.body.favorites as { renderKey?: string; key?: string }[]).map((f) => f.renderKey ?? renderKeyOfImageRef(String(f.key)))) };
    }
    const searched = await get(`/api/search?q=image&favorites=true&k=500${qs ? `&${qs}` : ''}`);
    if (searched.body && Array.isArray(searched.body.results)) {
      return { keys: new Set((searched.body.results as { renderKey: string }[]).map((r) => r.renderKey)) };
    }
    return { problem: `the indexer answered ${searched.status}` };
  } catch (err) {
    deps.log.warn({ err: String(err) }, 'favorites unavailable: indexer unreachable');
    return { problem: 'the indexer cannot be reached' };
  }
}
