/**
 * The wildcard lists a spec needs, gathered before expansion: the names its
 * prompts and template use, then the names those lists' lines use, as deep as
 * nesting may go. The loader (the coordinator's bucket) is the caller's; a
 * list it does not have is left out, and expansion names the reference.
 */
import { listsUsedBy, MAX_NESTING } from './wildcards-parse.js';
import type { WildcardLists } from './wildcards.js';

/** Lists one sweep may use at most (each is a read from the bucket). */
export const MAX_LISTS_PER_SWEEP = 100;

/** The prompt and template texts of a spec as submitted (not yet validated: anything else is ignored). */
export function specTexts(input: unknown): string[] {
  if (!input || typeof input !== 'object') return [];
  const { prompts, template } = input as { prompts?: unknown; template?: unknown };
  const texts = Array.isArray(prompts) ? prompts.filter((p): p is string => typeof p === 'string') : [];
  return typeof template === 'string' ? [...texts, template] : texts;
}

export async function collectWildcards(texts: readonly string[], load: (name: string) => Promise<readonly string[] | undefined>): Promise<WildcardLists> {
  const lists = new Map<string, readonly string[]>();
  const seen = new Set<string>();
  let wanted = [...new Set(texts.flatMap(listsUsedBy))];
  // One level past the limit, so a list nested too deep is reported as such, not as unknown.
  for (let depth = 0; depth <= MAX_NESTING && wanted.length; depth++) {
    wanted = wanted.filter((n) => !seen.has(n)).slice(0, MAX_LISTS_PER_SWEEP - seen.size);
    for (const n of wanted) seen.add(n);
    const loaded = await Promise.all(wanted.map(async (name) => [name, await load(name)] as const));
    const next = new Set<string>();
    for (const [name, lines] of loaded) {
      if (!lines) continue;
      lists.set(name, lines);
      for (const line of lines) for (const used of listsUsedBy(line)) next.add(used);
    }
    wanted = [...next];
  }
  return lists;
}
