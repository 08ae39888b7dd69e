/**
 * What goes into an album, a .zip download or a share (issue 15): a selection
 * (favorites, optionally of one sweep; a sweep's finished images; or chosen
 * image keys) resolved to rendered images with their prompt, seed and
 * settings, from the coordinator's own jobs table. Favorites live in the
 * indexer and are asked from it. Every key is a 64-hex renderKey of a
 * finished render, so no selection can name an object outside images/,
 * thumbs/ or upscaled/.
 */
import { z } from 'zod';
import { MAX_ALBUM_IMAGES, type Album, type AlbumImage } from '@nightshift/album';
import { fieldIssues, renderKeyOfImageRef, type Config, type FieldIssue } from '@nightshift/common';
import type { GalleryEngine, ListingEngine, StoreEngine } from './store-engine/engine.js';
import { LOCAL_ADMIN, mayUse, type Caller } from './callers.js';
import { indexerHeaders } from './indexer-proxy.js';

export { MAX_ALBUM_IMAGES };

/** What an album is made of; exactly one of favorites/sweep/keys (favorites may name a sweep). */
export const SelectionFields = {
  favorites: z.boolean().optional(),
  sweep: z.string().min(1).max(100).optional(),
  keys: z.array(z.string().min(1).max(300)).min(1, 'needs at least one image key').max(MAX_ALBUM_IMAGES, `at most ${MAX_ALBUM_IMAGES} images`).optional(),
  /** A title for the page (the CLI names a search album by its query). */
  title: z.string().min(1).max(200).optional(),
};
export const SelectionSchema = z.strictObject(SelectionFields);
export type Selection = z.infer<typeof SelectionSchema>;

/** A selection that cannot become an album, with the HTTP status that says why. */
export class AlbumError extends Error {
  constructor(
    readonly status: 400 | 404 | 413 | 503,
    message: string,
    readonly details: FieldIssue[] = [],
  ) {
    super(message);
  }
}

export interface AlbumDeps {
  config: Pick<Config, 'NIGHTSHIFT_API_TOKEN' | 'NIGHTSHIFT_INDEXER_URL'>;
  engine: Pick<StoreEngine, 'getSweep'> & { listings: Pick<ListingEngine, 'jobs' | 'imageOwnedBy'>; gallery: Pick<GalleryEngine, 'albumJob' | 'upscaled'> };
}

/** Checks the parsed body's one-source rule; returns the field issues (none when fine). */
export function selectionIssues(sel: Selection): FieldIssue[] {
  const sources = [sel.favorites === true, sel.keys !== undefined, sel.sweep !== undefined && sel.favorites !== true].filter(Boolean).length;
  if (sources === 1) return [];
  return [{ path: '', message: 'give exactly one of: "favorites": true (optionally with "sweep"), "sweep": ID, or "keys": [image keys]' }];
}

/** Parses a request body into a selection, or throws a 400 AlbumError naming the fields. */
export function parseSelection(body: unknown): Selection {
  const parsed = SelectionSchema.safeParse(body);
  if (!parsed.success) throw new AlbumError(400, 'invalid album selection', fieldIssues(parsed.error.issues));
  const issues = selectionIssues(parsed.data);
  if (issues.length) throw new AlbumError(400, issues[0]!.message, issues);
  return parsed.data;
}

const RENDER_KEY = /^[0-9a-f]{64}$/;

