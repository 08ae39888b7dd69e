/**
 * An album's index.html: a static page that works from a folder opened with
 * file:// (relative links only, no scripts, no fetches, no external fonts)
 * and, unchanged, as a share page served under /s/TOKEN/. Prompts are
 * hostile input: every piece of text goes through escapeHtml, and the page
 * has no script at all, so a share page can forbid scripts outright (CSP).
 */
import { createHash } from 'node:crypto';
import type { Album, AlbumImage } from './album.js';
import { escapeHtml } from '@nightshift/common';
import { imageFiles, type AlbumFileOptions } from './files.js';


/** The page's only styles, inline so the folder needs nothing else; a share page allows exactly this block by its hash. */
export const ALBUM_CSS = `
:root { color-scheme: light dark; font-family: system-ui, sans-serif; }
body { margin: 0 auto; max-width: 1400px; padding: 1rem; }
header p { color: GrayText; margin-top: 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 1rem; list-style: none; padding: 0; }
figure { margin: 0; border: 1px solid #8884; border-radius: 6px; padding: .5rem; }
figure img { width: 100%; height: auto; display: block; background: #8882; }
figcaption { font-size: .85rem; overflow-wrap: anywhere; }
.prompt { font-weight: 600; margin: .4rem 0; }
dl { display: grid; grid-template-columns: auto 1fr; gap: 0 .6rem; margin: .3rem 0; }
dt { color: GrayText; }
dd { margin: 0; }
.links a { margin-right: .6rem; }
`;

/** The CSP source that allows ALBUM_CSS and nothing else. */
export const ALBUM_CSS_HASH = `'sha256-${createHash('sha256').update(ALBUM_CSS).digest('base64')}'`;

const settingText = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v) ?? String(v));

function figure(img: AlbumImage, opts: AlbumFileOptions): string {
  const files = imageFiles(img, opts);
  const path = (kind: string) => files.find((f) => f.kind === kind)?.path;
  const full = path('image')!;
  const upscaled = path('upscaled');
  const settings = [['seed', String(img.seed)], ...(img.sweepId ? [['sweep', img.sweepId]] : []), ...Object.entries(img.params).map(([k, v]) => [k, settingText(v)])];
  const prompt = escapeHtml(img.prompt);
  return `<li><figure id="${escapeHtml(img.renderKey)}">
<a href="${full}"><img src="${path('thumb')!}" alt="${prompt}"${dims(img)}></a>
<figcaption><p class="prompt">${prompt}</p>
<dl>${settings.map(([k, v]) => `<dt>${escapeHtml(k!)}</dt><dd>${escapeHtml(v!)}</dd>`).join('')}</dl>
<p class="links"><a class="full" href="${full}">Full image</a>${upscaled ? `<a class="upscaled" href="${upscaled}">Upscaled ×4</a>` : ''}</p>
</figcaption></figure></li>`;
}

/** width/height attributes from the settings, so the grid does not jump while thumbnails load. */
function dims(img: AlbumImage): string {
  const w = img.params.width;
  const h = img.params.height;
  return Number.isInteger(w) && Number.isInteger(h) ? ` width="${Number(w)}" height="${Number(h)}"` : '';
}

/** The whole index.html. Paths are relative to the page (images/…, thumbs/…, upscaled/…). */
export function albumHtml(album: Album, opts: AlbumFileOptions): string {
  const title = escapeHtml(album.title);
  const n = album.images.length;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex">
<title>${title}</title>
<style>${ALBUM_CSS}</style>
</head>
<body>
<header><h1>${title}</h1><p>${n} image${n === 1 ? '' : 's'} · made ${escapeHtml(album.createdAt)} with Nightshift</p></header>
<main><ul class="grid">
${album.images.map((img) => figure(img, opts)).join('\n')}
</ul></main>
</body>
</html>
`;
}
