/** `nightshift cancel|pause|resume|priority`: steering a sweep that is already on the farm. */
import type { Command } from 'commander';
import { int } from '../args.js';
import type { CommandContext } from '../context.js';
import { sweepLine, type SweepView } from '../format.js';
import { getSweep } from '../watch.js';

export function registerControl(program: Command, ctx: CommandContext): void {
  const { print, printJson } = ctx;
  for (const [action, word] of [
    ['cancel', 'cancelled'],
    ['pause', 'paused'],
    ['resume', 'resumed'],
  ] as const) {
    program
      .command(action)
      .description(`${action} a sweep`)
      .argument('<sweep>', 'sweep id')
      .action(async (id: string, _opts: unknown, cmd: Command) => {
        const g = ctx.globals(cmd);
        const c = ctx.client(cmd);
        await getSweep(c, id);
        const s = await c.post<SweepView>(`/api/sweeps/${encodeURIComponent(id)}/${action}`);
        if (g.json) return printJson(s);
        print(`sweep ${id} ${word}: ${sweepLine(s)}`);
      });
  }

  program
    .command('priority')
    .description('change the priority of a sweep (-100..100, higher runs first)')
    .argument('<sweep>', 'sweep id')
    .argument('<priority>', 'new priority', int('priority', -100, 100))
    .action(async (id: string, priority: number, _opts: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const s = await ctx.client(cmd).post<SweepView>(`/api/sweeps/${encodeURIComponent(id)}/priority`, { priority });
      if (g.json) return printJson(s);
      print(`sweep ${id} now has priority ${s.priority}`);
    });
}
