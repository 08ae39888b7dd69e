/**
 * GET /api/sweeps/:id/best?k=20&starred=false
 *   → {results: [{key, renderKey, score, favorite, prompt, seed, sweepId, url, thumbUrl}], scoredBy: "taste", model: {positives, negatives, cvAuc, …}}
 * GET /api/best?k=&starred=   the same over every image (the gallery's "Likely favorites")
 * Images ranked by the taste model (score: its probability that you would
 * star the image). 409 while there are too few favorites to learn from: no
 * score is ever made up. `starred=false` leaves out images already starred.
 */
import { Hono, type Context } from 'hono';
import { thumbKey } from '@nightshift/common';
import { TooFewFavorites, type Taste } from './taste.js';

const MAX_K = 1000;

export function tasteRoutes(taste: Taste, fileUrl: (key: string) => string): Hono {
  const app = new Hono();
  const route = (rank: (c: Context, k: number, starred: boolean) => ReturnType<Taste['best']>) => async (c: Context) => {
    const rawK = c.req.query('k');
    const k = rawK === undefined || rawK === '' ? 20 : Number(rawK);
    if (!Number.isInteger(k) || k < 1 || k > MAX_K) return c.json({ error: `k must be a whole number from 1 to ${MAX_K}` }, 400);
    const starred = c.req.query('starred');
    if (starred !== undefined && starred !== 'true' && starred !== 'false') return c.json({ error: 'starred must be true or false' }, 400);
    try {
      const { results, model } = await rank(c, k, starred !== 'false');
      return c.json({ results: results.map((r) => ({ ...r, url: fileUrl(r.key), thumbUrl: fileUrl(thumbKey(r.renderKey)) })), scoredBy: 'taste', model });
    } catch (err) {
      if (err instanceof TooFewFavorites) return c.json({ error: err.message, favorites: err.favorites, needed: err.needed }, 409);
      throw err;
    }
  };
  app.get('/api/sweeps/:id/best', route((c, k, starred) => taste.best(c.req.param('id') ?? '', k, { starred })));
  app.get('/api/best', route((_c, k, starred) => taste.bestOverall(k, { starred })));
  return app;
}
