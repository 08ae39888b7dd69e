/**
 * A sweep's model at submit (docs/design.md "Model registry"): a name or a
 * hash the farm's registry knows becomes its content hash, fixed for the
 * sweep's life (a later `models add` under the same name changes no running
 * sweep) and part of every job's render key. Names the registry does not
 * know stay names, for models nodes hold by name (the built-in
 * `nightshift-tiny-sd`, an onnx node's `onnx.models`, exec generators); a
 * backend that loads model files (`onnx`) refuses a name no registered node
 * advertises, so a typo is a 400 instead of a sweep that waits forever.
 */
import { assertModelName } from '@nightshift/common';
import { resolveModel, type ModelManifest, type RegistryStorage } from '@nightshift/registry';
import { DEFAULT_MODELS, parseSpec, renderKey, SpecError, sweepModel, type ExpandedJob } from '@nightshift/sweep';

export interface ResolvedModel {
  /** What the spec named (a name, or the hash itself). */
  name: string;
  hash: string;
  bytes: number;
}

/** Backends whose model is files a node loads: an unknown name there is an error, not a name some node may know. */
const FILE_MODEL_BACKENDS: ReadonlySet<string> = new Set(['onnx']);

const HASH_RE = /^[0-9a-f]{64}$/;

const isModelName = (s: string): boolean => {
  try {
    assertModelName(s);
    return true;
  } catch {
    return false;
  }
};

const refused = (message: string) => new SpecError('invalid sweep spec', [{ path: 'model', message }]);

export interface SpecModelDeps {
  /** The bucket, when the coordinator has one (no bucket: every name stays a name, and a hash is refused). */
  storage: Partial<RegistryStorage>;
  /** Whether some registered node (online or not) advertises this model name in its capabilities. */
  advertised(name: string): boolean;
}

/**
 * The registry model a spec names, or undefined when it names none (a name
 * only nodes know, or `default`). An invalid spec also gives undefined:
 * submitSweep reports it. Throws SpecError for an unknown hash, or an
 * unknown name on a backend that loads model files.
 */
export async function specModel(deps: SpecModelDeps, input: unknown): Promise<ResolvedModel | undefined> {
  let spec: ReturnType<typeof parseSpec>;
  try {
    spec = parseSpec(input);
  } catch (err) {
    if (err instanceof SpecError) return undefined;
    throw err;
  }
  // The painter's "model" is its version, built into every node: nothing to look up.
  if (spec.backend === 'procedural') return undefined;
  const ref = sweepModel(spec);
  const { client, bucket } = deps.storage;
  const storage: RegistryStorage | undefined = client && bucket !== undefined ? { client, bucket } : undefined;
  const isHash = HASH_RE.test(ref);
  if (!isHash && !isModelName(ref)) return undefined; // 'default' and names the registry could never hold
  let manifest: ModelManifest | undefined;
  if (storage) manifest = await resolveModel(storage, ref);
  if (manifest) {
    // The onnx backend loads a diffusers folder: a CLIP or upscaler there fails every job on every node.
    if (spec.backend === 'onnx' && manifest.kind !== 'diffusion') throw refused(`model ${ref} is of kind ${manifest.kind}; the onnx backend renders with a diffusion model`);
    return { name: ref, hash: manifest.hash, bytes: manifest.totalSize };
  }
  if (isHash) throw refused(`no registered model has hash ${ref} (nightshift models list)`);
  if (FILE_MODEL_BACKENDS.has(spec.backend) && DEFAULT_MODELS[spec.backend] !== ref && !deps.advertised(ref)) {
    throw refused(`unknown model "${ref}": not in the farm's registry (nightshift models add ${ref} PATH) and no node advertises it`);
  }
  return undefined;
}

/**
 * The registry upscaler an upscale request names (`model`: a name or a hash,
 * resolved like a sweep's, so the batch's jobs carry its hash and nodes pull
 * it), or undefined when it names none or `default` (each upscale node's
 * configured upscaler). Throws SpecError for an unknown model or one that is
 * not an `upscaler`.
 */
export async function upscaleModel(storage: Partial<RegistryStorage>, input: unknown): Promise<ResolvedModel | undefined> {
  const ref = typeof input === 'object' && input !== null && 'model' in input ? (input as { model: unknown }).model : undefined;
  if (ref === undefined || ref === 'default') return undefined;
  const bad = (message: string) => new SpecError('invalid upscale request', [{ path: 'model', message }]);
  if (typeof ref !== 'string' || (!HASH_RE.test(ref) && !isModelName(ref))) throw bad('expected a registered model name or a 64-hex model hash');
  const { client, bucket } = storage;
  if (!client || bucket === undefined) throw bad('the model registry needs the bucket, and this coordinator has none');
  const manifest = await resolveModel({ client, bucket }, ref);
  if (!manifest) throw bad(`no registered model ${ref} (nightshift models list)`);
  if (manifest.kind !== 'upscaler') throw bad(`model ${ref} is a ${manifest.kind} model, not an upscaler`);
  return { name: ref, hash: manifest.hash, bytes: manifest.totalSize };
}

/** Whether any node in `listNodes()` lists `name` among its capabilities' models. */
export function advertisedBy(store: { listNodes(): { capabilities_json: string }[] }): (name: string) => boolean {
  return (name) =>
    store.listNodes().some((n) => {
      const caps = JSON.parse(n.capabilities_json) as { models?: unknown };
      return Array.isArray(caps.models) && caps.models.includes(name);
    });
}

/**
 * Render keys name the model by content for registry models: the same name
 * re-added with other weights gives other keys, and the same weights under
 * two names the same keys. Other models keep their name in the key.
 */
export function keyJobsByHash(jobs: ExpandedJob[], hash: string): void {
  for (const j of jobs) j.renderKey = renderKey({ backend: j.backend, model: hash, prompt: j.prompt, seed: j.seed, params: j.params });
}
