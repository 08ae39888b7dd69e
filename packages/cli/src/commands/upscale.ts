/** `nightshift upscale`: queue ×4 upscales of chosen images as one batch. */
import type { Command } from 'commander';
import { int } from '../args.js';
import { CliError, EXIT } from '../client.js';
import type { CommandContext } from '../context.js';

export function registerUpscale(program: Command, ctx: CommandContext): void {
  program
    .command('upscale')
    .description('queue ×4 upscales: of given images, of the favorites of a sweep, or of a whole sweep')
    .argument('[keys...]', 'image keys (images/KEY.png) or render keys')
    .option('--favorites <sweep>', 'the favorites of this sweep')
    .option('--sweep <sweep>', 'every image of this sweep')
    .option('--priority <n>', 'priority of the upscale batch', int('priority', -100, 100))
    .action(async (keys: string[], opts: { favorites?: string; sweep?: string; priority?: number }, cmd: Command) => {
      const g = ctx.globals(cmd);
      const chosen = [keys.length > 0, Boolean(opts.favorites), Boolean(opts.sweep)].filter(Boolean).length;
      if (chosen !== 1) throw new CliError('give image keys, or --favorites SWEEP, or --sweep SWEEP (exactly one)', EXIT.usage);
      const body = keys.length ? { keys } : opts.favorites ? { sweep: opts.favorites, favorites: true } : { sweep: opts.sweep };
      const res = await ctx.client(cmd).post<{ id: string; jobs: number }>('/api/upscale', { ...body, ...(opts.priority === undefined ? {} : { priority: opts.priority }) });
      if (g.json) return ctx.printJson(res);
      ctx.print(`upscale batch ${res.id}: ${res.jobs} image(s) queued — nightshift watch ${res.id}`);
    });
}
