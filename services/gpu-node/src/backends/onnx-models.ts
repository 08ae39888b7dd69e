/**
 * The model folders an `onnx` node renders with: the configured ones
 * (name → diffusers ONNX export folder) and the built-in nightshift-tiny-sd,
 * written into the node's data folder on first use (a configured folder of
 * the same name wins). Opened models are kept for the next job, at most
 * maxLoadedModels of them (onnx-lru.ts: the least recently used one no
 * render holds has its sessions released first); a folder that cannot be
 * opened fails the job with SdModel's message (which names the file), and the
 * next job tries again.
 */
import path from 'node:path';
import { sha256File } from '@nightshift/common';
import { parseSchedulerConfig, type SamplerName, type SchedulerConfig } from '@nightshift/diffusion';
import { ensureTinySd, SdModel, TINY_SD_NAME } from '@nightshift/models';
import { RenderFailure } from './backend.js';
import { LruResources, type Lease } from './onnx-lru.js';
import { defaultSampler } from './onnx-sampler.js';

export interface OnnxModelsOptions {
  /** Model name (what sweeps put in `model`) → folder. */
  models: Readonly<Record<string, string>>;
  /** Where the built-in model is written (`<dataDir>/models/nightshift-tiny-sd`). */
  dataDir: string;
  /** onnxruntime execution providers, in order (default ['cpu']). */
  executionProviders?: readonly string[];
  /** Intra-op threads per session (0 or absent: onnxruntime's default). */
  threads?: number;
  /** The providers to open models with, decided when the first one opens (onnx-provider.ts: the usable ones); default executionProviders. */
  resolveProviders?: () => Promise<readonly string[]>;
  /** Model folders kept loaded between jobs (default 2); more are opened as needed and the least recently used released. */
  maxLoadedModels?: number;
}

export const DEFAULT_MAX_LOADED_MODELS = 2;

export interface LoadedSdModel {
  name: string;
  model: SdModel;
  schedulerConfig: SchedulerConfig;
  /** The sampler its scheduler_config.json names (for jobs that name none). */
  sampler: SamplerName;
  /** A1111's `Model hash`: the first 10 hex digits of sha256(unet/model.onnx). */
  hash: string;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class OnnxModels {
  private readonly loaded: LruResources<LoadedSdModel>;
  /** Registry model folders jobs have brought (model-pull.ts). */
  private readonly pulled = new Set<string>();

  constructor(private readonly opts: OnnxModelsOptions) {
    this.loaded = new LruResources(
      opts.maxLoadedModels ?? DEFAULT_MAX_LOADED_MODELS,
      (name) => this.open(name),
      (m) => m.model.release(),
    );
  }

  /** Names this node advertises: the configured models and the built-in one. */
  names(): string[] {
    return [...new Set([...Object.keys(this.opts.models), TINY_SD_NAME])];
  }

  private async folder(name: string): Promise<string> {
    if (this.pulled.has(name)) return name;
    const configured = this.opts.models[name];
    if (configured !== undefined) return configured;
    if (name === TINY_SD_NAME) return ensureTinySd(path.join(this.opts.dataDir, 'models'));
    throw new RenderFailure(`model ${JSON.stringify(name)} is not on this node (onnx models here: ${this.names().join(', ')}); add it under onnx.models in the node config`);
  }

  private async open(name: string): Promise<LoadedSdModel> {
    const dir = await this.folder(name);
    const providers = this.opts.resolveProviders ? await this.opts.resolveProviders() : this.opts.executionProviders;
    let model: SdModel;
    try {
      model = await SdModel.load(dir, {
        ...(providers?.length ? { executionProviders: providers } : {}),
        ...(this.opts.threads ? { threads: this.opts.threads } : {}),
      });
    } catch (err) {
      throw new RenderFailure(message(err));
    }
    try {
      const schedulerConfig = parseSchedulerConfig(model.folder.schedulerConfig);
      const hash = (await sha256File(model.folder.models.unet)).slice(0, 10);
      return { name, model, schedulerConfig, sampler: defaultSampler(model.folder.schedulerConfig), hash };
    } catch (err) {
      await model.release();
      throw new RenderFailure(`model ${dir}: ${message(err)}`);
    }
  }

  /**
   * The opened model, held until the lease is released (a held model is never released under a render).
   * `pulledFolder`: the job's registry model in the node's cache (RenderRequest.modelPath), which wins over
   * the name; that folder is its own key, since its path ends in the model's content hash.
   */
  acquire(name: string, pulledFolder?: string): Promise<Lease<LoadedSdModel>> {
    if (pulledFolder === undefined) return this.loaded.acquire(name);
    this.pulled.add(pulledFolder);
    return this.loaded.acquire(pulledFolder);
  }

  /** Names of the models loaded now, least recently used first. */
  loadedNames(): string[] {
    return this.loaded.keys();
  }

  async close(): Promise<void> {
    await this.loaded.closeAll();
  }
}
