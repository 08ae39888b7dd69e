/** Model names → hashes: one small object per name, `models/names/{name}.json`. */
import { z } from 'zod';
import { assertModelHash, modelNameKey, MODEL_NAMES_PREFIX } from '@nightshift/common';
import { getJson, listKeys, putJson, type RegistryStorage } from './bucket.js';

export interface NamePointer {
  name: string;
  hash: string;
  updatedAt: string;
}

const pointerSchema = z.object({ name: z.string(), hash: z.string().regex(/^[0-9a-f]{64}$/), updatedAt: z.string() });

export async function writeNamePointer(storage: RegistryStorage, name: string, hash: string): Promise<NamePointer> {
  const pointer: NamePointer = { name, hash: assertModelHash(hash), updatedAt: new Date().toISOString() };
  await putJson(storage, modelNameKey(name), pointer);
  return pointer;
}

export async function readNamePointer(storage: RegistryStorage, name: string): Promise<NamePointer | undefined> {
  const json = await getJson(storage, modelNameKey(name));
  return json === undefined ? undefined : pointerSchema.parse(json);
}

export async function listNamePointers(storage: RegistryStorage): Promise<NamePointer[]> {
  const out: NamePointer[] = [];
  for (const key of await listKeys(storage, MODEL_NAMES_PREFIX)) {
    if (!key.endsWith('.json')) continue;
    const name = key.slice(MODEL_NAMES_PREFIX.length, -'.json'.length);
    const p = await readNamePointer(storage, name).catch(() => undefined);
    if (p) out.push(p);
  }
  return out;
}
