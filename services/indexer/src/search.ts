/**
 * Search: by text, by an indexed image, or both with weights (as rclip
 * combines queries), with metadata filters and pagination, in the result
 * shape of docs/design.md "HTTP API: indexer".
 *
 * Filters are applied exactly, whatever the index mode: a selective filter
 * (few matching images) is answered by an exact scan over just those rows;
 * a broad one by the ANN index, fetching more candidates until enough pass.
 */
import { thumbKey } from '@nightshift/common';
import { normalise, type ClipEmbedder } from '@nightshift/models';
import { isoTime, type Catalog, type CatalogInfo, type Filter } from './catalog.js';
import { exactScan, type Hit, type VectorIndex } from './vector-index.js';
import { LOCAL_USER } from './catalog-schema.js';

export const MAX_K = 500;
export const MAX_OFFSET = 10_000;
/** Filtered subsets up to this size are scanned exactly. */
export const EXACT_SUBSET = 20_000;

export interface SearchQuery {
  q?: string | undefined;
  image?: string | undefined;
  textWeight?: number | undefined;
  imageWeight?: number | undefined;
  k: number;
  offset?: number | undefined;
  sweep?: string | undefined;
  prompt?: string | undefined;
  favorites?: boolean | undefined;
  from?: string | undefined;
  to?: string | undefined;
  minScore?: number | undefined;
  hideDuplicates?: boolean | undefined;
  /** Whose stars `favorites` and each result's `favorite` mean (set from X-Nightshift-User, never from the query; `local` when unset). */
  user?: string | undefined;
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
  createdAt: string;
  /** The earlier image this one nearly duplicates (key), or null. */
  duplicateOf: string | null;
  /** The ×4 upscale of this image, when there is one. */
  upscaled: { key: string; url: string; model: string } | null;
}

export interface SearchDeps {
  catalog: Catalog;
  index: VectorIndex;
  embedder: Pick<ClipEmbedder, 'embedTexts'>;
  model: string;
  fileUrl: (key: string) => string;
  /** Filtered subsets up to this size are scanned exactly (default EXACT_SUBSET). */
  exactSubset?: number;
  /** Text-embedding cache, shared across calls (pagination repeats queries). */
  textCache?: Map<string, Float32Array>;
}

export class QueryError extends Error {}

/** Parses and checks the query string of GET /api/search. */
export function parseSearchQuery(get: (name: string) => string | undefined): SearchQuery {
  const int = (name: string, def: number, min: number, max: number): number => {
    const s = get(name);
    if (s === undefined || s === '') return def;
    if (!/^-?\d+$/.test(s)) throw new QueryError(`${name} must be an integer from ${min} to ${max}`);
    const v = Number(s);
    if (v < min || v > max) throw new QueryError(`${name} must be an integer from ${min} to ${max}`);
    return v;
  };
  const num = (name: string, min: number, max: number): number | undefined => {
    const s = get(name);
    if (s === undefined || s === '') return undefined;
    const v = Number(s);
    if (!Number.isFinite(v) || v < min || v > max) throw new QueryError(`${name} must be a number from ${min} to ${max}`);
    return v;
  };
  const date = (name: string): string | undefined => {
    const s = get(name);
    if (s === undefined || s === '') return undefined;
    if (Number.isNaN(Date.parse(s))) throw new QueryError(`${name} must be a date or date-time (ISO 8601), got ${JSON.stringify(s)}`);
    return isoTime(s);
  };
  const bool = (name: string): boolean => {
    const s = get(name);
    if (s === undefined || s === '' || s === 'false' || s === '0') return false;
    if (s === 'true' || s === '1') return true;
    throw new QueryError(`${name} must be true or false`);
  };
  const q = get('q');
  if (q !== undefined && !q.trim()) throw new QueryError('q must not be empty');
  const image = get('image') || undefined;
  if (q === undefined && !image) throw new QueryError('give q=TEXT, image=IMAGE_KEY, or both');
  const dups = get('duplicates') ?? 'show';
  if (dups !== 'show' && dups !== 'hide') throw new QueryError('duplicates must be show or hide');
  const out: SearchQuery = {
    q: q?.trim(),
    image,
    textWeight: num('textWeight', 0, 100),
    imageWeight: num('imageWeight', 0, 100),
    k: int('k', 10, 1, MAX_K),
    offset: int('offset', 0, 0, MAX_OFFSET),
    sweep: get('sweep') || undefined,
    prompt: get('prompt') || undefined,
    favorites: bool('favorites'),
    from: date('from'),
    to: date('to'),
    minScore: num('minScore', -1, 1),
    hideDuplicates: dups === 'hide',
  };
  if (out.from && out.to && out.from >= out.to) throw new QueryError('from must be before to');
  if (out.q && out.image && out.textWeight === 0 && out.imageWeight === 0) throw new QueryError('textWeight and imageWeight cannot both be 0');
  return out;
}

async function textVector(text: string, deps: SearchDeps): Promise<Float32Array> {
  const cached = deps.textCache?.get(text);
  if (cached) return cached;
  const [v] = await deps.embedder.embedTexts([text]);
  if (deps.textCache) {
    if (deps.textCache.size >= 256) deps.textCache.delete(deps.textCache.keys().next().value!);
    deps.textCache.set(text, v!);
  }
  return v!;
}

