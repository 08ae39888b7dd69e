/**
 * How validation problems are reported everywhere: each zod issue as a
 * dotted field path and a message, optionally under a prefix (the place the
 * validated value sits in a larger document).
 */

/** The part of a zod issue we report (structural, so any zod version's issues fit). */
export interface IssueLike {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

export interface FieldIssue {
  /** Dotted path, e.g. `params.width` or `generators.0.cwd`; '' for the value itself. */
  path: string;
  message: string;
}

export function fieldIssues(issues: readonly IssueLike[], prefix = ''): FieldIssue[] {
  return issues.map((i) => ({ path: [prefix, ...i.path.map(String)].filter((s) => s !== '').join('.'), message: i.message }));
}

/** One line: `path: message; path: message` (`(root)` names the value itself). */
export function formatIssues(issues: readonly IssueLike[], prefix = ''): string {
  return fieldIssues(issues, prefix)
    .map((i) => `${i.path || '(root)'}: ${i.message}`)
    .join('; ');
}
