/**
 * `nightshift best SWEEP`: a sweep's images ranked by the taste model learned
 * from your favorites, or by the indexer's aesthetic head while there are too
 * few favorites (when one is configured).
 */
import type { Command } from 'commander';
import { int } from '../args.js';
import type { CommandContext } from '../context.js';
import { table } from '../format.js';

type BestResult = { key: string; renderKey: string; score: number; favorite: boolean; url: string };

/** GET /api/sweeps/:id/best. */
export type BestAnswer =
  | { results: BestResult[]; scoredBy: 'taste'; model: { positives: number; negatives: number; cvAuc: number | null; trainedAt: string } }
  | { results: BestResult[]; scoredBy: 'aesthetic'; aesthetic: { head: string }; taste: { favorites: number; needed: number } };

export function registerBest(program: Command, ctx: CommandContext): void {
  program
    .command('best')
    .description('the images of a sweep you are most likely to star (a taste model learned from your favorites; needs 10, or an aesthetic head on the indexer)')
    .argument('<sweep>', 'sweep id')
    .option('-k, --k <n>', 'number of images', int('k', 1, 1000), 20)
    .option('--unstarred', 'leave out images already starred')
    .action(async (sweep: string, opts: { k: number; unstarred?: boolean }, cmd: Command) => {
      const g = ctx.globals(cmd);
      const c = ctx.client(cmd);
      const sp = new URLSearchParams({ k: String(opts.k) });
      if (opts.unstarred) sp.set('starred', 'false');
      // A 409 (too few favorites) surfaces as the server's message and exit code 1.
      const res = await c.get<BestAnswer>(`/api/sweeps/${encodeURIComponent(sweep)}/best?${sp}`);
      if (g.json) return ctx.printJson({ ...res, results: res.results.map((r) => ({ ...r, url: new URL(r.url, c.base).href })) });
      if (!res.results.length) return ctx.print(`sweep ${sweep} has no indexed images yet`);
      if (res.scoredBy === 'taste') {
        const m = res.model;
        ctx.print(`scored by your taste model: ${m.positives} favorites, ${m.negatives} not starred${m.cvAuc === null ? '' : `, cross-validated AUC ${m.cvAuc.toFixed(2)}`}`);
      } else {
        ctx.print(`scored by the aesthetic head ${res.aesthetic.head}: ${res.taste.favorites} of the ${res.taste.needed} favorites a taste model needs`);
      }
      ctx.print(table(['SCORE', 'FAV', 'KEY'], res.results.map((r) => [r.score.toFixed(3), r.favorite ? '★' : '', r.key])));
    });
}
