/**
 * Remix from any PNG: the sweep spec that renders an image again, read from
 * the generation metadata its tool wrote into text chunks (tEXt, iTXt or
 * zTXt). Readers, in order: `parameters` (Nightshift's, then A1111's
 * layout), `invokeai_metadata`, ComfyUI's `prompt` then `workflow`, and
 * InvokeAI v2's `sd-metadata`. A PNG with none of them gets a RemixError
 * naming the chunks it does have.
 */
import { hasPngSignature } from './png-signature.js';
import { readPngSize, readPngTextChunks } from './png-text.js';
import { remixFromParameters } from './remix-a1111.js';
import { comfyGeneration, comfyGraphFromWorkflow, comfyGraphOf } from './remix-comfyui.js';
import { invokeGeneration, invokeV2Generation } from './remix-invokeai.js';
import { specFromGeneration, type Generation, type Remix, type RemixSource } from './remix-spec.js';

export { REMIX_SOURCES, type Remix, type RemixScalar, type RemixSource, type RemixSpec } from './remix-spec.js';

export class RemixError extends Error {
  constructor(
    message: string,
    /** `not-png`: the bytes are no (readable) PNG; `no-metadata`: a PNG without settings we can read. */
    readonly reason: 'not-png' | 'no-metadata',
    /** The text chunk keywords the PNG has. */
    readonly found: string[] = [],
  ) {
    super(message);
  }
}

/** A compressed text chunk may not inflate past this: an upload is untrusted, and no tool's metadata comes near it. */
const MAX_TEXT_BYTES = 32 * 1024 * 1024;

const LOOKED_FOR = 'parameters (Nightshift, A1111), prompt or workflow (ComfyUI), invokeai_metadata or sd-metadata (InvokeAI)';

function json(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The remix of a PNG's bytes; throws RemixError when they are not a PNG or carry no settings we read. */
export function remixPng(png: Buffer): Remix {
  if (!hasPngSignature(png)) throw new RemixError('not a PNG image (bad signature)', 'not-png');
  let chunks: Record<string, string>;
  let size: { width: number; height: number };
  try {
    size = readPngSize(png);
    chunks = readPngTextChunks(png, { maxInflatedBytes: MAX_TEXT_BYTES });
  } catch (err) {
    throw new RemixError(`unreadable PNG: ${err instanceof Error ? err.message : String(err)}`, 'not-png');
  }
  const remix = remixFromTextChunks(chunks, size);
  if (remix) return remix;
  const found = Object.keys(chunks);
  const have = found.length ? `text chunks ${found.map((k) => JSON.stringify(k)).join(', ')}` : 'no text chunks';
  throw new RemixError(`no generation settings this farm can read: the PNG has ${have}; looked for ${LOOKED_FOR}`, 'no-metadata', found);
}

/** The remix of a PNG's text chunks (keyword → text), or undefined when none is a known format. */
export function remixFromTextChunks(chunks: Record<string, string>, size: { width: number; height: number }): Remix | undefined {
  const get = (k: string) => (Object.hasOwn(chunks, k) ? chunks[k] : undefined);
  const parameters = get('parameters');
  // SwarmUI writes JSON under the same keyword: not A1111's layout.
  if (parameters !== undefined && !parameters.trimStart().startsWith('{')) {
    const r = remixFromParameters(parameters, size);
    if (r) return r;
  }
  const candidates: [RemixSource, () => Generation | undefined][] = [
    ['invokeai', () => invokeGeneration(json(get('invokeai_metadata') ?? ''))],
    ['comfyui', () => {
      const graph = comfyGraphOf(json(get('prompt') ?? ''));
      return graph && comfyGeneration(graph);
    }],
    ['comfyui', () => {
      const graph = comfyGraphFromWorkflow(json(get('workflow') ?? ''));
      return graph && comfyGeneration(graph);
    }],
    ['invokeai', () => invokeV2Generation(json(get('sd-metadata') ?? ''))],
  ];
  for (const [source, read] of candidates) {
    const gen = read();
    if (!gen) continue;
    const notes: string[] = [];
    return { source, notes, spec: specFromGeneration(gen, size, notes) };
  }
  return undefined;
}
