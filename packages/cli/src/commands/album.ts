/**
 * `nightshift album (--favorites | SWEEP | --query "text") OUT/`: a static
 * album to keep or send: index.html with thumbnails, full and upscaled
 * images, prompts and settings, that opens from the folder with no server
 * (file://). --zip writes OUT.zip instead. The coordinator says what is in
 * it (POST /api/albums); the bytes come from /files/; @nightshift/album
 * writes the page, the same code as the dashboard's download.
 */
import { existsSync, readdirSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { int } from '../args.js';
import { CliError, EXIT, unreachableError, type Client } from '../client.js';
import type { CommandContext } from '../context.js';
import type { SearchResult } from './images.js';

/** The album a command line asks for, before anything is fetched. */
export interface AlbumRequest {
  out: string;
  /** The body of POST /api/albums, or a search to run first. */
  selection: { favorites?: true; sweep?: string } | { query: string; k: number; sweep?: string };
  zip: boolean;
}

interface AlbumOpts {
  favorites?: boolean;
  query?: string;
  k: number;
  zip?: boolean;
}

/** Reads `album [SWEEP] OUT` and its options; usage errors say what is missing. */
export function albumRequest(first: string, second: string | undefined, opts: AlbumOpts): AlbumRequest {
  const sweep = second === undefined ? undefined : first;
  const out = (second ?? first).replace(/[\\/]+$/, '') || '.';
  const query = opts.query?.trim();
  if (opts.query !== undefined && !query) throw new CliError('--query needs some text, e.g. --query "red circle"', EXIT.usage);
  if (query && opts.favorites) throw new CliError('give --favorites or --query, not both', EXIT.usage);
  if (!query && !opts.favorites && !sweep) throw new CliError('say what goes in the album: --favorites, a sweep id, or --query "text" (then the output folder)', EXIT.usage);
  const selection = query ? { query, k: opts.k, ...(sweep ? { sweep } : {}) } : { ...(opts.favorites ? { favorites: true as const } : {}), ...(sweep ? { sweep } : {}) };
  return { out: opts.zip && !out.endsWith('.zip') ? `${out}.zip` : out, selection, zip: Boolean(opts.zip) };
}

/** Object bytes from the coordinator's /files/ (behind the API token when it has one). */
function objectReader(c: Client, token: string | undefined) {
  return async (key: string): Promise<Uint8Array> => {
    let res: Response;
    try {
      res = await fetch(`${c.base}/files/${key}`, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(60_000) });
    } catch (err) {
      throw unreachableError(c.base, err);
    }
    if (res.status === 401) throw new CliError('the coordinator refused the image download (HTTP 401): pass --token or set NIGHTSHIFT_API_TOKEN', EXIT.auth);
    if (!res.ok) throw new CliError(`cannot download ${key}: HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  };
}

export function registerAlbum(program: Command, ctx: CommandContext): void {
  program
    .command('album')
    .description('write an album (index.html, thumbnails, full and upscaled images, prompts and settings) that opens offline; --zip for one file')
    .usage('(--favorites | SWEEP | --query "text") OUT/')
    .argument('<sweep-or-out>', 'a sweep id, then the output folder; or just the folder with --favorites or --query')
    .argument('[out]', 'output folder (with a sweep id first)')
    .option('--favorites', 'your favorites (of the sweep, when one is given)')
    .option('--query <text>', 'the images a text search finds (CLIP)')
    .option('-k, --k <n>', 'how many images --query takes', int('k', 1, 500), 50)
    .option('--zip', 'write OUT.zip instead of a folder')
    .addHelpText('after', '\nExamples:\n  nightshift album --favorites ~/album\n  nightshift album sw_abc123 ~/night-1 --zip\n  nightshift album --query "red circle" -k 20 ~/circles')
    .action(async (first: string, second: string | undefined, opts: AlbumOpts, cmd: Command) => {
      const g = ctx.globals(cmd);
      const req = albumRequest(first, second, opts);
      const out = resolve(req.out);
      if (req.zip ? existsSync(out) : existsSync(out) && readdirSync(out).length > 0) {
        throw new CliError(`${req.out} already exists${req.zip ? '' : ' and is not empty'}: choose a new ${req.zip ? 'file' : 'folder'}`, EXIT.usage);
      }
      const c = ctx.client(cmd);
      let body: Record<string, unknown>;
      if ('query' in req.selection) {
        const { query, k, sweep } = req.selection;
        const sp = new URLSearchParams({ q: query, k: String(k), ...(sweep ? { sweep } : {}) });
        const { results } = await c.get<{ results: SearchResult[] }>(`/api/search?${sp}`);
        if (!results.length) throw new CliError(`no images match "${query}": nothing to put in an album`);
        body = { keys: results.map((r) => r.key), title: `Search: ${query}` };
      } else {
        body = req.selection;
      }
      // Loaded here: @nightshift/album brings @nightshift/common, which slows every other command's start.
      const { albumZip, writeAlbumFolder } = await import('@nightshift/album');
      const album = await c.post<import('@nightshift/album').Album>('/api/albums', body);
      const read = objectReader(c, g.token || undefined);
      let files: number;
      if (req.zip) {
        const zip = await albumZip(album, read, { upscaled: true });
        await writeFile(`${out}.part`, zip);
        await rename(`${out}.part`, out);
        files = zip.length;
      } else {
        files = await writeAlbumFolder(out, album, read, { upscaled: true });
      }
      const upscaled = album.images.filter((i) => i.upscaled).length;
      if (g.json) return ctx.printJson({ out, images: album.images.length, upscaled, title: album.title, ...(req.zip ? { bytes: files } : { files }) });
      ctx.print(`album "${album.title}": ${album.images.length} image(s)${upscaled ? `, ${upscaled} upscaled` : ''} → ${req.zip ? out : `${out}/index.html`}`);
    });
}
