/**
 * Reads a sweep spec file and checks it with the coordinator's own validator
 * (through @nightshift/sweep's text reader) before anything is sent, so a
 * mistake is reported with the file, line and field it is in.
 */
import { readFileSync } from 'node:fs';
import { readSpecText, SpecTextError, type CheckedSpecText, type SpecTextIssue } from '@nightshift/sweep';
import { CliError, EXIT } from './client.js';

export type SpecProblem = SpecTextIssue;

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

export type SpecFile = CheckedSpecText;

export function readSpecFile(file: string): SpecFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : String(err);
    throw new CliError(`cannot read ${file}: ${why}`, EXIT.usage);
  }
  return checkSpecText(file, text);
}

/** The text of `file`, checked; problems become a SpecFileError naming the file. */
export function checkSpecText(file: string, text: string): SpecFile {
  try {
    return readSpecText(text);
  } catch (err) {
    if (!(err instanceof SpecTextError)) throw err;
    throw new SpecFileError(file, err.problem === 'empty' ? 'the file is empty' : err.headline, err.details);
  }
}
