/**
 * The registry's view of the bucket: the `minio` client Storage wraps, used
 * directly because model objects are streamed (gigabytes) and carry
 * multi-segment keys that Storage's single-segment check refuses. Every key
 * passed here was built by object-keys.ts's model builders.
 */
import type { Readable } from 'node:stream';
import { USER_META_PREFIX, type Storage } from '@nightshift/common';

export type RegistryStorage = Pick<Storage, 'client' | 'bucket'>;

/** The user metadata that records a model file's sha256 (checked by resumable adds). */
export const SHA256_META = 'sha256';

export interface ObjectStat {
  size: number;
  meta: Record<string, string>;
}

const isNotFound = (err: unknown) => ['NotFound', 'NoSuchKey'].includes((err as { code?: string }).code ?? '');

export async function statObject(s: RegistryStorage, key: string): Promise<ObjectStat | undefined> {
  try {
    const st = await s.client.statObject(s.bucket, key);
    const meta: Record<string, string> = {};
    for (const [k, v] of Object.entries(st.metaData ?? {})) if (typeof v === 'string') meta[k.toLowerCase()] = v;
    return { size: st.size, meta };
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** The largest manifest or name pointer read: a diffusers export's manifest is a few KiB; this bounds memory, not models. */
export const MAX_JSON_BYTES = 8 * 1024 * 1024;

export async function getJson(s: RegistryStorage, key: string, maxBytes = MAX_JSON_BYTES): Promise<unknown> {
  let stream: Readable;
  try {
    stream = await s.client.getObject(s.bucket, key);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of stream) {
    size += (c as Buffer).length;
    if (size > maxBytes) {
      stream.destroy();
      throw new Error(`${key} is larger than ${maxBytes} bytes: not read`);
    }
    chunks.push(c as Buffer);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
}

export async function putJson(s: RegistryStorage, key: string, value: unknown): Promise<void> {
  const body = Buffer.from(`${JSON.stringify(value, null, 2)}\n`);
  await s.client.putObject(s.bucket, key, body, body.length, { 'Content-Type': 'application/json' });
}

/** Streams a local file up in one PUT (multipart.ts sends the larger ones in parts). */
export async function putStream(s: RegistryStorage, key: string, body: Readable, size: number, sha256: string): Promise<void> {
  await s.client.putObject(s.bucket, key, body, size, { 'Content-Type': 'application/octet-stream', [`${USER_META_PREFIX}${SHA256_META}`]: sha256 });
}

export async function listKeys(s: RegistryStorage, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const item of s.client.listObjectsV2(s.bucket, prefix, true)) {
    const name = (item as { name?: string }).name;
    if (name) keys.push(name);
  }
  return keys;
}

export async function removeKeys(s: RegistryStorage, keys: string[]): Promise<void> {
  for (const key of keys) await s.client.removeObject(s.bucket, key);
}
