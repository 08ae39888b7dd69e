/**
 * The dashboard's static files (static/: the client's ES modules and the
 * stylesheet), read once at start-up and served from memory, so a request
 * can only ever name a file that was loaded: no path reaches the disk.
 *
 * Pages link every file under /ui/static/<version>/, the version being a
 * hash of all of them, so the modules the entry imports by relative path
 * carry it too: all are cached for a year and a page never mixes files of
 * two builds. Without that prefix (or with an old one) a file is served
 * with `no-cache` and revalidated by ETag; `?v=<version>` still marks it
 * immutable, as before modules.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { Context } from 'hono';

interface Asset {
  type: string;
  body: Buffer;
  gzip: Buffer;
  etag: string;
}

const STATIC_DIR = new URL('./static/', import.meta.url);
const TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };
/** Where the client's modules live, as pages link them. */
export const STATIC_PATH = '/ui/static';

export function acceptsGzip(c: Context): boolean {
  return /\bgzip\b/.test(c.req.header('accept-encoding') ?? '');
}

export interface StaticAssets {
  /** Hash of every file. */
  version: string;
  /** Where pages link the files: `${STATIC_PATH}/${version}`. */
  base: string;
  /** Paths of the client's modules under `base` (the entry first, the rest to preload). */
  modules: string[];
  /** GET ${STATIC_PATH}/* */
  serve: (c: Context) => Response;
}

/** Loads static/ (only .js and .css files; not the client's tsconfig or type declarations). */
export function loadStaticAssets(entry = 'app.js'): StaticAssets {
  const assets = new Map<string, Asset>();
  const all = createHash('sha256');
  const names = readdirSync(STATIC_DIR, { recursive: true, encoding: 'utf8' })
    .map((n) => n.split('\\').join('/'))
    .filter((n) => Object.hasOwn(TYPES, extension(n)))
    .sort();
  for (const name of names) {
    const body = readFileSync(new URL(name, STATIC_DIR));
    const hash = createHash('sha256').update(body).digest('hex').slice(0, 16);
    all.update(name).update(body);
    assets.set(name, { type: TYPES[extension(name)]!, body, gzip: gzipSync(body, { level: 9 }), etag: `"${hash}"` });
  }
  if (!assets.has(entry)) throw new Error(`dashboard: static/${entry} is missing`);
  const version = all.digest('hex').slice(0, 12);
  const modules = [entry, ...names.filter((n) => n !== entry && n.endsWith('.js'))];

  const serve = (c: Context): Response => {
    const path = c.req.path.slice(STATIC_PATH.length + 1);
    const versioned = /^([0-9a-f]{12})\/(.+)$/.exec(path);
    const asset = assets.get(versioned?.[2] ?? path);
    if (!asset) return c.json({ error: 'not found' }, 404);
    const immutable = (versioned?.[1] ?? c.req.query('v')) === version;
    const headers: Record<string, string> = {
      'Content-Type': asset.type,
      ETag: asset.etag,
      Vary: 'Accept-Encoding',
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
    };
    if (c.req.header('if-none-match') === asset.etag) return c.body(null, 304, headers);
    if (acceptsGzip(c)) return c.body(new Uint8Array(asset.gzip), 200, { ...headers, 'Content-Encoding': 'gzip' });
    return c.body(new Uint8Array(asset.body), 200, headers);
  };
  return { version, base: `${STATIC_PATH}/${version}`, modules, serve };
}

function extension(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot > name.lastIndexOf('/') ? name.slice(dot) : '';
}
