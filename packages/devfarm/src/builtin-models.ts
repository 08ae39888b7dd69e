/**
 * The built-in tiny models (@nightshift/models: test CLIP, ×4 upscaler,
 * Stable Diffusion) in a farm's registry, added the way a user adds theirs
 * (`nightshift models add`: @nightshift/registry addModel), so `npm run up`
 * and the tests run the whole registry flow offline. Adding the same content
 * again is instant (content-addressed), so every start may call this.
 */
import { join } from 'node:path';
import type { ModelKind, RegistryStorage } from '@nightshift/registry';

export interface BuiltinModel {
  name: string;
  kind: ModelKind;
  hash: string;
  /** Local path it was built at (a folder, or the upscaler's single .onnx file). */
  path: string;
  size: number;
  /** Already in the registry: nothing was uploaded. */
  existed: boolean;
}

/** Builds what is missing under `modelsDir` and registers each model under its built-in name. */
export async function registerBuiltinModels(storage: RegistryStorage, modelsDir: string): Promise<BuiltinModel[]> {
  // Loaded here, not at the top: every test imports devfarm, and few need onnxruntime.
  const { ensureTinyClip, ensureTinySd, ensureTinyUpscaler, TINY_CLIP_NAME, TINY_SD_NAME, TINY_UPSCALER_NAME } = await import('@nightshift/models');
  const { addModel } = await import('@nightshift/registry');
  const built: [string, ModelKind, string][] = [
    [TINY_CLIP_NAME, 'clip', await ensureTinyClip(modelsDir)],
    [TINY_UPSCALER_NAME, 'upscaler', await ensureTinyUpscaler(modelsDir)],
    [TINY_SD_NAME, 'diffusion', await ensureTinySd(modelsDir)],
  ];
  const out: BuiltinModel[] = [];
  for (const [name, kind, path] of built) {
    const r = await addModel(storage, name, kind, path);
    out.push({ name, kind, hash: r.manifest.hash, path, size: r.manifest.totalSize, existed: r.existed });
  }
  return out;
}

/** Where a farm under `dir` builds the built-in models. */
export const builtinModelsDir = (dir: string) => join(dir, 'models');
