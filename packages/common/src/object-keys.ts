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
