/**
 * The model folders an `onnx` node renders with: the configured ones
 * (name → diffusers ONNX export folder) and the built-in nightshift-tiny-sd,
 * written into the node's data folder on first use (a configured folder of
 * the same name wins). Each model is opened once and its sessions kept for
 * the node's life; a folder that cannot be opened fails the job with
 * SdModel's message (which names the file), and the next job tries again.
 */
import path from 'node:path';
import { sha256File } from '@nightshift/common';
import { parseSchedulerConfig, type SamplerName, type SchedulerConfig } from '@nightshift/diffusion';
import { ensureTinySd, SdModel, TINY_SD_NAME } from '@nightshift/models';
import { RenderFailure } from './backend.js';
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
}

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
  private readonly loading = new Map<string, Promise<LoadedSdModel>>();

  constructor(private readonly opts: OnnxModelsOptions) {}

  /** Names this node advertises: the configured models and the built-in one. */
  names(): string[] {
    return [...new Set([...Object.keys(this.opts.models), TINY_SD_NAME])];
  }

  private async folder(name: string): Promise<string> {
    const configured = this.opts.models[name];
    if (configured !== undefined) return configured;
    if (name === TINY_SD_NAME) return ensureTinySd(path.join(this.opts.dataDir, 'models'));
    throw new RenderFailure(`model ${JSON.stringify(name)} is not on this node (onnx models here: ${this.names().join(', ')}); add it under onnx.models in the node config`);
  }

  private async open(name: string): Promise<LoadedSdModel> {
    const dir = await this.folder(name);
    let model: SdModel;
    try {
      model = await SdModel.load(dir, {
        ...(this.opts.executionProviders?.length ? { executionProviders: this.opts.executionProviders } : {}),
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

  /** The opened model; a failed open is forgotten so the next job retries it. */
  get(name: string): Promise<LoadedSdModel> {
    let p = this.loading.get(name);
    if (!p) {
      p = this.open(name);
      this.loading.set(name, p);
      p.catch(() => {
        if (this.loading.get(name) === p) this.loading.delete(name);
      });
    }
    return p;
  }

  async close(): Promise<void> {
    const all = [...this.loading.values()];
    this.loading.clear();
    await Promise.allSettled(all.map(async (p) => (await p).model.release()));
  }
}
