/**
 * The dynamic-prompt syntax (docs/design.md "Wildcards and dynamic prompts"),
 * parsed in one left-to-right pass: the parser never backs up further than a
 * bounded look-ahead (a count prefix, a list name), and recursion only goes
 * as deep as the brace nesting, which is capped, so parsing is linear in the
 * text.
 *
 * - `{a|b|c}`: one option; `{2$$a|b|c}`: two distinct options joined by ", ";
 *   `{1-3$$a|b|c}`: one to three; `{2$$ and $$a|b|c}`: joined by " and ";
 *   `{2$$__name__}`: two distinct lines of a list.
 * - `__name__`: one line of the named list (lowercase [a-z0-9_-], the
 *   bucket's `wildcards/{name}.txt`).
 * - A brace group without `|` or a count is not a choice: in a template a
 *   bare `{name}` is the axis (or `{prompt}`) placeholder; in a prompt it is
 *   kept as written, braces included. `\{`, `\}` and `\|` are literal.
 *
 * Differences from the sd-dynamic-prompts extension: choices are made from
 * the job's seed and place in the grid, never at random; `{a}` is not a
 * one-option choice (see above); no weights (`0.5::a`), no `__dir/name__`
 * paths or globs, no variables, no combinatorial mode; list names are
 * lower-case; axis values are never parsed; nesting (braces and lists
 * together) is capped at MAX_NESTING.
 */
import { SpecError } from './spec.js';

export type Part =
  | { kind: 'text'; text: string }
  /** `{name}` in a template: the prompt or an axis value. */
  | { kind: 'placeholder'; name: string; offset: number }
  /** `{min-max$$sep$$a|b}`; `list` when the only option is one `__name__` (its lines are the options). */
  | { kind: 'choice'; min: number; max: number; sep: string; options: Part[][]; list?: string; offset: number }
  | { kind: 'wildcard'; name: string; offset: number };

/** Braces nested in braces, and lists used from lists, at most this deep. */
export const MAX_NESTING = 4;
export const WILDCARD_NAME = /^[a-z0-9_-]{1,64}$/;

export interface ParseSource {
  /** Field path for errors: `prompts.2`, `template`, `wildcards.colors.3`. */
  path: string;
  /** Whether a bare `{name}` is a placeholder (templates) or literal text (prompts, list lines). */
  placeholders: boolean;
}

/** Whether the text uses any of the syntax at all (the common case is plain text: no parse). */
export function hasDynamicSyntax(text: string): boolean {
  return text.includes('{') || text.includes('}') || text.includes('__') || text.includes('\\');
}

// Sticky look-aheads, each bounded in length so the pass stays linear.
const COUNT = /(\d{1,4})(?:-(\d{1,4}))?\$\$(?:([^{}|$]{0,64})\$\$)?/y;
const LIST_REF = /__([a-z0-9-](?:[a-z0-9_-]{0,62}?[a-z0-9-])?)__/y;
const PLAIN = /[^{}|_\\]+/y;
const PLAIN_NAME = /^[^{}]*$/;

class Parser {
  private i = 0;
  constructor(
    private readonly text: string,
    private readonly src: ParseSource,
  ) {}

  fail(offset: number, message: string): never {
    throw new SpecError('invalid dynamic prompt', [{ path: this.src.path, message: `${message} (at character ${offset})` }]);
  }

  parse(): Part[] {
    const parts = this.sequence(0, false);
    if (this.i < this.text.length) this.fail(this.i, `unbalanced "${this.text[this.i]}": no "{" opens it`);
    return parts;
  }

