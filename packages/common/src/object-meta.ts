/**
 * The S3 user metadata (`x-amz-meta-*`) stored with every image and upscale:
 * the ids the PNG itself does not carry, so the bucket alone is enough to
 * rebuild the indexer's catalog.
 */
import type { IncomingHttpHeaders } from 'node:http';

export const USER_META_PREFIX = 'x-amz-meta-';

/** Header names, without the prefix (S3 lower-cases them). */
export const IMAGE_META = { sweepId: 'sweep-id', renderKey: 'render-key', jobId: 'job-id' } as const;

export interface ImageIds {
  sweepId: string;
  renderKey: string;
  jobId: string;
}

/** The metadata to store with an image or an upscale. */
export function imageObjectMeta(ids: ImageIds): Record<string, string> {
  return { [IMAGE_META.sweepId]: ids.sweepId, [IMAGE_META.renderKey]: ids.renderKey, [IMAGE_META.jobId]: ids.jobId };
}

/** The ids read back; any may be missing (an object another tool wrote). */
export function imageIdsOf(meta: Readonly<Record<string, string>>): Partial<ImageIds> {
  const out: Partial<ImageIds> = {};
  for (const [field, name] of Object.entries(IMAGE_META) as [keyof ImageIds, string][]) {
    const v = meta[name];
    if (v !== undefined) out[field] = v;
  }
  return out;
}

/** User metadata from an S3 response's headers: keys lower-case, without the prefix. */
export function userMetaOf(headers: IncomingHttpHeaders | undefined): Record<string, string> {
  const meta: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) if (k.startsWith(USER_META_PREFIX) && typeof v === 'string') meta[k.slice(USER_META_PREFIX.length)] = v;
  return meta;
}
