/**
 * The bucket's key layout (docs/design.md "Storage"), both ways: builders that
 * turn a renderKey (or a job id) into an object key, and parsers that read
 * one back. Every built key is checked so user-derived text can never
 * address an object outside the known prefixes.
 */

export const PREFIXES = ['images', 'thumbs', 'previews', 'upscaled'] as const;
export type Prefix = (typeof PREFIXES)[number];

/** The prefixes whose objects are named by a renderKey, and each one's file extension. */
const RENDER_EXTENSIONS = { images: 'png', thumbs: 'webp', upscaled: 'png' } as const;
export type RenderPrefix = keyof typeof RENDER_EXTENSIONS;

const KEY_RE = new RegExp(`^(${PREFIXES.join('|')})/[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$`);

export function assertSafeKey(key: string): string {
  if (!KEY_RE.test(key) || key.includes('..')) throw new Error(`refusing object key ${JSON.stringify(key)}: not under ${PREFIXES.join('/, ')}/`);
  return key;
}

const renderObjectKey = (prefix: RenderPrefix, renderKey: string) => assertSafeKey(`${prefix}/${renderKey}.${RENDER_EXTENSIONS[prefix]}`);

export const imageKey = (renderKey: string) => renderObjectKey('images', renderKey);
export const thumbKey = (renderKey: string) => renderObjectKey('thumbs', renderKey);
export const previewKey = (jobId: string) => assertSafeKey(`previews/${jobId}.webp`);
export const upscaledKey = (renderKey: string) => renderObjectKey('upscaled', renderKey);

/** A renderKey every builder accepts (the coordinator's are sha256 hex); throws for one that is not. */
export function assertRenderKey(renderKey: string): string {
  try {
    thumbKey(renderKey); // the longest name a renderKey is built into
  } catch {
    throw new Error(`refusing render key ${JSON.stringify(renderKey)}`);
  }
  return renderKey;
}

/** The prefix a key sits under (`images/…` → 'images'), or undefined for a key outside the layout. */
export function keyPrefix(key: string): Prefix | undefined {
  return PREFIXES.find((p) => key.startsWith(`${p}/`));
}

/**
 * The renderKey an object key names: `images/RK.png`, `thumbs/RK.webp` or
 * `upscaled/RK.png` → RK (only under `prefix` when one is given); undefined
 * for any other key, previews included (they are named by job id).
 */
export function renderKeyOf(key: string, prefix?: RenderPrefix): string | undefined {
  for (const [p, ext] of Object.entries(RENDER_EXTENSIONS)) {
    if (prefix && p !== prefix) continue;
    const head = `${p}/`;
    const tail = `.${ext}`;
    if (key.length > head.length + tail.length && key.startsWith(head) && key.endsWith(tail)) return key.slice(head.length, -tail.length);
  }
  return undefined;
}

/** What users may type for an image: its key (`images/RK.png`) or the renderKey itself. */
export function renderKeyOfImageRef(ref: string): string {
  return renderKeyOf(ref, 'images') ?? ref;
}

/**
 * The model registry's keys (docs/design.md "Model registry"), kept apart from
 * PREFIXES on purpose: a model file's key has several segments (a diffusers
 * export's `unet/model.onnx`), which the single-segment layout above refuses,
 * and `/files/…` must keep serving images only. Every segment is checked, so
 * no model name or file path can escape `models/`.
 */
export const MODELS_PREFIX = 'models';

const MODEL_HASH_RE = /^[0-9a-f]{64}$/;
const MODEL_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
// One path segment of a model file: no separators, no control characters, not `.` or `..`.
const MODEL_SEGMENT_RE = /^[A-Za-z0-9._+@=,~ -]{1,200}$/;

export function assertModelHash(hash: string): string {
  if (!MODEL_HASH_RE.test(hash)) throw new Error(`refusing model hash ${JSON.stringify(hash)}: expected 64 lower-case hex digits`);
  return hash;
}

export function assertModelName(name: string): string {
  if (!MODEL_NAME_RE.test(name) || name.includes('..') || MODEL_HASH_RE.test(name)) {
    throw new Error(`refusing model name ${JSON.stringify(name)}: letters, digits, '.', '_', '-' (1-128, starting with a letter or digit, no '..', not a 64-hex hash)`);
  }
  return name;
}

/** A model file's relative path (`unet/model.onnx`): `/`-separated checked segments, never absolute, no `..`, no backslash. */
export function assertModelFilePath(path: string): string {
  const segments = path.split('/');
  const ok = path.length <= 1000 && segments.every((s) => MODEL_SEGMENT_RE.test(s) && s !== '.' && s !== '..' && s.trim() === s);
  if (!ok) throw new Error(`refusing model file path ${JSON.stringify(path)}: relative, '/'-separated, no '..' or '.' segments, no backslashes`);
  return path;
}

export const modelManifestKey = (hash: string) => `${MODELS_PREFIX}/${assertModelHash(hash)}/manifest.json`;
export const modelFileKey = (hash: string, path: string) => `${MODELS_PREFIX}/${assertModelHash(hash)}/files/${assertModelFilePath(path)}`;
/** The folder of one model's objects (for listing and removal). */
export const modelObjectsPrefix = (hash: string) => `${MODELS_PREFIX}/${assertModelHash(hash)}/`;
export const MODEL_NAMES_PREFIX = `${MODELS_PREFIX}/names/`;
export const modelNameKey = (name: string) => `${MODEL_NAMES_PREFIX}${assertModelName(name)}.json`;

/**
 * Wildcard lists for dynamic prompts (`__name__`), one text object per list:
 * `wildcards/{name}.txt`. Kept apart from PREFIXES like the models, so
 * `/files/…` keeps serving images only; the name is checked, so no list
 * name can address another object.
 */
export const WILDCARDS_PREFIX = 'wildcards';
export const WILDCARD_NAME_RE = /^[a-z0-9_-]{1,64}$/;

export function assertWildcardName(name: string): string {
  if (!WILDCARD_NAME_RE.test(name)) throw new Error(`refusing wildcard list name ${JSON.stringify(name)}: 1-64 of a-z, 0-9, '_', '-'`);
  return name;
}

export const wildcardKey = (name: string) => `${WILDCARDS_PREFIX}/${assertWildcardName(name)}.txt`;

/** The list name a key names (`wildcards/colors.txt` → 'colors'); undefined for any other key. */
export function wildcardNameOf(key: string): string | undefined {
  const m = /^wildcards\/([a-z0-9_-]{1,64})\.txt$/.exec(key);
  return m?.[1];
}
