/**
 * The file layout of a diffusers ONNX export, checked before anything is
 * opened: model_index.json, scheduler/scheduler_config.json, tokenizer/,
 * text_encoder/, unet/, vae_decoder/ (each with model.onnx; large UNets
 * keep their weights beside it, which onnxruntime finds by path), and
 * optionally vae_encoder/ (img2img).
 *
 * Every problem becomes an SdModelError naming the folder and the file.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';

/** A model folder that cannot be used, with the file at fault (relative to the folder) when there is one. */
export class SdModelError extends Error {
  override name = 'SdModelError';

  constructor(
    message: string,
    readonly folder: string,
    readonly file?: string,
    options?: ErrorOptions,
  ) {
    super(`model ${folder}: ${file ? `${file}: ` : ''}${message}`, options);
  }
}

export type SdComponent = 'text_encoder' | 'unet' | 'vae_decoder' | 'vae_encoder';
export const REQUIRED_COMPONENTS: readonly SdComponent[] = ['text_encoder', 'unet', 'vae_decoder'];

export type JsonObject = Record<string, unknown>;

export interface SdFolder {
  /** Absolute path. */
  dir: string;
  modelIndex: JsonObject;
  schedulerConfig: JsonObject;
  /** Absolute path of tokenizer/. */
  tokenizerDir: string;
  /** Absolute model.onnx path per component present (vae_encoder may be absent). */
  models: Partial<Record<SdComponent, string>> & Record<Exclude<SdComponent, 'vae_encoder'>, string>;
  /** Each component's config.json where the exporter wrote one (Optimum does). */
  configs: Partial<Record<SdComponent, JsonObject>>;
}

async function isFile(file: string): Promise<boolean> {
  const s = await stat(file).catch(() => undefined);
  return !!s?.isFile();
}

async function readJson(dir: string, rel: string): Promise<JsonObject> {
  let text: string;
  try {
    text = await readFile(path.join(dir, rel), 'utf8');
  } catch (err) {
    throw new SdModelError('is missing', dir, rel, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new SdModelError(`is not valid JSON (${(err as Error).message})`, dir, rel, { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SdModelError('is not a JSON object', dir, rel);
  return value as JsonObject;
}

/** Checks the layout and reads the small JSON files; opens no model. */
export async function inspectSdFolder(folder: string): Promise<SdFolder> {
  const dir = path.resolve(folder);
  const s = await stat(dir).catch(() => undefined);
  if (!s?.isDirectory()) throw new SdModelError('no such model folder', dir);
  if (!(await isFile(path.join(dir, 'model_index.json')))) {
    throw new SdModelError('model_index.json is missing: not a diffusers model folder (export one with `optimum-cli export onnx --model <id> <dir>`)', dir);
  }

  // Every missing required file at once: a half-copied folder is fixed in one go.
  const missing: string[] = [];
  for (const c of REQUIRED_COMPONENTS) if (!(await isFile(path.join(dir, c, 'model.onnx')))) missing.push(`${c}/model.onnx`);
  if (!(await isFile(path.join(dir, 'scheduler', 'scheduler_config.json')))) missing.push('scheduler/scheduler_config.json');
  if (!(await isFile(path.join(dir, 'tokenizer', 'tokenizer_config.json')))) missing.push('tokenizer/tokenizer_config.json');
  if (!(await isFile(path.join(dir, 'tokenizer', 'tokenizer.json')))) {
    // Exports made with the slow tokenizer have only vocab.json + merges.txt, which transformers.js cannot read.
    const slow = await isFile(path.join(dir, 'tokenizer', 'vocab.json'));
    missing.push(slow ? 'tokenizer/tokenizer.json (only the slow tokenizer files are there; save the fast tokenizer, e.g. CLIPTokenizerFast.save_pretrained)' : 'tokenizer/tokenizer.json');
  }
  if (missing.length === 1) throw new SdModelError('is missing', dir, missing[0]);
  if (missing.length > 1) throw new SdModelError(`missing files: ${missing.join(', ')}`, dir, missing[0]);

  const modelIndex = await readJson(dir, 'model_index.json');
  const schedulerConfig = await readJson(dir, 'scheduler/scheduler_config.json');
  if (typeof schedulerConfig._class_name !== 'string') throw new SdModelError('has no _class_name (which scheduler it configures)', dir, 'scheduler/scheduler_config.json');

  const models = {
    text_encoder: path.join(dir, 'text_encoder', 'model.onnx'),
    unet: path.join(dir, 'unet', 'model.onnx'),
    vae_decoder: path.join(dir, 'vae_decoder', 'model.onnx'),
  } as SdFolder['models'];
  const encoder = path.join(dir, 'vae_encoder', 'model.onnx');
  if (await isFile(encoder)) models.vae_encoder = encoder;

  const configs: SdFolder['configs'] = {};
  for (const c of [...REQUIRED_COMPONENTS, 'vae_encoder'] as const) {
    if (await isFile(path.join(dir, c, 'config.json'))) configs[c] = await readJson(dir, `${c}/config.json`);
  }
  return { dir, modelIndex, schedulerConfig, tokenizerDir: path.join(dir, 'tokenizer'), models, configs };
}