/** The render keys a selection names, in album order, at most MAX_ALBUM_IMAGES. */
/** `caller`: a user's album holds only their own sweeps' images; another's sweep or image is as unknown as a missing one (issue 16). */
async function selectedKeys(deps: AlbumDeps, sel: Selection, caller: Caller): Promise<{ keys: string[]; title: string; strict: boolean }> {
  const mine = async (renderKey: string) => caller.admin || (await deps.engine.listings.imageOwnedBy(renderKey, caller.user));
  if (sel.keys) {
    const keys = sel.keys.map(renderKeyOfImageRef);
    const bad = keys.findIndex((k) => !RENDER_KEY.test(k));
    if (bad >= 0) throw new AlbumError(400, `not an image key: ${JSON.stringify(sel.keys[bad]!.slice(0, 100))}`, [{ path: `keys.${bad}`, message: 'expected images/<64 hex>.png or a 64-hex render key' }]);
    // Another user's image is answered as albumOfKeys answers a key with no rendered image.
    let theirs: string | undefined;
    for (const k of keys) {
      if (await mine(k)) continue;
      theirs = k;
      break;
    }
    if (theirs !== undefined) throw new AlbumError(400, `no rendered image with key ${theirs}`, [{ path: 'keys', message: `no rendered image with key ${theirs}` }]);
    return { keys, title: sel.title ?? `${keys.length} image${keys.length === 1 ? '' : 's'}`, strict: true };
  }
  const found = sel.sweep === undefined ? undefined : await deps.engine.getSweep(sel.sweep);
  const sweep = found && mayUse(caller, found.owner) ? found : undefined;
  if (sel.sweep !== undefined && !sweep) throw new AlbumError(404, `no such sweep: ${sel.sweep}`, [{ path: 'sweep', message: 'no such sweep' }]);
  if (sel.favorites) {
    // The caller's own stars (the indexer keeps them per user), and of those only images of their own sweeps.
    const keys: string[] = [];
    for (const k of await favoriteKeys(deps, sel.sweep, caller.user)) if (await mine(k)) keys.push(k);
    return { keys, title: sel.title ?? (sweep ? `Favorites of ${sweep.name}` : 'Favorites'), strict: false };
  }
  const jobs = await deps.engine.listings.jobs(sweep!.id, ['done', 'skipped'], { offset: 0, limit: MAX_ALBUM_IMAGES + 1 });
  return { keys: jobs.map((j) => j.render_key), title: sel.title ?? sweep!.name, strict: false };
}

/** The render keys `user` starred in the indexer (of one sweep, when named). */
async function favoriteKeys(deps: AlbumDeps, sweep: string | undefined, user: string): Promise<string[]> {
  const url = `${deps.config.NIGHTSHIFT_INDEXER_URL}/api/favorites${sweep ? `?sweep=${encodeURIComponent(sweep)}` : ''}`;
  const res = await fetch(url, { headers: indexerHeaders(deps.config.NIGHTSHIFT_API_TOKEN, user), signal: AbortSignal.timeout(10_000) }).catch(() => undefined);
  if (!res?.ok) throw new AlbumError(503, 'favorites are unavailable: the indexer cannot be reached or does not answer GET /api/favorites');
  const body = (await res.json()) as { favorites?: { renderKey?: unknown }[] };
  return (body.favorites ?? []).map((f) => f.renderKey).filter((k): k is string => typeof k === 'string' && RENDER_KEY.test(k));
}

/**
 * The album a selection makes. Explicit keys must all be finished renders
 * (400 naming the first that is not); favorites and sweeps take what there
 * is. More than MAX_ALBUM_IMAGES is a 413; nothing at all a 400.
 */
export async function resolveAlbum(deps: AlbumDeps, sel: Selection, now = Date.now(), caller: Caller = LOCAL_ADMIN): Promise<Album> {
  const { keys, title, strict } = await selectedKeys(deps, sel, caller);
  const album = await albumOfKeys(deps, keys, { title, strict, owner: caller.user, now });
  if (!album.images.length) {
    const what = sel.favorites ? 'no favorites yet (star some images first)' : sel.sweep ? 'that sweep has no finished images yet' : 'no images';
    throw new AlbumError(400, `nothing to put in an album: ${what}`);
  }
  return album;
}

/** How albumOfKeys reads its keys. */
export interface AlbumOfKeysOptions {
  title: string;
  /** Every key must be a finished render (else images without one drop out). */
  strict: boolean;
  /** Whose render to describe when several sweeps made the same image: never another user's sweep id when the owner has one. */
  owner: string;
  now?: number;
}

/** The album of these render keys. */
export async function albumOfKeys(deps: { engine: { gallery: Pick<GalleryEngine, 'albumJob' | 'upscaled'> } }, keys: readonly string[], o: AlbumOfKeysOptions): Promise<Album> {
  const unique = [...new Set(keys)];
  if (unique.length > MAX_ALBUM_IMAGES) throw new AlbumError(413, `too many images for one album: more than ${MAX_ALBUM_IMAGES}; choose fewer (one sweep's favorites, or keys)`);
  const images: AlbumImage[] = [];
  for (const rk of unique) {
    const job = await deps.engine.gallery.albumJob(rk, o.owner);
    if (!job) {
      if (o.strict) throw new AlbumError(400, `no rendered image with key ${rk}`, [{ path: 'keys', message: `no rendered image with key ${rk}` }]);
      continue; // a favorite whose job this coordinator no longer holds
    }
    images.push({ renderKey: rk, prompt: job.prompt, seed: job.seed, sweepId: job.sweep_id, params: JSON.parse(job.params_json) as Record<string, unknown>, upscaled: await deps.engine.gallery.upscaled(rk) });
  }
  return { title: o.title, createdAt: new Date(o.now ?? Date.now()).toISOString(), images };
}
