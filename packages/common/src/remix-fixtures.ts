/**
 * Test fixtures: PNGs carrying generation metadata written the way each tool
 * writes it, byte for byte in the text chunks (the pixels are a black image).
 * Sources, as read for /work/shared/reference/png-metadata.md:
 *
 * - Pillow `PngInfo.add_text(k, v)` (python-pillow/Pillow
 *   src/PIL/PngImagePlugin.py @f27873a8): tEXt when `v` encodes as latin-1,
 *   else iTXt with compression flag 0 and empty language/translated keyword;
 *   `_save` writes IHDR, the text chunks in insertion order, IDAT, IEND.
 *   Every tool below writes through it.
 * - AUTOMATIC1111/stable-diffusion-webui (modules/processing.py
 *   `create_infotext`, modules/images.py `save_image_with_geninfo` @c19d0443):
 *   keyword `parameters`; text `prompt [+ "\nNegative prompt: " + neg] + "\n" +
 *   ", ".join(f"{k}: {quote(v)}")`, keys Steps, Sampler, Schedule type, CFG
 *   scale, Seed, Size, Model hash, Model, …, Version; `quote` JSON-encodes
 *   values holding ',', ':' or '\n'.
 * - comfyanonymous/ComfyUI (nodes.py SaveImage @e60e19b1): `prompt` =
 *   json.dumps(API graph), then one chunk per extra_pnginfo key (the stock
 *   frontend sends `workflow`), json.dumps with Python's defaults (", " and
 *   ": " separators, ensure_ascii). Graph: node id → {inputs, class_type,
 *   _meta: {title}}; KSampler inputs seed, steps, cfg, sampler_name,
 *   scheduler, denoise, model, positive, negative, latent_image;
 *   CLIPTextEncode text, clip; EmptyLatentImage width, height, batch_size;
 *   CheckpointLoaderSimple ckpt_name (script_examples/basic_api_example.py).
 *   Workflow (schema 0.4): nodes [{id, type, inputs: [{name, type, link}],
 *   widgets_values}], links [[id, origin_id, origin_slot, target_id,
 *   target_slot, type]].
 * - invoke-ai/InvokeAI (app/services/image_files/image_files_disk.py,
 *   app/invocations/metadata.py CoreMetadata @a72a423a): `invokeai_metadata`
 *   = pydantic model_dump_json() (compact separators, raw non-ASCII), fields
 *   generation_mode, positive_prompt, negative_prompt, width, height, seed,
 *   rand_device, cfg_scale, steps, scheduler, model {key, hash, name, base,
 *   type} (v4+); plus `invokeai_graph`/`invokeai_workflow`.
 */
import zlib from 'node:zlib';
import { pngChunk, pngTextChunk } from './png-text.js';
import { PNG_SIGNATURE } from './png-signature.js';

/** Chunks as the tools write them (png-text.ts), re-exported for the tests that build PNGs by hand. */
export { pngChunk };

/** A Python float: json.dumps writes 8.0, where JavaScript would write 8. */
export class PyFloat {
  constructor(readonly value: number) {}
}
export type PyJson = null | boolean | number | string | PyFloat | PyJson[] | { [k: string]: PyJson };

/** Python's json.dumps: `compact` is pydantic's separators, `ensureAscii` escapes non-ASCII as \uXXXX. */
export function pyJsonDumps(v: PyJson, opts: { compact?: boolean; ensureAscii?: boolean } = {}): string {
  const [item, key] = opts.compact ? [',', ':'] : [', ', ': '];
  const str = (s: string) => {
    const j = JSON.stringify(s);
    return opts.ensureAscii === false ? j : j.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  };
  const go = (x: PyJson): string => {
    if (x instanceof PyFloat) return Number.isInteger(x.value) ? `${x.value}.0` : String(x.value);
    if (typeof x === 'string') return str(x);
    if (x === null || typeof x !== 'object') return JSON.stringify(x);
    if (Array.isArray(x)) return `[${x.map(go).join(item)}]`;
    return `{${Object.entries(x).map(([k, val]) => `${str(k)}${key}${go(val)}`).join(item)}}`;
  };
  return go(v);
}

/** An 8-bit RGB black PNG with `texts` in order after IHDR, as Pillow saves it. */
export function pngWithText(width: number, height: number, texts: [string, string][], extra: Buffer[] = []): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const raw = Buffer.alloc((1 + 3 * width) * height);
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), ...texts.map(([k, v]) => pngTextChunk(k, v)), ...extra, pngChunk('IDAT', zlib.deflateSync(raw)), pngChunk('IEND', Buffer.alloc(0))]);
}

/** A zTXt chunk (keyword, NUL, method 0, zlib text): none of the tools write one, but readers must read it. */
export function zTxtChunk(keyword: string, text: string): Buffer {
  return pngChunk('zTXt', Buffer.concat([Buffer.from(keyword, 'latin1'), Buffer.from([0, 0]), zlib.deflateSync(Buffer.from(text, 'latin1'))]));
}

/** A1111's quote(): values with ',', ':' or a newline as json.dumps(v, ensure_ascii=False). */
const a1111Quote = (v: string) => (/[,:\n]/.test(v) ? pyJsonDumps(v, { ensureAscii: false }) : v);

/** A1111's infotext: the prompt, the negative line when there is one, the `Key: value` line. */
export function a1111Infotext(prompt: string, negative: string, params: [string, string][]): string {
  return `${prompt}${negative ? `\nNegative prompt: ${negative}` : ''}\n${params.map(([k, v]) => `${k}: ${a1111Quote(v)}`).join(', ')}`.trim();
}