  /** Parts up to the end, or (inside a group) up to the next top-level "|" or "}". */
  private sequence(depth: number, inGroup: boolean): Part[] {
    const out: Part[] = [];
    const text = (s: string) => {
      const last = out[out.length - 1];
      if (last?.kind === 'text') last.text += s;
      else out.push({ kind: 'text', text: s });
    };
    const t = this.text;
    while (this.i < t.length) {
      const c = t[this.i]!;
      if (c === '{') {
        out.push(...this.group(depth + 1));
      } else if (c === '}' || c === '|') {
        if (inGroup) break;
        if (c === '}') this.fail(this.i, 'unbalanced "}": no "{" opens it');
        text(c);
        this.i++;
      } else if (c === '\\') {
        const next = t[this.i + 1];
        if (next === '{' || next === '}' || next === '|') {
          text(next);
          this.i += 2;
        } else {
          text(c);
          this.i++;
        }
      } else if (c === '_') {
        LIST_REF.lastIndex = this.i;
        const m = LIST_REF.exec(t);
        if (m) {
          out.push({ kind: 'wildcard', name: m[1]!, offset: this.i });
          this.i += m[0].length;
        } else {
          text(c);
          this.i++;
        }
      } else {
        PLAIN.lastIndex = this.i;
        const m = PLAIN.exec(t)!;
        text(m[0]);
        this.i += m[0].length;
      }
    }
    return out;
  }

  /** `{…}` at this.i: a choice, a placeholder, or literal braces around their content. */
  private group(depth: number): Part[] {
    const start = this.i;
    if (depth > MAX_NESTING) this.fail(start, `braces nested deeper than ${MAX_NESTING} levels`);
    this.i++;
    COUNT.lastIndex = this.i;
    const count = COUNT.exec(this.text);
    if (count) this.i += count[0].length;
    const options: Part[][] = [];
    for (;;) {
      options.push(this.sequence(depth, true));
      const c = this.text[this.i];
      if (c === undefined) this.fail(start, 'unbalanced "{": no "}" closes it');
      this.i++;
      if (c === '}') break;
    }
    if (count) {
      const min = Number(count[1]);
      const max = count[2] === undefined ? min : Number(count[2]);
      if (min > max) this.fail(start, `choice count ${min}-${max} runs backwards`);
      const only = options.length === 1 && options[0]!.length === 1 ? options[0]![0]! : undefined;
      const list = only?.kind === 'wildcard' ? only.name : undefined;
      return [{ kind: 'choice', min, max, sep: count[3] ?? ', ', options, ...(list ? { list } : {}), offset: start }];
    }
    if (options.length > 1) return [{ kind: 'choice', min: 1, max: 1, sep: ', ', options, offset: start }];
    const raw = this.text.slice(start + 1, this.i - 1);
    if (this.src.placeholders && PLAIN_NAME.test(raw)) return [{ kind: 'placeholder', name: raw, offset: start }];
    return [{ kind: 'text', text: '{' }, ...options[0]!, { kind: 'text', text: '}' }];
  }
}

/** Parses one prompt, template or list line; throws SpecError naming `src.path` and the character offset. */
export function parseDynamic(text: string, src: ParseSource): Part[] {
  if (!hasDynamicSyntax(text)) return text ? [{ kind: 'text', text }] : [];
  return new Parser(text, src).parse();
}

/** The lines of a list file: trimmed, blank lines and `#` comments skipped (as the extension does). */
export function wildcardLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** Names of the lists a text uses directly (syntax errors are left to the full parse). */
export function listsUsedBy(text: string): string[] {
  if (!text.includes('__')) return [];
  const names = new Set<string>();
  for (const m of text.matchAll(/__([a-z0-9-](?:[a-z0-9_-]{0,62}?[a-z0-9-])?)__/g)) names.add(m[1]!);
  return [...names];
}

/** Placeholder names of a template (`{prompt}`, `{axis}`), choices and lists aside; throws SpecError on bad syntax. */
export function templatePlaceholders(template: string): string[] {
  const names: string[] = [];
  const walk = (parts: Part[]) => {
    for (const p of parts) {
      if (p.kind === 'placeholder') names.push(p.name);
      else if (p.kind === 'choice') p.options.forEach(walk);
    }
  };
  walk(parseDynamic(template, { path: 'template', placeholders: true }));
  return names;
}
