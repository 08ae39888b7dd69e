/** Reading and removing registered models: list, resolve a name or hash, remove a name. */
import { assertModelName, modelManifestKey, modelObjectsPrefix, modelNameKey } from '@nightshift/common';
import { getJson, listKeys, removeKeys, type RegistryStorage } from './bucket.js';
import { parseManifest, type ModelManifest } from './manifest.js';
import { listNamePointers, readNamePointer } from './names.js';

export interface RegisteredModel {
  /** The name that points at it now. */
  name: string;
  manifest: ModelManifest;
}

const HASH_RE = /^[0-9a-f]{64}$/;

export async function readManifest(storage: RegistryStorage, hash: string): Promise<ModelManifest | undefined> {
  const json = await getJson(storage, modelManifestKey(hash));
  return json === undefined ? undefined : parseManifest(json, hash);
}

/** Every named model, by name. A hash no name points at any more is not listed (it is still resolvable by hash). */
export async function listModels(storage: RegistryStorage): Promise<RegisteredModel[]> {
  const out: RegisteredModel[] = [];
  for (const p of await listNamePointers(storage)) {
    const manifest = await readManifest(storage, p.hash).catch(() => undefined);
    if (manifest) out.push({ name: p.name, manifest });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** The manifest a name (what it points at now) or a hash (64 hex) stands for; undefined when unknown. */
export async function resolveModel(storage: RegistryStorage, nameOrHash: string): Promise<ModelManifest | undefined> {
  if (HASH_RE.test(nameOrHash)) return readManifest(storage, nameOrHash);
  const pointer = await readNamePointer(storage, assertModelName(nameOrHash));
  return pointer ? readManifest(storage, pointer.hash) : undefined;
}

export interface RemoveResult {
  hash: string;
  /** The content went too: no other name pointed at it. */
  contentRemoved: boolean;
}

/**
 * Removes a name. Its content goes too unless another name still points at
 * it (the manifest first, so a half-removed model never reads as complete).
 * Callers that know of running work (the coordinator) check before calling.
 */
export async function removeModel(storage: RegistryStorage, name: string): Promise<RemoveResult | undefined> {
  const pointer = await readNamePointer(storage, assertModelName(name));
  if (!pointer) return undefined;
  await removeKeys(storage, [modelNameKey(name)]);
  const stillNamed = (await listNamePointers(storage)).some((p) => p.hash === pointer.hash);
  if (stillNamed) return { hash: pointer.hash, contentRemoved: false };
  const manifestKey = modelManifestKey(pointer.hash);
  const rest = (await listKeys(storage, modelObjectsPrefix(pointer.hash))).filter((k) => k !== manifestKey);
  await removeKeys(storage, [manifestKey, ...rest]);
  return { hash: pointer.hash, contentRemoved: true };
}
