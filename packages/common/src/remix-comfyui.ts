/**
 * Remix from ComfyUI's chunks. SaveImage writes `prompt` (the API graph:
 * node id → {class_type, inputs}, an input either a literal or a link
 * [source id, output index]) and, from the stock frontend, `workflow` (the
 * UI graph). The settings are read the way the graph runs: the sampler
 * nearest the saved image, its seed/steps/cfg/sampler_name/scheduler, the
 * text nodes its positive and negative inputs lead back to, the empty
 * latent its latent_image comes from, the checkpoint its model comes from.
 * A file with only `workflow` is turned into the same API shape first.
 */
import { modelName, numberOf, type Generation, type RemixScalar } from './remix-spec.js';

export interface ComfyNode {
  class_type: string;
  inputs: Record<string, unknown>;
}
export type ComfyGraph = Record<string, ComfyNode>;
type Link = [string, number];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isLink = (v: unknown): v is Link => Array.isArray(v) && v.length === 2 && (typeof v[0] === 'string' || typeof v[0] === 'number') && typeof v[1] === 'number';
const isScalar = (v: unknown): v is RemixScalar => typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));

/** A `prompt` chunk's graph, or undefined when the JSON is not one. */
export function comfyGraphOf(json: unknown): ComfyGraph | undefined {
  if (!isObject(json)) return undefined;
  const graph: ComfyGraph = {};
  for (const [id, node] of Object.entries(json)) {
    if (!isObject(node) || typeof node.class_type !== 'string') continue;
    Object.defineProperty(graph, id, { value: { class_type: node.class_type, inputs: isObject(node.inputs) ? node.inputs : {} }, enumerable: true });
  }
  return Object.keys(graph).length ? graph : undefined;
}

/**
 * Widget names of the stock nodes, in `widgets_values` order (ComfyUI
 * nodes.py INPUT_TYPES; the frontend adds a "control_after_generate" value
 * after a seed widget, skipped below).
 */
const WIDGETS: Record<string, string[]> = {
  KSampler: ['seed', 'steps', 'cfg', 'sampler_name', 'scheduler', 'denoise'],
  KSamplerAdvanced: ['add_noise', 'noise_seed', 'steps', 'cfg', 'sampler_name', 'scheduler', 'start_at_step', 'end_at_step', 'return_with_leftover_noise'],
  CLIPTextEncode: ['text'],
  EmptyLatentImage: ['width', 'height', 'batch_size'],
  CheckpointLoaderSimple: ['ckpt_name'],
  UNETLoader: ['unet_name', 'weight_dtype'],
  PrimitiveNode: ['value'],
};
const SEED_WIDGETS = new Set(['seed', 'noise_seed', 'value']);
const SEED_CONTROLS = new Set(['fixed', 'increment', 'decrement', 'randomize']);

/** A `workflow` chunk (UI graph, links as arrays in schema 0.4 or objects in v1) as an API graph. */
export function comfyGraphFromWorkflow(json: unknown): ComfyGraph | undefined {
  if (!isObject(json) || !Array.isArray(json.nodes)) return undefined;
  const links = new Map<number, Link>();
  for (const l of Array.isArray(json.links) ? json.links : []) {
    if (Array.isArray(l) && typeof l[0] === 'number') links.set(l[0], [String(l[1]), Number(l[2])]);
    else if (isObject(l) && typeof l.id === 'number') links.set(l.id, [String(l.origin_id), Number(l.origin_slot)]);
  }
  const graph: ComfyGraph = {};
  for (const node of json.nodes) {
    if (!isObject(node) || typeof node.type !== 'string' || node.id === undefined) continue;
    const inputs: Record<string, unknown> = {};
    const widgets = node.widgets_values;
    if (isObject(widgets)) Object.assign(inputs, widgets);
    else if (Array.isArray(widgets)) {
      const names = WIDGETS[node.type] ?? [];
      for (let i = 0, n = 0; i < widgets.length && n < names.length; i++, n++) {
        const name = names[n]!;
        inputs[name] = widgets[i];
        if (SEED_WIDGETS.has(name) && SEED_CONTROLS.has(String(widgets[i + 1]))) i++;
      }
    }
    for (const input of Array.isArray(node.inputs) ? node.inputs : []) {
      if (!isObject(input) || typeof input.name !== 'string' || typeof input.link !== 'number') continue;
      const link = links.get(input.link);
      if (link) inputs[input.name] = link;
    }
    Object.defineProperty(graph, String(node.id), { value: { class_type: node.type, inputs }, enumerable: true });
  }
  return Object.keys(graph).length ? graph : undefined;
}