export interface ComfyFixture {
  positive: string;
  negative: string;
  seed: number;
  steps: number;
  cfg: number;
  sampler: string;
  scheduler: string;
  width: number;
  height: number;
  ckpt: string;
}

/** ComfyUI's default text-to-image graph (basic_api_example.py) with `f`'s values, in API format. */
export function comfyApiGraph(f: ComfyFixture): PyJson {
  return {
    '3': {
      inputs: { seed: f.seed, steps: f.steps, cfg: new PyFloat(f.cfg), sampler_name: f.sampler, scheduler: f.scheduler, denoise: new PyFloat(1), model: ['4', 0], positive: ['6', 0], negative: ['7', 0], latent_image: ['5', 0] },
      class_type: 'KSampler',
      _meta: { title: 'KSampler' },
    },
    '4': { inputs: { ckpt_name: f.ckpt }, class_type: 'CheckpointLoaderSimple', _meta: { title: 'Load Checkpoint' } },
    '5': { inputs: { width: f.width, height: f.height, batch_size: 1 }, class_type: 'EmptyLatentImage', _meta: { title: 'Empty Latent Image' } },
    '6': { inputs: { text: f.positive, clip: ['4', 1] }, class_type: 'CLIPTextEncode', _meta: { title: 'CLIP Text Encode (Prompt)' } },
    '7': { inputs: { text: f.negative, clip: ['4', 1] }, class_type: 'CLIPTextEncode', _meta: { title: 'CLIP Text Encode (Prompt)' } },
    '8': { inputs: { samples: ['3', 0], vae: ['4', 2] }, class_type: 'VAEDecode', _meta: { title: 'VAE Decode' } },
    '9': { inputs: { filename_prefix: 'ComfyUI', images: ['8', 0] }, class_type: 'SaveImage', _meta: { title: 'Save Image' } },
  };
}

/** The same graph as the frontend's `workflow` (schema 0.4; the seed widget is followed by its control value). */
export function comfyWorkflow(f: ComfyFixture): PyJson {
  const node = (id: number, type: string, inputs: [string, string, number | null][], widgets: PyJson[]): PyJson => ({
    id,
    type,
    pos: [0, 0],
    size: [315, 262],
    flags: {},
    order: id,
    mode: 0,
    inputs: inputs.map(([name, t, link]) => ({ name, type: t, link })),
    outputs: [],
    properties: { 'Node name for S&R': type },
    widgets_values: widgets,
  });
  return {
    last_node_id: 9,
    last_link_id: 9,
    nodes: [
      node(3, 'KSampler', [['model', 'MODEL', 1], ['positive', 'CONDITIONING', 4], ['negative', 'CONDITIONING', 6], ['latent_image', 'LATENT', 2]], [f.seed, 'randomize', f.steps, new PyFloat(f.cfg), f.sampler, f.scheduler, new PyFloat(1)]),
      node(4, 'CheckpointLoaderSimple', [], [f.ckpt]),
      node(5, 'EmptyLatentImage', [], [f.width, f.height, 1]),
      node(6, 'CLIPTextEncode', [['clip', 'CLIP', 3]], [f.positive]),
      node(7, 'CLIPTextEncode', [['clip', 'CLIP', 5]], [f.negative]),
      node(8, 'VAEDecode', [['samples', 'LATENT', 7], ['vae', 'VAE', 8]], []),
      node(9, 'SaveImage', [['images', 'IMAGE', 9]], ['ComfyUI']),
    ],
    links: [
      [1, 4, 0, 3, 0, 'MODEL'],
      [2, 5, 0, 3, 3, 'LATENT'],
      [3, 4, 1, 6, 0, 'CLIP'],
      [4, 6, 0, 3, 1, 'CONDITIONING'],
      [5, 4, 1, 7, 0, 'CLIP'],
      [6, 7, 0, 3, 2, 'CONDITIONING'],
      [7, 3, 0, 8, 0, 'LATENT'],
      [8, 4, 2, 8, 1, 'VAE'],
      [9, 8, 0, 9, 0, 'IMAGE'],
    ],
    groups: [],
    config: {},
    extra: {},
    version: new PyFloat(0.4),
  };
}

/** What SaveImage writes from the stock frontend: `prompt`, then `workflow` (or only `prompt` from a bare API call). */
export function comfyPng(f: ComfyFixture, opts: { workflow?: boolean; prompt?: boolean } = {}): Buffer {
  const texts: [string, string][] = [];
  if (opts.prompt !== false) texts.push(['prompt', pyJsonDumps(comfyApiGraph(f))]);
  if (opts.workflow !== false) texts.push(['workflow', pyJsonDumps(comfyWorkflow(f))]);
  return pngWithText(f.width, f.height, texts);
}

/** InvokeAI v4+'s `invokeai_metadata` (CoreMetadata, exclude_none) for a txt2img render. */
export function invokeMetadata(f: { positive: string; negative: string; seed: number; steps: number; cfg: number; scheduler: string; width: number; height: number; model: string }): PyJson {
  return {
    generation_mode: 'txt2img',
    positive_prompt: f.positive,
    negative_prompt: f.negative,
    width: f.width,
    height: f.height,
    seed: f.seed,
    rand_device: 'cpu',
    cfg_scale: new PyFloat(f.cfg),
    cfg_rescale_multiplier: new PyFloat(0),
    steps: f.steps,
    scheduler: f.scheduler,
    clip_skip: 0,
    model: { key: '2b2a6e1e-6b3f-4d0e-9d5a-1d2c3b4a5f60', hash: 'blake3:0f1e2d3c', name: f.model, base: 'sdxl', type: 'main' },
  };
}
