/**
 * Images are their sweep owner's (issue 16). The indexer knows nothing of
 * users, so the coordinator's proxy to it checks an image route's key before
 * passing it on, and keeps only the caller's images in a listing's answer
 * (search, favorites, best). Admins see everything, untouched.
 */
import { keyPrefix, renderKeyOf, renderKeyOfImageRef } from '@nightshift/common';
import type { Store } from './store.js';
import type { Caller } from './callers.js';

export type OwnedImageStore = Pick<Store, 'imageOwnedBy' | 'getSweep' | 'getJob'>;

/** Whether `caller` may see the image `ref` (an image key or render key): an admin, or an owner of a sweep that rendered it. */
export function mayUseImage(store: OwnedImageStore, caller: Caller, ref: string): boolean {
  return caller.admin || store.imageOwnedBy(renderKeyOfImageRef(ref), caller.user);
}

/**
 * Whether `caller` may read the bucket object `key` through /files: an image,
 * thumbnail or upscale of their own sweeps' renders, or a live preview of
 * their own job. Anything else is refused (404), admins excepted.
 */
export function mayUseFile(store: OwnedImageStore, caller: Caller, key: string): boolean {
  if (caller.admin) return true;
  if (keyPrefix(key) === 'previews') {
    const job = store.getJob(key.slice('previews/'.length).replace(/\.webp$/, ''));
    return job !== undefined && store.getSweep(job.sweep_id)?.owner === caller.user;
  }
  const renderKey = renderKeyOf(key);
  return renderKey !== undefined && store.imageOwnedBy(renderKey, caller.user);
}

interface Listed {
  renderKey?: unknown;
  key?: unknown;
  sweepId?: unknown;
}

/** The caller's part of an indexer answer: each array of images (`results`, `favorites`) keeps only theirs. */
export function keepOwnImages(store: OwnedImageStore, caller: Caller, body: unknown): unknown {
  if (caller.admin || typeof body !== 'object' || body === null || Array.isArray(body)) return body;
  const sweepOwner = new Map<string, string | undefined>();
  const mine = (item: Listed) => {
    if (typeof item.sweepId === 'string') {
      if (!sweepOwner.has(item.sweepId)) sweepOwner.set(item.sweepId, store.getSweep(item.sweepId)?.owner);
      if (sweepOwner.get(item.sweepId) === caller.user) return true;
    }
    const ref = typeof item.renderKey === 'string' ? item.renderKey : typeof item.key === 'string' ? item.key : undefined;
    return ref !== undefined && mayUseImage(store, caller, ref);
  };
  const out: Record<string, unknown> = { ...(body as Record<string, unknown>) };
  for (const [k, v] of Object.entries(out)) {
    if (Array.isArray(v)) out[k] = v.filter((item) => typeof item === 'object' && item !== null && mine(item as Listed));
  }
  return out;
}
