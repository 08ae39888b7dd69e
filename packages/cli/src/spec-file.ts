/**
 * Reads a sweep spec file (YAML, or JSON, which YAML includes) and checks it
 * with the coordinator's own validator before anything is sent, so a mistake
 * is reported with the file, line and field it is in.
 */
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, type Document } from 'yaml';
import { countJobs, parseSpec, SpecError, type SweepSpec } from '@nightshift/sweep';
import { CliError, EXIT } from './client.js';

export interface SpecProblem {
  path: string;
  message: string;
  line?: number;
  column?: number;
}

export class SpecFileError extends CliError {
  constructor(
    readonly file: string,
    readonly headline: string,
    readonly problems: SpecProblem[],
  ) {
    super(formatProblems(file, headline, problems), EXIT.usage);
  }
}

export function formatProblems(file: string, headline: string, problems: SpecProblem[]): string {
  const lines = problems.map((p) => {
    const where = p.line ? `${file}:${p.line}:${p.column ?? 1}` : file;
    return `  ${where}  ${p.path ? `${p.path}: ` : ''}${p.message}`;
  });
  return [`${file}: ${headline}`, ...lines].join('\n');
}

export interface SpecFile {
  /** The document as written (sent to the coordinator, which validates it again). */
  input: unknown;
  spec: SweepSpec;
  jobs: number;
}

export function readSpecFile(file: string): SpecFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : String(err);
    throw new CliError(`cannot read ${file}: ${why}`, EXIT.usage);
  }
  return parseSpecText(file, text);
}

export function parseSpecText(file: string, text: string): SpecFile {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length) {
    throw new SpecFileError(
      file,
      'not valid YAML or JSON',
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return { path: '', message: e.message.split('\n')[0]!, line: pos.line, column: pos.col };
      }),
    );
  }
  const input = doc.toJS() as unknown;
  if (input === null || input === undefined) throw new SpecFileError(file, 'the file is empty', [{ path: '', message: 'expected a sweep spec with at least prompts and seeds' }]);
  try {
    const spec = parseSpec(input);
    return { input, spec, jobs: countJobs(spec) };
  } catch (err) {
    if (!(err instanceof SpecError)) throw err;
    throw new SpecFileError(
      file,
      'invalid sweep spec',
      err.details.map((d) => ({ ...d, ...locate(doc, lineCounter, d.path) })),
    );
  }
}

/** Line and column of the value at a dotted path, or of its nearest existing parent. */
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
