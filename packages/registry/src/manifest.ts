/**
 * A model's manifest (`models/{hash}/manifest.json`) and its content hash.
 *
 * The model hash is defined so anyone can recompute it with coreutils: sort
 * the files by relative path in byte order, write one `sha256sum` line per
 * file (`<sha256 hex>␠␠<path>\n`), and take the sha256 of that text:
 *
 *   (cd DIR && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum) | sha256sum
 *
 * It covers content and layout only (not name, kind or date), so the same
 * files added twice, under any name, are one model. A single-file model's
 * path is the file's base name.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { assertModelFilePath, assertModelHash, assertModelName, formatIssues } from '@nightshift/common';

export const MODEL_KINDS = ['diffusion', 'clip', 'upscaler', 'generator-asset'] as const;
export type ModelKind = (typeof MODEL_KINDS)[number];

export interface ModelFile {
  /** Relative, '/'-separated (object-keys.ts assertModelFilePath). */
  path: string;
  size: number;
  sha256: string;
}

export interface ModelManifest {
  hash: string;
  /** The name it was first added under (names/ is the authority on what a name means now). */
  name: string;
  kind: ModelKind;
  files: ModelFile[];
  totalSize: number;
  addedAt: string;
}

/** A string the object-keys check accepts; its refusal (e.g. a '../' path) is the issue's message. */
const checked = (check: (s: string) => string) =>
  z.string().superRefine((s, ctx) => {
    try {
      check(s);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err) });
    }
  });

const fileSchema = z.object({ path: checked(assertModelFilePath), size: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) });
const manifestSchema = z.object({
  hash: checked(assertModelHash),
  name: checked(assertModelName),
  kind: z.enum(MODEL_KINDS),
  files: z.array(fileSchema).min(1),
  totalSize: z.number().int().nonnegative(),
  addedAt: z.string(),
});

/** Byte-order comparison of two paths (what `LC_ALL=C sort` does), not locale order. */
export function comparePaths(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function modelHash(files: readonly Pick<ModelFile, 'path' | 'sha256'>[]): string {
  const lines = [...files].sort((a, b) => comparePaths(a.path, b.path)).map((f) => `${f.sha256}  ${f.path}\n`);
  return createHash('sha256').update(lines.join('')).digest('hex');
}

export function buildManifest(name: string, kind: ModelKind, files: ModelFile[], addedAt = new Date()): ModelManifest {
  const sorted = [...files].sort((a, b) => comparePaths(a.path, b.path));
  const paths = new Set(sorted.map((f) => assertModelFilePath(f.path)));
  if (paths.size !== sorted.length) throw new Error('a model lists the same file path twice');
  return {
    hash: modelHash(sorted),
    name: assertModelName(name),
    kind,
    files: sorted,
    totalSize: sorted.reduce((n, f) => n + f.size, 0),
    addedAt: addedAt.toISOString(),
  };
}

/** A manifest that is not a valid one: final, unlike a bucket that cannot be reached (not worth a retry). */
export class ManifestError extends Error {
  override name = 'ManifestError';
}

/** Reads a manifest and checks it names its own content: a manifest whose hash does not match its files is refused. */
export function parseManifest(json: unknown, expectedHash?: string): ModelManifest {
  try {
    return checkManifest(json, expectedHash);
  } catch (err) {
    throw err instanceof ManifestError ? err : new ManifestError(err instanceof Error ? err.message : String(err));
  }
}

function checkManifest(json: unknown, expectedHash?: string): ModelManifest {
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) throw new ManifestError(`invalid model manifest: ${formatIssues(parsed.error.issues)}`);
  const m = parsed.data;
  const actual = modelHash(m.files);
  if (actual !== m.hash) throw new Error(`model manifest ${m.hash} lists files that hash to ${actual}`);
  if (expectedHash !== undefined && m.hash !== expectedHash) throw new Error(`model manifest for ${expectedHash} names ${m.hash}`);
  if (m.totalSize !== m.files.reduce((n, f) => n + f.size, 0)) throw new Error(`model manifest ${m.hash}: totalSize does not add up`);
  // Two entries for one path would download into one file that can match only one of them; a file
  // named like another's folder ('a' and 'a/b') cannot be laid out at all.
  const paths = new Set(m.files.map((f) => f.path));
  if (paths.size !== m.files.length) throw new Error(`model manifest ${m.hash} lists the same file path twice`);
  for (const p of paths) {
    const folders = p.split('/').slice(0, -1).map((_, i, segs) => segs.slice(0, i + 1).join('/'));
    const clash = folders.find((d) => paths.has(d));
    if (clash !== undefined) throw new Error(`model manifest ${m.hash} lists ${clash} both as a file and as the folder of ${p}`);
  }
  return m;
}

export function isModelKind(kind: string): kind is ModelKind {
  return (MODEL_KINDS as readonly string[]).includes(kind);
}
