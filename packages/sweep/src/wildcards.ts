/**
 * Dynamic prompts of one sweep: its prompts and template parsed once (with
 * the lists they use), measured for the expansion limits, and rendered per
 * job from the job's own generator. The lists come from the caller (the
 * coordinator reads them from the bucket before expanding): this package
 * stays free of storage.
 */
import { SpecError, type SweepSpec } from './spec.js';
import { MAX_NESTING, parseDynamic, type Part } from './wildcards-parse.js';
import { distinctIndices, type ChoiceRng } from './wildcards-rng.js';

/** List name → its lines (already cleaned: see wildcardLines). */
export type WildcardLists = ReadonlyMap<string, readonly string[]>;

interface Measure {
  /** The most characters the parts can render to. */
  bound: number;
  /** How deep braces and lists nest in them. */
  height: number;
}

function fail(path: string, offset: number, message: string): never {
  throw new SpecError('invalid dynamic prompt', [{ path, message: `${message} (at character ${offset})` }]);
}

/** The lists a sweep may use, each line parsed and each list measured once, on first use. */
class ListBook {
  private readonly parsed = new Map<string, Part[][]>();
  private readonly measured = new Map<string, Measure | 'measuring'>();

  constructor(private readonly lists: WildcardLists) {}

  lines(name: string): Part[][] {
    let lines = this.parsed.get(name);
    if (!lines) {
      lines = (this.lists.get(name) ?? []).map((line, k) => parseDynamic(line, { path: `wildcards.${name}.${k}`, placeholders: false }));
      this.parsed.set(name, lines);
    }
    return lines;
  }

  /** Throws for a list that is unknown, empty or (through others) uses itself; `path`/`offset` name the reference. */
  measure(name: string, path: string, offset: number): Measure {
    const known = this.measured.get(name);
    if (known === 'measuring') fail(path, offset, `the list __${name}__ uses itself`);
    if (known) return known;
    if (!this.lists.has(name)) fail(path, offset, `unknown wildcard list __${name}__ (PUT /api/wildcards/${name} creates it)`);
    const lines = this.lines(name);
    if (!lines.length) fail(path, offset, `the wildcard list __${name}__ has no lines`);
    this.measured.set(name, 'measuring');
    const m = { bound: 0, height: 0 };
    lines.forEach((parts, k) => {
      const line = measureParts(this, parts, `wildcards.${name}.${k}`, () => 0);
      m.bound = Math.max(m.bound, line.bound);
      m.height = Math.max(m.height, line.height);
    });
    this.measured.set(name, m);
    return m;
  }
}

function measureParts(book: ListBook, parts: Part[], path: string, placeholder: (name: string) => number): Measure {
  let bound = 0;
  let height = 0;
  for (const p of parts) {
    let m: Measure;
    if (p.kind === 'text') m = { bound: p.text.length, height: 0 };
    else if (p.kind === 'placeholder') m = { bound: placeholder(p.name), height: 0 };
    else if (p.kind === 'wildcard') {
      const list = book.measure(p.name, path, p.offset);
      m = { bound: list.bound, height: list.height + 1 };
    } else {
      // The longest option, as many times as the count allows (options are distinct, so never more than there are).
      let n: number;
      let longest: Measure;
      if (p.list !== undefined) {
        longest = book.measure(p.list, path, p.offset);
        n = book.lines(p.list).length;
        longest = { bound: longest.bound, height: longest.height + 1 };
      } else {
        n = p.options.length;
        longest = p.options.map((o) => measureParts(book, o, path, placeholder)).reduce((a, b) => ({ bound: Math.max(a.bound, b.bound), height: Math.max(a.height, b.height) }));
      }
      const k = Math.min(p.max, n);
      m = { bound: k * longest.bound + Math.max(0, k - 1) * p.sep.length, height: longest.height + 1 };
    }
    bound += m.bound;
    height = Math.max(height, m.height);
    if (m.height > MAX_NESTING) fail(path, p.kind === 'text' ? 0 : p.offset, `choices and lists nested deeper than ${MAX_NESTING} levels`);
  }
  return { bound, height };
}

function renderParts(book: ListBook, parts: Part[], rng: ChoiceRng, fill: (name: string) => string): string {
  let out = '';
  for (const p of parts) {
    if (p.kind === 'text') out += p.text;
    else if (p.kind === 'placeholder') out += fill(p.name);
    else if (p.kind === 'wildcard') {
      const lines = book.lines(p.name);
      out += renderParts(book, lines[rng.int(lines.length)]!, rng, fill);
    } else {
      const options = p.list !== undefined ? book.lines(p.list) : p.options;
      const k = Math.min(options.length, p.min + rng.int(p.max - p.min + 1));
      const picks = k === 1 ? [rng.int(options.length)] : distinctIndices(rng, options.length, k);
      out += picks.map((i) => renderParts(book, options[i]!, rng, fill)).join(p.sep);
    }
  }
  return out;
}

const isPlain = (parts: Part[]) => parts.every((p) => p.kind === 'text');

/** A spec's prompts and template, parsed; `dynamic` is false when none uses the syntax (expansion then skips it). */
export class DynamicSpec {
  private readonly book: ListBook;
  readonly prompts: Part[][];
  readonly template: Part[] | undefined;
  readonly dynamic: boolean;

  constructor(spec: SweepSpec, lists: WildcardLists = new Map()) {
    this.book = new ListBook(lists);
    this.prompts = spec.prompts.map((p, i) => parseDynamic(p, { path: `prompts.${i}`, placeholders: false }));
    this.template = spec.template === undefined ? undefined : parseDynamic(spec.template, { path: 'template', placeholders: true });
    this.dynamic = !this.prompts.every(isPlain) || (this.template !== undefined && !this.template.every((p) => p.kind === 'text' || p.kind === 'placeholder'));
  }

  /** The longest prompt i can render to, before the template (throws for unknown lists and too deep nesting). */
  promptBound(i: number): number {
    return measureParts(this.book, this.prompts[i]!, `prompts.${i}`, () => 0).bound;
  }

  /** The longest the template can render to, each placeholder at its longest (`longest(name)`). */
  templateBound(longest: (name: string) => number): number {
    return this.template ? measureParts(this.book, this.template, 'template', longest).bound : 0;
  }

  /** Prompt i with its choices made. */
  renderPrompt(i: number, rng: ChoiceRng): string {
    return renderParts(this.book, this.prompts[i]!, rng, () => '');
  }

  /** The template with its choices made and its placeholders filled. */
  renderTemplate(rng: ChoiceRng, fill: (name: string) => string): string {
    return renderParts(this.book, this.template ?? [], rng, fill);
  }
}
