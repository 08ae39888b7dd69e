/**
 * Wildcard lists (`__name__` in prompts) in the farm's bucket, one text
 * object each (`wildcards/{name}.txt`, object-keys.ts), not in SQLite: they
 * are user files, like the images, and any coordinator of the farm sees the
 * same ones. Read through minio's client, as the model registry does,
 * because Storage's own methods only take image keys.
 */
import type { Readable } from 'node:stream';
import { USER_META_PREFIX, WILDCARDS_PREFIX, wildcardKey, wildcardNameOf, type Storage } from '@nightshift/common';
import { collectWildcards, parseDynamic, SpecError, specTexts, wildcardLines, type SpecIssue, type WildcardLists } from '@nightshift/sweep';

export type WildcardBucket = Pick<Storage, 'client' | 'bucket'>;

export const MAX_WILDCARD_BYTES = 1024 * 1024;
export const MAX_WILDCARD_LINES = 10_000;
/** User metadata holding a list's usable line count, so listing does not read every list. */
const LINES_META = 'lines';

const isNotFound = (err: unknown) => ['NotFound', 'NoSuchKey'].includes((err as { code?: string }).code ?? '');

/** The list's text as stored (comments and blank lines kept); undefined when there is none. */
export async function readWildcard(s: WildcardBucket, name: string): Promise<string | undefined> {
  let stream: Readable;
  try {
    stream = await s.client.getObject(s.bucket, wildcardKey(name));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Checks a list's text: at most MAX_WILDCARD_LINES lines, at least one usable
 * one, each in the prompt syntax (its nested choices and list references are
 * checked when a sweep uses it). Problems name the file's line (1-based).
 */
export function checkWildcardText(text: string): SpecIssue[] {
  const raw = text.split(/\r?\n/);
  if (raw.length > MAX_WILDCARD_LINES) return [{ path: '', message: `${raw.length} lines, more than the maximum of ${MAX_WILDCARD_LINES}` }];
  const issues: SpecIssue[] = [];
  raw.forEach((line, i) => {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) return;
    try {
      parseDynamic(t, { path: `line ${i + 1}`, placeholders: false });
    } catch (err) {
      if (!(err instanceof SpecError)) throw err;
      issues.push(...err.details);
    }
  });
  if (!issues.length && !wildcardLines(text).length) issues.push({ path: '', message: 'no lines (blank lines and # comments do not count)' });
  return issues.slice(0, 20);
}

/** Stores a list (after checkWildcardText); returns its usable line count. */
export async function writeWildcard(s: WildcardBucket, name: string, text: string): Promise<number> {
  const lines = wildcardLines(text).length;
  const body = Buffer.from(text, 'utf8');
  await s.client.putObject(s.bucket, wildcardKey(name), body, body.length, { 'Content-Type': 'text/plain; charset=utf-8', [`${USER_META_PREFIX}${LINES_META}`]: String(lines) });
  return lines;
}

export async function removeWildcard(s: WildcardBucket, name: string): Promise<boolean> {
  const key = wildcardKey(name);
  try {
    await s.client.statObject(s.bucket, key);
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
  await s.client.removeObject(s.bucket, key);
  return true;
}

/** Every list, by name, with its usable line count. */
export async function listWildcards(s: WildcardBucket): Promise<{ name: string; lines: number }[]> {
  const names: string[] = [];
  for await (const item of s.client.listObjectsV2(s.bucket, `${WILDCARDS_PREFIX}/`, true)) {
    const name = wildcardNameOf((item as { name?: string }).name ?? '');
    if (name) names.push(name);
  }
  const out = await Promise.all(
    names.sort().map(async (name) => {
      const st = await s.client.statObject(s.bucket, wildcardKey(name)).catch((err: unknown) => (isNotFound(err) ? undefined : Promise.reject(err)));
      if (!st) return undefined; // removed meanwhile
      const stored = Number(Object.entries(st.metaData ?? {}).find(([k]) => k.toLowerCase() === LINES_META)?.[1]);
      const lines = Number.isInteger(stored) ? stored : wildcardLines((await readWildcard(s, name)) ?? '').length;
      return { name, lines };
    }),
  );
  return out.filter((x): x is { name: string; lines: number } => x !== undefined);
}

/**
 * The lists a submitted spec uses (and the lists those use), read before
 * expansion. Without a bucket (handler tests) there are none, so a spec that
 * names one is refused by expansion with the name and place.
 */
export async function specWildcards(s: Partial<WildcardBucket>, input: unknown, may?: (name: string) => boolean | Promise<boolean>): Promise<WildcardLists> {
  const { client, bucket } = s;
  const texts = specTexts(input);
  if (!client || bucket === undefined) return new Map();
  return collectWildcards(texts, async (name) => {
    // A list the caller may not use (another user's, wildcard-owners.ts) is as unknown as a missing one.
    if (may && !(await may(name))) return undefined;
    const text = await readWildcard({ client, bucket }, name);
    return text === undefined ? undefined : wildcardLines(text);
  });
}
