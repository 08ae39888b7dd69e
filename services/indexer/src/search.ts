/**
 * Search over the index: by text, by an indexed image, or both (weighted, as
 * rclip does), with the result shape of DESIGN.md.
 */
import type { Catalog, CatalogEntry } from './catalog.js';
import { vectorOf } from './catalog.js';
import type { FlatIndex } from './flat-index.js';
import type { ClipEmbedder } from '@nightshift/models';

export const MAX_K = 500;

export interface SearchQuery {
  q?: string | undefined;
  image?: string | undefined;
  k: number;
  sweep?: string | undefined;
  favorites?: boolean;
}

export interface SearchResult {
  key: string;
  renderKey: string;
  score: number;
  prompt: string;
  seed: number;
  sweepId: string;
  url: string;
  thumbUrl: string;
  favorite: boolean;
}

export class QueryError extends Error {}

export async function search(
  query: SearchQuery,
  deps: { catalog: Catalog; index: FlatIndex; embedder: ClipEmbedder; fileUrl: (key: string) => string },
): Promise<SearchResult[]> {
  const { catalog, index, embedder } = deps;
  if (!Number.isInteger(query.k) || query.k <= 0 || query.k > MAX_K) throw new QueryError(`k must be an integer from 1 to ${MAX_K}`);
  const text = query.q?.trim();
  if (query.q !== undefined && !text) throw new QueryError('q must not be empty');
  if (!text && !query.image) throw new QueryError('give q=TEXT or image=IMAGE_KEY');
  const q = new Float32Array(index.dim);
  if (text) {
    const [t] = await embedder.embedTexts([text]);
    for (let i = 0; i < q.length; i++) q[i]! += t![i]!;
  }
  if (query.image) {
    const entry = catalog.byKey(query.image);
    if (!entry) throw new QueryError(`unknown image key: ${query.image}`);
    const v = vectorOf(entry);
    for (let i = 0; i < q.length; i++) q[i]! += v[i]!;
  }
  const filter = query.sweep || query.favorites;
  const entries = new Map<string, CatalogEntry>();
  const accept = (id: string) => {
    if (!filter) return true;
    const e = catalog.get(id);
    if (!e) return false;
    entries.set(id, e);
    return (!query.sweep || e.sweep_id === query.sweep) && (!query.favorites || e.favorite === 1);
  };
  return index.search(q, query.k, accept).map((hit) => {
    const e = entries.get(hit.id) ?? catalog.get(hit.id)!;
    return {
      key: e.key,
      renderKey: e.render_key,
      score: Number(hit.score.toFixed(6)),
      prompt: e.prompt,
      seed: e.seed,
      sweepId: e.sweep_id,
      url: deps.fileUrl(e.key),
      thumbUrl: deps.fileUrl(`thumbs/${e.render_key}.webp`),
      favorite: e.favorite === 1,
    };
  });
}
