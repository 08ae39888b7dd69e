/** `nightshift best SWEEP`: a sweep's images ranked by the taste model learned from your favorites. */
import type { Command } from 'commander';
import { int } from '../args.js';
import type { CommandContext } from '../context.js';
import { table } from '../format.js';

/** GET /api/sweeps/:id/best. */
export interface BestAnswer {
  results: { key: string; renderKey: string; score: number; favorite: boolean; url: string }[];
  scoredBy: string;
  model: { positives: number; negatives: number; cvAuc: number | null; trainedAt: string };
}

export function registerBest(program: Command, ctx: CommandContext): void {
  program
    .command('best')
    .description('the images of a sweep you are most likely to star (a taste model learned from your favorites; needs 10)')
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
      const m = res.model;
      ctx.print(`scored by your taste model: ${m.positives} favorites, ${m.negatives} not starred${m.cvAuc === null ? '' : `, cross-validated AUC ${m.cvAuc.toFixed(2)}`}`);
      ctx.print(table(['SCORE', 'FAV', 'KEY'], res.results.map((r) => [r.score.toFixed(3), r.favorite ? '★' : '', r.key])));
    });
}