const SAMPLER_CLASSES = new Set(['KSampler', 'KSamplerAdvanced']);
const isSampler = (n: ComfyNode) => SAMPLER_CLASSES.has(n.class_type) || ('positive' in n.inputs && 'negative' in n.inputs && 'steps' in n.inputs);
const isOutput = (n: ComfyNode) => /^(SaveImage|PreviewImage)$/.test(n.class_type) || /Save/i.test(n.class_type);

/** The nodes the links in `from` lead to and everything upstream of them, nearest first (breadth first). */
function* upstream(graph: ComfyGraph, from: Iterable<unknown>): Generator<[string, ComfyNode]> {
  const seen = new Set<string>();
  const queue: unknown[] = [...from];
  while (queue.length) {
    const v = queue.shift();
    if (!isLink(v)) continue;
    const id = String(v[0]);
    const node = graph[id];
    if (seen.has(id) || !node) continue;
    seen.add(id);
    yield [id, node];
    queue.push(...Object.values(node.inputs));
  }
}

const first = <T>(it: Iterable<T>, pred: (x: T) => boolean): T | undefined => {
  for (const x of it) if (pred(x)) return x;
  return undefined;
};

/** A literal input, following links to primitive/widget nodes (a seed or text fed from another node). */
function literal(graph: ComfyGraph, v: unknown, depth = 0): RemixScalar | undefined {
  if (isScalar(v)) return v;
  if (!isLink(v) || depth > 8) return undefined;
  const node = graph[String(v[0])];
  if (!node) return undefined;
  for (const k of ['value', 'seed', 'noise_seed', 'text', 'string', 'int', 'float', 'number']) {
    const got = k in node.inputs ? literal(graph, node.inputs[k], depth + 1) : undefined;
    if (got !== undefined) return got;
  }
  const scalars = Object.values(node.inputs).filter(isScalar);
  return scalars.length === 1 ? scalars[0] : undefined;
}

/** The prompt text a conditioning input leads back to (CLIPTextEncode `text`, SDXL `text_g`). */
function textOf(graph: ComfyGraph, link: unknown): string | undefined {
  const node = first(upstream(graph, [link]), ([, n]) => 'text' in n.inputs || 'text_g' in n.inputs);
  if (!node) return undefined;
  const t = literal(graph, node[1].inputs.text ?? node[1].inputs.text_g);
  return typeof t === 'string' ? t : undefined;
}

/** The sampler whose result is saved: nearest upstream of an output node, else the first one. */
function finalSampler(graph: ComfyGraph): ComfyNode | undefined {
  const outputs = Object.entries(graph).filter(([, n]) => isOutput(n));
  const fromOutputs = first(
    upstream(
      graph,
      outputs.map(([id]) => [id, 0]),
    ),
    ([, n]) => isSampler(n),
  );
  return fromOutputs?.[1] ?? Object.values(graph).find(isSampler);
}

/**
 * The render settings in a ComfyUI API graph, or undefined without a sampler.
 * Size is the empty latent's (img2img has none: the caller falls back to the image's).
 */
export function comfyGeneration(graph: ComfyGraph): Generation | undefined {
  const sampler = finalSampler(graph);
  if (!sampler) return undefined;
  const inp = sampler.inputs;
  const num = (k: string) => numberOf(literal(graph, inp[k]));
  const str = (k: string) => {
    const v = literal(graph, inp[k]);
    return typeof v === 'string' ? v : undefined;
  };
  const latents = [...upstream(graph, [inp.latent_image])];
  const empty = latents.find(([, n]) => 'batch_size' in n.inputs && 'width' in n.inputs) ?? latents.find(([, n]) => 'width' in n.inputs && 'height' in n.inputs);
  const loader = first(upstream(graph, [inp.model]), ([, n]) => 'ckpt_name' in n.inputs || 'unet_name' in n.inputs);
  const ckpt = loader ? literal(graph, loader[1].inputs.ckpt_name ?? loader[1].inputs.unet_name) : undefined;
  const extra: Record<string, RemixScalar> = {};
  const denoise = num('denoise');
  if (denoise !== undefined && denoise !== 1) extra.denoise = denoise;
  return {
    prompt: textOf(graph, inp.positive) ?? '',
    negativePrompt: textOf(graph, inp.negative),
    seed: num('seed') ?? num('noise_seed'),
    width: empty ? numberOf(literal(graph, empty[1].inputs.width)) : undefined,
    height: empty ? numberOf(literal(graph, empty[1].inputs.height)) : undefined,
    steps: num('steps'),
    guidance: num('cfg'),
    sampler: str('sampler_name'),
    scheduler: str('scheduler'),
    model: typeof ckpt === 'string' ? modelName(ckpt) : undefined,
    extra,
  };
}
