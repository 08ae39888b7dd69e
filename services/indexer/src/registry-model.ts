/**
 * NIGHTSHIFT_CLIP_MODEL=registry:NAME (or registry:HASH): a CLIP folder from
 * the farm's model registry (`nightshift models add NAME FOLDER`), resolved
 * through the bucket's names and pulled into `<data dir>/model-cache` with
 * the same ModelCache the gpu-nodes use (capped by NIGHTSHIFT_MODEL_CACHE_GB,
 * default 50). The first use of a cached model after each start re-hashes
 * every file, which is when the indexer loads it, so a changed byte is
 * fetched again rather than embedded with.
 */
import { join } from 'node:path';
import { ModelCache, resolveModel, type RegistryStorage } from '@nightshift/registry';

export const REGISTRY_PREFIX = 'registry:';

export interface RegistryClipOptions {
  storage: RegistryStorage;
  dataDir: string;
  /** Bytes the indexer's model cache may hold. */
  capBytes: number;
  attempts?: number;
  retryDelayMs?: number;
}

export interface PulledClip {
  folder: string;
  /** Recorded with each vector: a re-add under the name (another hash) is a model change. */
  id: string;
}

/** The cache cap from NIGHTSHIFT_MODEL_CACHE_GB (GB of 2^30 bytes), as the nodes read it. */
export function registryCacheCap(env: NodeJS.ProcessEnv = process.env): number {
  const gb = env.NIGHTSHIFT_MODEL_CACHE_GB === undefined ? 50 : Number(env.NIGHTSHIFT_MODEL_CACHE_GB);
  if (!Number.isFinite(gb) || gb <= 0) throw new Error(`NIGHTSHIFT_MODEL_CACHE_GB=${env.NIGHTSHIFT_MODEL_CACHE_GB}: a positive number of GB`);
  return Math.floor(gb * 1024 ** 3);
}

export async function pullRegistryClip(setting: string, opts: RegistryClipOptions): Promise<PulledClip> {
  const ref = setting.slice(REGISTRY_PREFIX.length);
  const manifest = await resolveModel(opts.storage, ref);
  if (!manifest) throw new Error(`no model ${JSON.stringify(ref)} in the registry (add it with: nightshift models add ${ref} CLIP_FOLDER --kind clip)`);
  if (manifest.kind !== 'clip') throw new Error(`registry model ${ref} is registered as kind ${manifest.kind}, not clip`);
  const cache = new ModelCache(join(opts.dataDir, 'model-cache'), opts.capBytes, { attempts: opts.attempts ?? 5, retryDelayMs: opts.retryDelayMs ?? 1_000 });
  const folder = await cache.ensure(manifest.hash, opts.storage);
  return { folder, id: `${REGISTRY_PREFIX}${ref}@${manifest.hash.slice(0, 12)}` };
}
