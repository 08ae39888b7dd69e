import { createHash } from 'node:crypto';

/** JSON with object keys sorted at every level, so equal values hash equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) out[k] = sortKeys((value as Record<string, unknown>)[k]);
    return out;
  }
  return value;
}

export interface RenderIdentity {
  backend: string;
  model: string;
  prompt: string;
  seed: number;
  params: Record<string, unknown>;
}

/** renderKey = sha256(backend, model, final prompt, seed, canonical params): docs/design.md "Job expansion and render keys". */
export function renderKey(id: RenderIdentity): string {
  return renderKeyWithParams(id, canonicalJson(id.params));
}

/**
 * renderKey with the params already in canonical JSON: the same bytes as
 * canonicalJson([backend, model, prompt, seed, params]) (an array's JSON is
 * its elements' joined by commas), so an expansion whose seeds share one
 * params object canonicalises it once, not once a job.
 */
export function renderKeyWithParams(id: Omit<RenderIdentity, 'params'>, canonicalParams: string): string {
  const text = `[${JSON.stringify(id.backend)},${JSON.stringify(id.model)},${JSON.stringify(id.prompt)},${JSON.stringify(id.seed)},${canonicalParams}]`;
  return createHash('sha256').update(text).digest('hex');
}
