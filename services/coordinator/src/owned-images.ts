/**
 * Images are their sweep owner's (issue 16). The indexer knows nothing of
 * users, so the coordinator's proxy to it checks an image route's key before
 * passing it on, and keeps only the caller's images in a listing's answer
 * (search, favorites, best). Admins see everything, untouched.
 */
import { keyPrefix, renderKeyOf, renderKeyOfImageRef } from '@nightshift/common';
import type { ListingEngine, StoreEngine } from './store-engine/engine.js';
import type { Caller } from './callers.js';

export type OwnedImageEngine = Pick<StoreEngine, 'getSweep' | 'getJob'> & { listings: Pick<ListingEngine, 'imageOwnedBy'> };

/** Whether `caller` may see the image `ref` (an image key or render key): an admin, or an owner of a sweep that rendered it. */
export async function mayUseImage(engine: OwnedImageEngine, caller: Caller, ref: string): Promise<boolean> {
  return caller.admin || (await engine.listings.imageOwnedBy(renderKeyOfImageRef(ref), caller.user));
}

/**
 * Whether `caller` may read the bucket object `key` through /files: an image,
 * thumbnail or upscale of their own sweeps' renders, or a live preview of
 * their own job. Anything else is refused (404), admins excepted.
 */
export async function mayUseFile(engine: OwnedImageEngine, caller: Caller, key: string): Promise<boolean> {
  if (caller.admin) return true;
  if (keyPrefix(key) === 'previews') {
    const job = await engine.getJob(key.slice('previews/'.length).replace(/\.webp$/, ''));
    return job !== undefined && (await engine.getSweep(job.sweep_id))?.owner === caller.user;
  }
  const renderKey = renderKeyOf(key);
  return renderKey !== undefined && (await engine.listings.imageOwnedBy(renderKey, caller.user));
}

interface Listed {
  renderKey?: unknown;
  key?: unknown;
  sweepId?: unknown;
}

/** The caller's part of an indexer answer: each array of images (`results`, `favorites`) keeps only theirs. */
export async function keepOwnImages(engine: OwnedImageEngine, caller: Caller, body: unknown): Promise<unknown> {
  if (caller.admin || typeof body !== 'object' || body === null || Array.isArray(body)) return body;
  const sweepOwner = new Map<string, string | undefined>();
  const mine = async (item: Listed) => {
    if (typeof item.sweepId === 'string') {
      if (!sweepOwner.has(item.sweepId)) sweepOwner.set(item.sweepId, (await engine.getSweep(item.sweepId))?.owner);
      if (sweepOwner.get(item.sweepId) === caller.user) return true;
    }
    const ref = typeof item.renderKey === 'string' ? item.renderKey : typeof item.key === 'string' ? item.key : undefined;
    return ref !== undefined && (await mayUseImage(engine, caller, ref));
  };
  const out: Record<string, unknown> = { ...(body as Record<string, unknown>) };
  for (const [k, v] of Object.entries(out)) {
    if (!Array.isArray(v)) continue;
    // One item at a time, in order: a sweep's owner is asked once per answer.
    const kept: unknown[] = [];
    for (const item of v) if (typeof item === 'object' && item !== null && (await mine(item as Listed))) kept.push(item);
    out[k] = kept;
  }
  return out;
}
