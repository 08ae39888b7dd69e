/** `nightshift status` and `nightshift watch`: where sweeps stand, once or live. */
import type { Command } from 'commander';
import { CliError, EXIT } from '../client.js';
import type { CommandContext, GlobalOpts } from '../context.js';
import { ago, countsText, duration, finalReport, finished, FINAL, table, type SweepView } from '../format.js';
import { getSweep, watchSweep } from '../watch.js';
import { costText, type CostJson } from '../cost-format.js';

/** Prints a watched sweep's end (JSON with `extra`, or its report); a sweep that did not finish `done` exits 1. */
export function finishWatch({ print, printJson }: CommandContext, final: SweepView, g: GlobalOpts, extra: object = {}): void {
  if (g.json) printJson({ ...extra, ...final });
  else print(finalReport(final));
  if (final.status !== 'done') throw new CliError(`sweep ${final.id} ended ${final.status}`, EXIT.failed);
}

export function registerStatus(program: Command, ctx: CommandContext): void {
  const { io, print, printJson } = ctx;
  program
    .command('status')
    .description('list sweeps with progress, or show one sweep in detail')
    .argument('[sweep]', 'sweep id')
    .action(async (id: string | undefined, _opts: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const c = ctx.client(cmd);
      if (id) {
        const s = await getSweep(c, id);
        if (g.json) return printJson(s);
        print(`${s.name} (${s.id}) — ${s.kind ?? 'render'}, backend ${s.backend}, priority ${s.priority}`);
        print(`  status    ${s.status}`);
        print(`  progress  ${finished(s)}/${s.total} (${s.total ? Math.floor((100 * finished(s)) / s.total) : 100}%): ${countsText(s)}`);
        if (!FINAL.has(s.status)) print(`  rate      ${s.rate ? `${s.rate.toFixed(2)} img/s` : '—'}   ETA ${duration(s.etaSeconds)}`);
        print(`  created   ${s.createdAt} (${ago(s.createdAt)})${s.finishedAt ? `, finished ${s.finishedAt}` : ''}`);
        // What the night cost so far (a coordinator from before costs sends none).
        const cost = (s as SweepView & { cost?: CostJson }).cost;
        if (cost) print(`  cost      ${costText(cost)}`);
        for (const e of s.explain ?? []) print(`  waiting   ${e}`);
        for (const f of s.failedJobs ?? []) print(`  failed    ${f.prompt} (seed ${f.seed}): ${f.error ?? 'no error recorded'}`);
        print(`  dashboard ${c.base}/ui/sweeps/${s.id}`);
        return;
      }
      const { sweeps } = await c.get<{ sweeps: SweepView[] }>('/api/sweeps');
      if (g.json) return printJson({ sweeps });
      if (!sweeps.length) return print('no sweeps yet — submit one with `nightshift submit FILE.yaml`');
      print(
        table(
          ['SWEEP', 'STATUS', 'PROGRESS', 'FAILED', 'ETA', 'PRIO', 'NAME'],
          sweeps.map((s) => [
            s.id,
            s.status,
            `${finished(s)}/${s.total} ${s.total ? Math.floor((100 * finished(s)) / s.total) : 100}%`,
            String(s.counts.failed),
            FINAL.has(s.status) ? '' : duration(s.etaSeconds),
            String(s.priority),
            s.name,
          ]),
        ),
      );
    });

  program
    .command('watch')
    .description('follow a sweep with a live progress bar (rate and ETA) until it finishes')
    .argument('<sweep>', 'sweep id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      finishWatch(ctx, await watchSweep(ctx.client(cmd), id, { out: io.out, quiet: Boolean(g.json) }), g);
    });
}
