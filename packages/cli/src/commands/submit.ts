/** `nightshift submit`: check a spec file locally, then submit it (and optionally watch it). */
import type { Command } from 'commander';
import { collectWildcards, expandSweep, SpecError, specTexts, type WildcardLists } from '@nightshift/sweep';
import { int } from '../args.js';
import { ApiError, CliError, EXIT, type Client } from '../client.js';
import type { CommandContext } from '../context.js';
import { formatProblems, readSpecFile } from '../spec-file.js';
import { watchSweep } from '../watch.js';
import { finishWatch } from './status.js';

/** POSTs a spec read from `file`; the coordinator's field problems are listed against the file. */
export async function postSweep(client: Client, file: string, body: unknown): Promise<{ id: string; jobs: number }> {
  try {
    return await client.post<{ id: string; jobs: number }>('/api/sweeps', body);
  } catch (err) {
    if (err instanceof ApiError && err.details.length) throw new CliError(formatProblems(file, `the coordinator refused it: ${err.message.split(':')[0]}`, err.details), EXIT.usage);
    throw err;
  }
}

/** The wildcard lists a spec uses, from the farm (only asked when it uses some: a dry run stays offline otherwise). */
async function farmWildcards(client: Client, input: unknown): Promise<WildcardLists> {
  return collectWildcards(specTexts(input), async (name) => {
    try {
      return (await client.get<{ lines: string[] }>(`/api/wildcards/${name}`)).lines;
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return undefined;
      throw err;
    }
  });
}

export function registerSubmit(program: Command, ctx: CommandContext): void {
  const { io, print, printJson } = ctx;
  program
    .command('submit')
    .description('submit a sweep spec (YAML or JSON file); checks it locally first')
    .argument('<file>', 'sweep spec, e.g. examples/sweep.yaml')
    .option('-w, --watch', 'follow the sweep until it finishes (exit code 1 if it fails)')
    .option('--dry-run', 'only check the file and show the job count and sample prompts')
    .option('--priority <n>', 'override the spec priority (-100..100)', int('priority', -100, 100))
    .action(async (file: string, opts: { watch?: boolean; dryRun?: boolean; priority?: number }, cmd: Command) => {
      const g = ctx.globals(cmd);
      const { input, spec, jobs } = readSpecFile(file);
      const body = opts.priority === undefined ? input : { ...(input as object), priority: opts.priority };
      if (opts.dryRun) {
        const lists = await farmWildcards(ctx.client(cmd), input);
        let sample: ReturnType<typeof expandSweep>;
        try {
          sample = jobs <= 200_000 ? expandSweep({ ...spec, seeds: [Array.isArray(spec.seeds) ? spec.seeds[0]! : spec.seeds.start] }, Number.MAX_SAFE_INTEGER, lists) : [];
        } catch (err) {
          if (err instanceof SpecError) throw new CliError(formatProblems(file, err.message.split(':')[0]!, err.details), EXIT.usage);
          throw err;
        }
        const prompts = [...new Set(sample.map((j) => j.prompt))];
        if (g.json) return printJson({ ok: true, jobs, prompts: prompts.slice(0, 20) });
        print(`${file}: ok — ${jobs} job(s): ${spec.prompts.length} prompt(s) × ${Object.keys(spec.axes).length} ax(es) × ${Array.isArray(spec.seeds) ? spec.seeds.length : spec.seeds.count} seed(s)`);
        for (const p of prompts.slice(0, 10)) print(`  ${p}`);
        if (prompts.length > 10) print(`  … ${prompts.length - 10} more`);
        return;
      }
      const c = ctx.client(cmd);
      const res = await postSweep(c, file, body);
      if (!opts.watch) {
        if (g.json) return printJson(res);
        print(`submitted ${file} as sweep ${res.id} (${res.jobs} jobs)`);
        print(`  follow it: nightshift watch ${res.id}   ·   dashboard: ${c.base}/ui/sweeps/${res.id}`);
        return;
      }
      if (!g.json) print(`submitted ${file} as sweep ${res.id} (${res.jobs} jobs) — watching; Ctrl-C stops watching, not the sweep`);
      const final = await watchSweep(c, res.id, { out: io.out, quiet: Boolean(g.json) });
      finishWatch(ctx, final, g, res);
    });
}
