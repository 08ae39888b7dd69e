/** `nightshift search` and `nightshift favorite`: finding rendered images and marking them. */
import type { Command } from 'commander';
import { int } from '../args.js';
import { CliError, EXIT } from '../client.js';
import type { CommandContext } from '../context.js';
import { table } from '../format.js';

/** One hit of GET /api/search. */
export interface SearchResult {
  key: string;
  renderKey?: string;
  score: number;
  prompt: string;
  seed: number;
  sweepId: string;
  url: string;
  favorite: boolean;
}

export function registerImages(program: Command, ctx: CommandContext): void {
  const { print, printJson } = ctx;
  program
    .command('search')
    .description('search rendered images by text (CLIP), or find images like one image')
    .argument('[text...]', 'what to look for, e.g. "red circle"')
    .option('-k, --k <n>', 'number of results', int('k', 1, 500), 10)
    .option('--sweep <id>', 'only images of this sweep')
    .option('--favorites', 'only favorites')
    .option('--like <key>', 'images similar to this image (key or render key)')
    .action(async (words: string[], opts: { k: number; sweep?: string; favorites?: boolean; like?: string }, cmd: Command) => {
      const g = ctx.globals(cmd);
      const q = words.join(' ').trim();
      if (!q && !opts.like) throw new CliError('give some text to search for, or --like KEY', EXIT.usage);
      const c = ctx.client(cmd);
      const sp = new URLSearchParams({ k: String(opts.k) });
      if (q) sp.set('q', q);
      if (opts.like) sp.set('image', opts.like);
      if (opts.sweep) sp.set('sweep', opts.sweep);
      if (opts.favorites) sp.set('favorites', 'true');
      const { results } = await c.get<{ results: SearchResult[] }>(`/api/search?${sp}`);
      if (g.json) return printJson({ results: results.map((r) => ({ ...r, url: new URL(r.url, c.base).href })) });
      if (!results.length) return print(`no images match${q ? ` "${q}"` : ''}`);
      print(table(['SCORE', 'FAV', 'SEED', 'KEY', 'PROMPT'], results.map((r) => [r.score.toFixed(3), r.favorite ? '★' : '', String(r.seed), r.key, r.prompt])));
    });

  program
    .command('favorite')
    .description('mark an image as favorite (or --remove the mark)')
    .argument('<key>', 'image key (images/KEY.png) or render key')
    .option('--remove', 'unmark it')
    .action(async (key: string, opts: { remove?: boolean }, cmd: Command) => {
      const g = ctx.globals(cmd);
      // Loaded here, not at the top: @nightshift/common brings the S3 and NATS
      // clients, which would slow every other command's start by about a second.
      const { renderKeyOfImageRef } = await import('@nightshift/common');
      const rk = renderKeyOfImageRef(key);
      const res = await ctx.client(cmd).request<{ key: string; favorite: boolean }>(opts.remove ? 'DELETE' : 'PUT', `/api/favorites/${encodeURIComponent(rk)}`);
      if (g.json) return printJson(res);
      print(`${res.key} ${res.favorite ? 'is now a favorite ★' : 'is no longer a favorite'}`);
    });
}
