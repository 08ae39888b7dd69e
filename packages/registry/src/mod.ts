/**
 * @nightshift/registry: models as content-addressed objects in the farm's
 * bucket (docs/design.md "Model registry") and the node-side cache that
 * pulls them on demand.
 */
export { MODEL_KINDS, buildManifest, isModelKind, modelHash, parseManifest, type ModelFile, type ModelKind, type ModelManifest } from './manifest.js';
export type { RegistryStorage } from './bucket.js';
export { addModel, type AddOptions, type AddResult } from './add-model.js';
export { listModels, readManifest, removeModel, resolveModel, type RegisteredModel, type RemoveResult } from './catalog.js';
export { ModelCache, RATE_MIN_BYTES, type CacheEntryView, type CacheEvent, type DownloadView, type EnsureOptions, type ModelCacheOptions } from './cache.js';
export { ModelFetchError } from './fetch-model.js';
export type { OnProgress, TransferProgress } from './progress.js';
