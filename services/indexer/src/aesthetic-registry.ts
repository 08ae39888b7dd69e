/**
 * NIGHTSHIFT_AESTHETIC_MODEL=registry:NAME: the aesthetic head from the farm's
 * model registry (packages/registry; NAME is a registered name or a content
 * hash), e.g. added with `nightshift models add laion-aesthetic head.onnx
 * --kind clip`. The model must hold exactly one .onnx file, the head; it is
 * fetched into the data folder's registry cache (verified by sha256) once and
 * loaded from there.
 */
import { join } from 'node:path';
import { assertModelName } from '@nightshift/common';
import { ModelCache, resolveModel, type ModelManifest, type RegistryStorage } from '@nightshift/registry';
import { AestheticHeadError, MAX_HEAD_BYTES } from './aesthetic-head.js';

export const REGISTRY_PREFIX = 'registry:';

/** The local path of the head a registry name stands for, downloaded (and checked) if need be. */
export async function registryHeadFile(name: string, storage: RegistryStorage, dataDir: string): Promise<string> {
  const label = `NIGHTSHIFT_AESTHETIC_MODEL=${REGISTRY_PREFIX}${name}`;
  // Checked before the registry is asked, so a bad name is not reported as an unreadable registry.
  if (!/^[0-9a-f]{64}$/.test(name)) {
    try {
      assertModelName(name);
    } catch (err) {
      throw new AestheticHeadError(`${label}: ${(err as Error).message}`);
    }
  }
  let manifest: ModelManifest | undefined;
  try {
    manifest = await resolveModel(storage, name);
  } catch (err) {
    throw new AestheticHeadError(`${label}: the model registry could not be read: ${(err as Error).message}`);
  }
  if (!manifest) throw new AestheticHeadError(`${label}: no model of that name or hash in the registry (add it with: nightshift models add ${name} HEAD.onnx --kind clip)`);
  const heads = manifest.files.filter((f) => f.path.endsWith('.onnx'));
  if (heads.length !== 1) {
    throw new AestheticHeadError(`${label}: model ${manifest.hash.slice(0, 12)} holds ${heads.length} .onnx files (${heads.map((f) => f.path).join(', ') || 'none'}); an aesthetic head is one`);
  }
  if (manifest.totalSize > MAX_HEAD_BYTES) throw new AestheticHeadError(`${label}: ${manifest.totalSize} bytes, more than the ${MAX_HEAD_BYTES} an aesthetic head may have`);
  const cache = new ModelCache(join(dataDir, 'models', 'registry-aesthetic'), MAX_HEAD_BYTES);
  try {
    return join(await cache.ensure(manifest.hash, storage), heads[0]!.path);
  } catch (err) {
    throw new AestheticHeadError(`${label}: could not fetch model ${manifest.hash.slice(0, 12)}: ${(err as Error).message}`);
  }
}
