/** The indexer's HTTP API: search, favorites, files, health. */
import { Hono, type Context } from 'hono';
import { bearerAuth } from 'hono/bearer-auth';
import { filesRoute, type Storage } from '@nightshift/common';
import type { ClipEmbedder } from '@nightshift/models';
import type { Catalog } from './catalog.js';
import type { FlatIndex } from './flat-index.js';
import { QueryError, search } from './search.js';

export interface IndexerHttpDeps {
  catalog: Catalog;
  index: FlatIndex;
  embedder: ClipEmbedder;
  storage: Pick<Storage, 'get'>;
  apiToken?: string | undefined;
  stats: () => Record<string, unknown>;
}

export function createIndexerApp(deps: IndexerHttpDeps): Hono {
  const app = new Hono();
  if (deps.apiToken) {
    app.use('/api/*', bearerAuth({ token: deps.apiToken }));
    app.use('/files/*', bearerAuth({ token: deps.apiToken }));
  }
  app.get('/healthz', (c) => c.json({ ok: true, ...deps.stats() }));

  app.get('/api/search', async (c) => {
    const kText = c.req.query('k') ?? '10';
    const k = /^-?\d+$/.test(kText) ? Number(kText) : NaN;
    try {
      const results = await search(
        { q: c.req.query('q'), image: c.req.query('image'), k, sweep: c.req.query('sweep'), favorites: c.req.query('favorites') === 'true' },
        { ...deps, fileUrl: (key) => `/files/${key}` },
      );
      return c.json({ results });
    } catch (err) {
      if (err instanceof QueryError) return c.json({ error: err.message }, 400);
      throw err;
    }
  });

  const favorite = (value: boolean) => (c: Context) => {
    const key = decodeURIComponent(c.req.param('key') ?? '');
    const entry = deps.catalog.byKey(key);
    if (!entry) return c.json({ error: `unknown image key: ${key}` }, 404);
    deps.catalog.setFavorite(entry.render_key, value);
    return c.json({ key: entry.key, favorite: value });
  };
  app.put('/api/favorites/:key{.+}', favorite(true));
  app.delete('/api/favorites/:key{.+}', favorite(false));

  app.route('/files', filesRoute(deps.storage));
  return app;
}
