/**
 * Turning scores of catalog rows into the ranked answer of the "best" routes,
 * whoever scored them (the taste model, the aesthetic head): score order,
 * ties by renderKey, images `user` starred left out on request, the first k
 * with their catalog fields.
 */
import { LOCAL_USER } from './catalog-schema.js';
import type { Catalog } from './catalog.js';

export interface ScoredImage {
  key: string;
  renderKey: string;
  score: number;
  favorite: boolean;
  prompt: string;
  seed: number;
  sweepId: string;
}

/** `favorite` and `starred` are `o.user`'s (the local user's when unset). */
export function rankImages(catalog: Catalog, scores: ReadonlyMap<number, number>, k: number, o: { starred?: boolean; user?: string } = {}): ScoredImage[] {
  const infos = catalog.infos([...scores.keys()]);
  const favorites = catalog.favorites(o.user ?? LOCAL_USER, [...infos.values()].map((r) => r.render_key));
  const out: ScoredImage[] = [];
  for (const [id, score] of scores) {
    const info = infos.get(id);
    if (!info) continue;
    const favorite = favorites.has(info.render_key);
    if (o.starred === false && favorite) continue;
    out.push({ key: info.key, renderKey: info.render_key, score, favorite, prompt: info.prompt, seed: info.seed, sweepId: info.sweep_id });
  }
  out.sort((a, b) => b.score - a.score || (a.renderKey < b.renderKey ? -1 : 1));
  return out.slice(0, k);
}
