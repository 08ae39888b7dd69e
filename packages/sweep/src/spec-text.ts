/**
 * Sweep specs written as text (YAML, which includes JSON). One reader for the
 * CLI's files, the dashboard's pasted specs and `npm run up`, so a mistake is
 * placed on its line and column the same way wherever it was written.
 */
import { LineCounter, parseDocument, type Document } from 'yaml';
import { countJobs } from './limits.js';
import { parseSpec, SpecError, type SpecIssue, type SweepSpec } from './spec.js';

/** A problem with its 1-based line and column in the text, where known. */
export interface SpecTextIssue extends SpecIssue {
  line?: number;
  column?: number;
}

/** What is wrong with the text as a whole: each has its own headline. */
export type SpecTextProblem = 'syntax' | 'empty' | 'invalid';

const HEADLINES: Record<SpecTextProblem, string> = {
  syntax: 'not valid YAML or JSON',
  empty: 'the spec is empty',
  invalid: 'invalid sweep spec',
};

export class SpecTextError extends SpecError {
  /** The message without its details, e.g. "invalid sweep spec". */
  readonly headline: string;

  constructor(
    readonly problem: SpecTextProblem,
    override readonly details: SpecTextIssue[],
  ) {
    super(HEADLINES[problem], details);
    this.headline = HEADLINES[problem];
  }
}

export interface SpecText {
  /** The document as written (what POST /api/sweeps takes); null when the text holds nothing. */
  input: unknown;
  /** Line and column of the value at a dotted field path, or of its nearest existing parent. */
  locate(path: string): { line?: number; column?: number };
}

/** Parses YAML or JSON text without validating it; throws SpecTextError('syntax') naming every error's line. */
export function parseSpecText(text: string): SpecText {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length) {
    throw new SpecTextError(
      'syntax',
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return { path: '', message: e.message.split('\n')[0]!, line: pos.line, column: pos.col };
      }),
    );
  }
  return { input: doc.toJS() as unknown, locate: (path) => locate(doc, lineCounter, path) };
}

export interface CheckedSpecText {
  /** The document as written (the coordinator validates it again on submit). */
  input: unknown;
  spec: SweepSpec;
  jobs: number;
}

/** Parses and validates: throws SpecTextError ('syntax', 'empty' or 'invalid'), every issue placed on its line. */
export function readSpecText(text: string): CheckedSpecText {
  const { input, locate: at } = parseSpecText(text);
  if (input === null || input === undefined) throw new SpecTextError('empty', [{ path: '', message: 'expected a sweep spec with at least prompts and seeds' }]);
  try {
    const spec = parseSpec(input);
    return { input, spec, jobs: countJobs(spec) };
  } catch (err) {
    if (!(err instanceof SpecError)) throw err;
    throw new SpecTextError(
      'invalid',
      err.details.map((d) => ({ ...d, ...at(d.path) })),
    );
  }
}

function locate(doc: Document, lc: LineCounter, path: string): { line?: number; column?: number } {
  const parts: (string | number)[] = path ? path.split('.').map((p) => (/^\d+$/.test(p) ? Number(p) : p)) : [];
  for (let n = parts.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(parts.slice(0, n), true);
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    if (range) {
      const pos = lc.linePos(range[0]);
      return { line: pos.line, column: pos.col };
    }
  }
  return {};
}
