/** `nightshift nodes`: the gpu-nodes the coordinator knows. */
import type { Command } from 'commander';
import type { CommandContext } from '../context.js';
import { ago, table } from '../format.js';

/** One node of GET /api/nodes. */
interface NodeView {
  id: string;
  name: string;
  status: string;
  capabilities: { gpuName?: string; vramMb?: number; backends?: string[]; models?: string[]; slots?: number };
  lastSeen: string;
  jobsDone: number;
  currentJobs: string[];
  /** Online but taking no work (schedule, GPU in use, pause by hand). */
  sleeping?: { label: string } | null;
}

export function registerNodes(program: Command, ctx: CommandContext): void {
  const { print, printJson } = ctx;
  program
    .command('nodes')
    .description('list gpu-nodes: status, GPU, VRAM, backends, current jobs, throughput')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const { nodes } = await ctx.client(cmd).get<{ nodes: NodeView[] }>('/api/nodes');
      if (g.json) return printJson({ nodes });
      if (!nodes.length) return print('no gpu-node has registered yet — start one with `nightshift node start`');
      print(
        table(
          ['NODE', 'STATUS', 'GPU', 'VRAM', 'SLOTS', 'BACKENDS', 'JOBS', 'DONE', 'HEARTBEAT'],
          nodes.map((n) => [
            n.name,
            n.status === 'online' && n.sleeping ? n.sleeping.label : n.status,
            n.capabilities.gpuName ?? '—',
            n.capabilities.vramMb ? `${(n.capabilities.vramMb / 1024).toFixed(1)}G` : '—',
            String(n.capabilities.slots ?? '—'),
            (n.capabilities.backends ?? []).join(','),
            String(n.currentJobs.length),
            String(n.jobsDone),
            ago(n.lastSeen),
          ]),
        ),
      );
    });
}
