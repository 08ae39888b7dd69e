/** `nightshift node pause|resume <node>`: stop or restart a gpu-node taking work, by hand (relayed by the coordinator). */
import type { Command } from 'commander';
import type { CommandContext } from '../context.js';

export function registerNodePause(node: Command, ctx: CommandContext): void {
  const { print, printJson } = ctx;
  for (const [action, word] of [
    ['pause', 'paused: it hands back its queued jobs and takes no more until resumed'],
    ['resume', 'resumed: it takes work again (within its schedule)'],
  ] as const) {
    node
      .command(action)
      .description(action === 'pause' ? 'stop a gpu-node taking work (as its onLeave says: finish or hand back the running job)' : 'let a paused gpu-node take work again')
      .argument('<node>', 'node id (see `nightshift nodes --json`)')
      .action(async (id: string, _opts: unknown, cmd: Command) => {
        const g = ctx.globals(cmd);
        const res = await ctx.client(cmd).post<{ id: string; paused: boolean }>(`/api/nodes/${encodeURIComponent(id)}/${action}`);
        if (g.json) return printJson(res);
        print(`node ${id} ${word}`);
      });
  }
}
