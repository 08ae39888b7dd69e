/**
 * GET /api/sweeps/:id/best?k=20&starred=false
 *   → {results: [{key, renderKey, score, favorite, prompt, seed, sweepId, url, thumbUrl, aesthetic?}], scoredBy: "taste", model: {positives, negatives, cvAuc, …}}
 * GET /api/best?k=&starred=   the same over every image (the gallery's "Likely favorites")
 * Images ranked by the taste model (score: its probability that you would
 * star the image). With too few favorites to learn from, and an aesthetic
 * head configured (NIGHTSHIFT_AESTHETIC_MODEL), ranked by the head instead:
 *   → {results: […], scoredBy: "aesthetic", aesthetic: {head, scored, unscored}, taste: {error, favorites, needed}}
 * With neither, 409: no score is ever made up. With a head, taste results
 * carry the head's score too (`aesthetic`), which breaks ties.
 * `starred=false` leaves out images already starred. Taste model, `favorite`
 * and `starred` are the caller's (X-Nightshift-User, users.ts).
 */
import { Hono, type Context } from 'hono';
import { thumbKey } from '@nightshift/common';
import type { Aesthetic } from './aesthetic.js';
import type { Catalog } from './catalog.js';
import type { ScoredImage } from './ranking.js';
import { TooFewFavorites, type Taste } from './taste.js';
import { userOf } from './users.js';

const MAX_K = 1000;

interface Ranker {
  taste: (k: number, starred: boolean) => ReturnType<Taste['best']>;
  aesthetic?: ((k: number, starred: boolean) => ReturnType<Aesthetic['best']>) | undefined;
}

export interface TasteRouteDeps {
  taste: Taste;
  catalog: Pick<Catalog, 'favorites' | 'favoriteCount'>;
  fileUrl: (key: string) => string;
  aesthetic?: Aesthetic | undefined;
}

export function tasteRoutes({ taste, catalog, fileUrl, aesthetic }: TasteRouteDeps): Hono {
  const app = new Hono();
  const withUrls = (r: ScoredImage & { aesthetic?: number }) => ({ ...r, url: fileUrl(r.key), thumbUrl: fileUrl(thumbKey(r.renderKey)) });
  /** Taste results with the head's scores beside them, ties broken by those. */
  const withAesthetic = async (results: ScoredImage[]): Promise<(ScoredImage & { aesthetic?: number })[]> => {
    if (!aesthetic) return results;
    const scores = await aesthetic.scoresOf(results.map((r) => r.renderKey));
    const out = results.map((r) => ({ ...r, ...(scores.has(r.renderKey) ? { aesthetic: scores.get(r.renderKey)! } : {}) }));
    return out.sort((a, b) => b.score - a.score || (b.aesthetic ?? -Infinity) - (a.aesthetic ?? -Infinity) || (a.renderKey < b.renderKey ? -1 : 1));
  };
  /**
   * The head judges images, not people, so its ranking is everyone's; whose
   * stars mark `favorite` (and are left out by starred=false) is the caller's:
   * asked for k more than the caller's stars in scope, all of them, then
   * marked and thinned here.
   */
  const aestheticFor =
    (head: Aesthetic, user: string, sweep: string | undefined) =>
    async (k: number, starred: boolean): ReturnType<Aesthetic['best']> => {
      const want = starred ? k : k + catalog.favoriteCount(user, sweep);
      const ranked = sweep === undefined ? await head.bestOverall(want, { starred: true }) : await head.best(sweep, want, { starred: true });
      const mine = catalog.favorites(user, ranked.results.map((r) => r.renderKey));
      const results = ranked.results.map((r) => ({ ...r, favorite: mine.has(r.renderKey) })).filter((r) => starred || !r.favorite);
      return { ...ranked, results: results.slice(0, k) };
    };
  const route = (rank: (c: Context) => Ranker) => async (c: Context) => {
    const rawK = c.req.query('k');
    const k = rawK === undefined || rawK === '' ? 20 : Number(rawK);
    if (!Number.isInteger(k) || k < 1 || k > MAX_K) return c.json({ error: `k must be a whole number from 1 to ${MAX_K}` }, 400);
    const starred = c.req.query('starred');
    if (starred !== undefined && starred !== 'true' && starred !== 'false') return c.json({ error: 'starred must be true or false' }, 400);
    const rankers = rank(c);
    try {
      const { results, model } = await rankers.taste(k, starred !== 'false');
      return c.json({ results: (await withAesthetic(results)).map(withUrls), scoredBy: 'taste', model });
    } catch (err) {
      if (!(err instanceof TooFewFavorites)) throw err;
      const tooFew = { error: err.message, favorites: err.favorites, needed: err.needed };
      if (!rankers.aesthetic) return c.json(tooFew, 409);
      const { results, aesthetic: info } = await rankers.aesthetic(k, starred !== 'false');
      return c.json({ results: results.map(withUrls), scoredBy: 'aesthetic', aesthetic: info, taste: tooFew });
    }
  };
  // Each caller's own model (users.ts says whose): B's best never reflects A's stars.
  app.get(
    '/api/sweeps/:id/best',
    route((c) => {
      const sweep = c.req.param('id') ?? '';
      const user = userOf(c);
      return {
        taste: (k, starred) => taste.best(user, sweep, k, { starred }),
        aesthetic: aesthetic && aestheticFor(aesthetic, user, sweep),
      };
    }),
  );
  app.get(
    '/api/best',
    route((c) => {
      const user = userOf(c);
      return {
        taste: (k, starred) => taste.bestOverall(user, k, { starred }),
        aesthetic: aesthetic && aestheticFor(aesthetic, user, undefined),
      };
    }),
  );
  return app;
}
