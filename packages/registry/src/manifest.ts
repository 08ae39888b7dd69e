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
import { assertModelFilePath, assertModelHash, assertModelName } from '@nightshift/common';

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

const checked = (check: (s: string) => string) => z.string().refine((s) => {
  try {
    check(s);
    return true;
  } catch {
    return false;
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

/** Reads a manifest and checks it names its own content: a manifest whose hash does not match its files is refused. */
export function parseManifest(json: unknown, expectedHash?: string): ModelManifest {
  const m = manifestSchema.parse(json);
  const actual = modelHash(m.files);
  if (actual !== m.hash) throw new Error(`model manifest ${m.hash} lists files that hash to ${actual}`);
  if (expectedHash !== undefined && m.hash !== expectedHash) throw new Error(`model manifest for ${expectedHash} names ${m.hash}`);
  if (m.totalSize !== m.files.reduce((n, f) => n + f.size, 0)) throw new Error(`model manifest ${m.hash}: totalSize does not add up`);
  return m;
}

export function isModelKind(kind: string): kind is ModelKind {
  return (MODEL_KINDS as readonly string[]).includes(kind);
}
