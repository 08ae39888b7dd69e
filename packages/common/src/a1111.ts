/**
 * The AUTOMATIC1111 "parameters" text that Stable Diffusion tools (A1111,
 * ComfyUI importers, Civitai, PNG Info viewers) read from a PNG's tEXt chunk:
 *
 *   PROMPT
 *   Negative prompt: NEGATIVE
 *   Steps: 50, Sampler: Euler a, CFG scale: 7.5, Seed: 7, Size: 256x256, Model: m, ...
 *
 * Key order and quoting follow A1111's create_infotext/quote and its
 * parse_generation_parameters regex so files round-trip through its parser.
 */

export type A1111Value = string | number | boolean;

export interface A1111Input {
  prompt: string;
  negativePrompt?: string;
  seed: number;
  width: number;
  height: number;
  steps: number;
  guidance?: number;
  sampler?: string;
  /** A1111's `Model hash` (it writes the first 10 hex digits of a sha256), before `Model` as A1111 orders them. */
  modelHash?: string;
  model?: string;
  /** Nightshift's backend name; A1111 has no such key, written as `Backend`. */
  backend?: string;
  /** More `Key: value` pairs, written after the standard ones in insertion order. */
  extra?: Record<string, A1111Value | null | undefined>;
}

export interface A1111Parsed {
  prompt: string;
  negativePrompt: string;
  /** Every `Key: value` pair of the last line, values unquoted, in order. */
  params: Record<string, string>;
}

// A1111's re_param_code. Keys start with a word char and hold word chars, spaces, '-' and '/'.
const PARAM_RE = /\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)/g;
// Same charset, at least 2 chars (A1111's regex needs that), no edge spaces (the parser trims them).
export const KEY_RE = /^\w[\w \-/]*[\w\-/]$/;
export const STANDARD_KEYS: ReadonlySet<string> = new Set(['Steps', 'Sampler', 'CFG scale', 'Seed', 'Size', 'Model hash', 'Model', 'Backend']);

/**
 * A1111's quote(): values with ',', ':' or a newline become JSON strings.
 * We also quote a leading '"' (could be misread as JSON) and edge whitespace (the parser trims it).
 */
function quote(v: A1111Value): string {
  const s = String(v);
  if (!/[,:\n]/.test(s) && !s.startsWith('"') && s === s.trim()) return s;
  return JSON.stringify(s);
}

function unquote(s: string): string {
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) {
    try {
      const v: unknown = JSON.parse(s);
      if (typeof v === 'string') return v;
    } catch {
      // A1111 keeps the raw text when it is not valid JSON; so do we.
    }
  }
  return s;
}

function formatNumber(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`A1111 parameter must be a finite number, got ${n}`);
  return String(n);
}

export function formatA1111Parameters(input: A1111Input): string {
  const pairs: [string, string][] = [];
  const add = (k: string, v: A1111Value | null | undefined) => {
    if (v === undefined || v === null || v === '') return;
    pairs.push([k, quote(typeof v === 'number' ? formatNumber(v) : v)]);
  };
  add('Steps', input.steps);
  add('Sampler', input.sampler);
  add('CFG scale', input.guidance);
  add('Seed', input.seed);
  pairs.push(['Size', `${formatNumber(input.width)}x${formatNumber(input.height)}`]);
  add('Model hash', input.modelHash);
  add('Model', input.model);
  add('Backend', input.backend);
  for (const [k, v] of Object.entries(input.extra ?? {})) {
    if (!KEY_RE.test(k)) throw new Error(`A1111 parameter key ${JSON.stringify(k)} is not parseable`);
    if (STANDARD_KEYS.has(k)) throw new Error(`A1111 parameter key ${k} is set by a dedicated field`);
    add(k, v);
  }

  // A1111 writes the prompt as is; only CRLF is normalised so line splitting agrees.
  const lines = [input.prompt.replace(/\r\n?/g, '\n')];
  if (input.negativePrompt) lines.push(`Negative prompt: ${input.negativePrompt.replace(/\r\n?/g, '\n')}`);
  lines.push(pairs.map(([k, v]) => `${k}: ${v}`).join(', '));
  return lines.join('\n');
}

function parseParamLine(line: string): [string, string][] {
  const out: [string, string][] = [];
  for (const m of line.matchAll(PARAM_RE)) {
    const key = m[1];
    const value = m[2];
    if (key !== undefined && value !== undefined) out.push([key.trim(), unquote(value.trim())]);
  }
  return out;
}

/** Port of A1111's parse_generation_parameters (without its key renaming/defaults). */
export function parseA1111Parameters(text: string): A1111Parsed {
  const lines = text.replace(/\r\n?/g, '\n').trim().split('\n');
  const last = lines[lines.length - 1] ?? '';
  let pairs = parseParamLine(last);
  // Like A1111: fewer than 3 pairs means the last line is still prompt text.
  if (pairs.length < 3) {
    pairs = [];
  } else {
    lines.pop();
  }

  let prompt = '';
  let negativePrompt = '';
  let inNegative = false;
  for (let line of lines) {
    line = line.trim();
    if (line.startsWith('Negative prompt:')) {
      inNegative = true;
      line = line.slice('Negative prompt:'.length).trim();
    }
    if (inNegative) negativePrompt += (negativePrompt === '' ? '' : '\n') + line;
    else prompt += (prompt === '' ? '' : '\n') + line;
  }

  const params: Record<string, string> = {};
  for (const [k, v] of pairs) {
    Object.defineProperty(params, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return { prompt, negativePrompt, params };
}