/** The query vector: weighted sum of the text and image embeddings, normalised. */
export async function queryVector(query: SearchQuery, deps: SearchDeps): Promise<Float32Array> {
  const q = new Float32Array(deps.index.dim);
  if (query.image) {
    const rk = deps.catalog.resolve(query.image);
    const info = rk ? deps.catalog.get(rk) : undefined;
    if (!info) throw new QueryError(`unknown image key: ${query.image}`);
    if (info.model !== deps.model) throw new QueryError(`image ${query.image} is still being re-indexed for the current model; try again shortly`);
    const v = deps.catalog.vector(info.id)!;
    const w = query.q ? (query.imageWeight ?? 1) : 1;
    for (let i = 0; i < q.length; i++) q[i]! += w * v[i]!;
  }
  if (query.q) {
    const t = await textVector(query.q, deps);
    const w = query.image ? (query.textWeight ?? 1) : 1;
    for (let i = 0; i < q.length; i++) q[i]! += w * t[i]!;
  }
  return normalise(q);
}

/**
 * Best first; equal scores (identical images) by id, so that pages cut
 * through a tie the same way every time.
 */
function stableTop(hits: Hit[], want: number): Hit[] {
  return hits.sort((a, b) => b.score - a.score || a.id - b.id).slice(0, want);
}

/** Extra candidates fetched so that ties at the cut are resolved by id, not by the index's internals. */
const TIE_SLACK = 8;

/** The ranked hits for offset + k, filters applied. */
export function rankedHits(qv: Float32Array, query: SearchQuery, deps: Pick<SearchDeps, 'catalog' | 'index' | 'model' | 'exactSubset'>): Hit[] {
  const { catalog, index } = deps;
  const want = (query.offset ?? 0) + query.k;
  const filter: Filter = {
    model: deps.model,
    sweep: query.sweep,
    prompt: query.prompt,
    favorites: query.favorites,
    user: query.user,
    from: query.from,
    to: query.to,
    hideDuplicates: query.hideDuplicates,
  };
  const filtered = !!(filter.sweep || filter.prompt || filter.favorites || filter.from || filter.to || filter.hideDuplicates);
  if (!filtered) return stableTop(index.search(qv, want + TIE_SLACK), want);
  const matching = catalog.countWhere(filter);
  if (matching === 0) return [];
  if (matching <= (deps.exactSubset ?? EXACT_SUBSET)) {
    const { ids, vectors } = catalog.vectorsWhere(filter);
    return stableTop(exactScan(qv, Math.min(want + TIE_SLACK, ids.length), ids.length, qv.length, (i) => vectors[i]!, (i) => ids[i]!), want);
  }
  // Broad filter: over-fetch from the ANN index in proportion to selectivity, widening until enough pass.
  let k = Math.min(index.size, Math.ceil(((want + TIE_SLACK) * index.size) / matching) * 2 + 32);
  for (;;) {
    const hits = index.search(qv, k);
    const ok = catalog.acceptIds(filter, hits.map((h) => h.id));
    const passed = hits.filter((h) => ok.has(h.id));
    if (passed.length >= want + TIE_SLACK || k >= index.size) return stableTop(passed, want);
    k = Math.min(index.size, k * 4);
  }
}

export async function search(query: SearchQuery, deps: SearchDeps): Promise<{ results: SearchResult[]; nextOffset: number | null }> {
  const qv = await queryVector(query, deps);
  let hits = rankedHits(qv, query, deps);
  const offset = query.offset ?? 0;
  const full = hits.length >= offset + query.k;
  if (query.minScore !== undefined) hits = hits.filter((h) => h.score >= query.minScore!);
  const page = hits.slice(offset, offset + query.k);
  const infos = deps.catalog.infos(page.map((h) => h.id));
  const rows = page.map((h) => ({ hit: h, info: infos.get(h.id) })).filter((r): r is { hit: Hit; info: CatalogInfo } => !!r.info);
  const renderKeys = rows.map((r) => r.info.render_key);
  const favorites = deps.catalog.favorites(query.user ?? LOCAL_USER, renderKeys);
  const variants = deps.catalog.variants(renderKeys);
  const dupIds = rows.map((r) => r.info.dup_of).filter((d): d is number => d !== null);
  const dupInfos = deps.catalog.infos(dupIds);
  const results = rows.map(({ hit, info: e }): SearchResult => {
    const up = variants.get(e.render_key)?.[0];
    return {
      key: e.key,
      renderKey: e.render_key,
      score: Number(hit.score.toFixed(6)),
      prompt: e.prompt,
      seed: e.seed,
      sweepId: e.sweep_id,
      url: deps.fileUrl(e.key),
      thumbUrl: deps.fileUrl(thumbKey(e.render_key)),
      favorite: favorites.has(e.render_key),
      createdAt: e.created_at,
      duplicateOf: e.dup_of === null ? null : (dupInfos.get(e.dup_of)?.key ?? null),
      upscaled: up ? { key: up.key, url: deps.fileUrl(up.key), model: up.model } : null,
    };
  });
  const last = page[page.length - 1];
  const more = full && (query.minScore === undefined || (last !== undefined && last.score >= query.minScore)) && page.length === query.k;
  return { results, nextOffset: more ? offset + query.k : null };
}
