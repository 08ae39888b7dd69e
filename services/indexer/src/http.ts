/**
 * The indexer's HTTP API: search, favorites, image details, reindex, files, health.
 *
 *   GET    /api/search?q=&image=&k=&offset=&sweep=&prompt=&favorites=&from=&to=&minScore=&duplicates=&textWeight=&imageWeight=
 *   PUT    /api/favorites/:key      DELETE /api/favorites/:key      GET /api/favorites[?sweep=]
 *          (favorites, and every answer's `favorite`, are the X-Nightshift-User's: users.ts)
 *   GET    /api/images/:key         one indexed image, with its variants and near-duplicate mark
 *   POST   /api/reindex[?prune=false]   rebuild from the bucket (202; 409 while one runs)
 *   GET    /api/reindex             progress of the last reindex or re-embedding
 *   GET    /api/sweeps/:id/best?k=  a sweep's images ranked by the taste model, or the aesthetic head (taste-routes.ts)
 */
import { Hono, type Context } from 'hono';
import { bearerAuth } from 'hono/bearer-auth';
import { filesRoute, imageKey, thumbKey, type Storage } from '@nightshift/common';
import type { ClipEmbedder } from '@nightshift/models';
import type { Aesthetic } from './aesthetic.js';
import type { IndexStore } from './store.js';
import type { Reindexer } from './reindex.js';
import { parseSearchQuery, QueryError, search } from './search.js';
import type { Taste } from './taste.js';
import { tasteRoutes } from './taste-routes.js';
import { favoritesUser, userOf } from './users.js';

export interface IndexerHttpDeps {
  store: IndexStore;
  embedder: Pick<ClipEmbedder, 'embedTexts'>;
  storage: Pick<Storage, 'get'>;
  reindexer?: Reindexer | undefined;
  /** Learns from favorites; without it /api/sweeps/:id/best is absent. */
  taste?: Taste | undefined;
  /** The aesthetic head: what /best falls back to with too few favorites. */
  aesthetic?: Aesthetic | undefined;
  apiToken?: string | undefined;
  stats: () => Record<string, unknown>;
}

export function createIndexerApp(deps: IndexerHttpDeps): Hono {
  const app = new Hono();
  const { store } = deps;
  const catalog = store.catalog;
  if (deps.apiToken) {
    app.use('/api/*', bearerAuth({ token: deps.apiToken }));
    app.use('/files/*', bearerAuth({ token: deps.apiToken }));
  }
  // Favorites are per user: whose, the coordinator says (users.ts).
  app.use('/api/*', favoritesUser(deps.apiToken));
  app.get('/healthz', (c) => c.json({ ok: true, ...deps.stats() }));

  const fileUrl = (key: string) => `/files/${key}`;
  const textCache = new Map<string, Float32Array>();
  app.get('/api/search', async (c) => {
    try {
      const query = parseSearchQuery((name) => c.req.query(name));
      const out = await search({ ...query, user: userOf(c) }, { catalog, index: store.index, embedder: deps.embedder, model: store.model.id, fileUrl, textCache });
      return c.json(out);
    } catch (err) {
      if (err instanceof QueryError) return c.json({ error: err.message }, 400);
      throw err;
    }
  });

  const keyParam = (c: Context) => {
    const raw = c.req.param('key') ?? '';
    try {
      return decodeURIComponent(raw);
    } catch {
      return raw; // not percent-encoded after all; it will simply not be found
    }
  };
  const favorite = (value: boolean) => (c: Context) => {
    const key = keyParam(c);
    const rk = catalog.resolve(key);
    if (!rk) return c.json({ error: `unknown image key: ${key}` }, 404);
    const user = userOf(c);
    catalog.setFavorite(user, rk, value);
    deps.taste?.favoritesChanged(user);
    return c.json({ key: catalog.get(rk)!.key, renderKey: rk, favorite: value });
  };
  app.put('/api/favorites/:key{.+}', favorite(true));
  app.delete('/api/favorites/:key{.+}', favorite(false));
  // ?sweep= is what the coordinator asks when upscaling "the favorites of sweep X".
  app.get('/api/favorites', (c) => {
    const favs = catalog.allFavorites(userOf(c), c.req.query('sweep') || undefined);
    return c.json({ favorites: favs.map((f) => ({ renderKey: f.render_key, key: f.key ?? imageKey(f.render_key), sweepId: f.sweep_id })) });
  });

  app.get('/api/images/:key{.+}', (c) => {
    const key = keyParam(c);
    const rk = catalog.resolve(key);
    const e = rk ? catalog.get(rk) : undefined;
    if (!e) return c.json({ error: `unknown image key: ${key}` }, 404);
    const dup = e.dup_of === null ? undefined : catalog.byId(e.dup_of);
    return c.json({
      key: e.key,
      renderKey: e.render_key,
      prompt: e.prompt,
      seed: e.seed,
      sweepId: e.sweep_id,
      jobId: e.job_id,
      params: JSON.parse(e.params_json) as unknown,
      backend: e.backend,
      renderModel: e.render_model,
      node: e.node,
      createdAt: e.created_at,
      model: e.model,
      searchable: e.model === store.model.id,
      favorite: catalog.favorites(userOf(c), [e.render_key]).has(e.render_key),
      duplicateOf: dup ? { key: dup.key, distance: e.dup_distance } : null,
      variants: (catalog.variants([e.render_key]).get(e.render_key) ?? []).map((v) => ({ key: v.key, url: fileUrl(v.key), model: v.model, createdAt: v.created_at })),
      url: fileUrl(e.key),
      thumbUrl: fileUrl(thumbKey(e.render_key)),
    });
  });

  app.post('/api/reindex', (c) => {
    if (!deps.reindexer) return c.json({ error: 'reindex is not available here' }, 501);
    const prune = c.req.query('prune') !== 'false';
    if (!deps.reindexer.start('bucket', { prune })) return c.json({ error: 'a reindex is already running', status: deps.reindexer.status }, 409);
    return c.json({ started: true, status: deps.reindexer.status }, 202);
  });
  app.get('/api/reindex', (c) => c.json(deps.reindexer?.status ?? { running: false }));

  if (deps.taste) app.route('/', tasteRoutes({ taste: deps.taste, catalog, fileUrl, aesthetic: deps.aesthetic }));

  app.route('/files', filesRoute(deps.storage));
  return app;
}
