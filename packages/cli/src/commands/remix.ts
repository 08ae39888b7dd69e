/**
 * `nightshift remix FILE.png`: the sweep spec that renders an image again,
 * read by the coordinator (POST /api/remix) from the PNG's metadata
 * (Nightshift, A1111, ComfyUI, InvokeAI). Prints it as YAML to edit and
 * submit, or submits it at once with --submit; --seeds and --axis turn the
 * one image into a sweep around it.
 */
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { stringify } from 'yaml';
import { int } from '../args.js';
import { CliError, EXIT } from '../client.js';
import type { CommandContext } from '../context.js';
import { postSweep } from './submit.js';

type Scalar = string | number | boolean;

type Spec = Record<string, unknown> & { seeds: number[] | { start: number; count: number }; axes?: Record<string, Scalar[]> };

interface RemixAnswer {
  spec: Spec;
  source: string;
  notes?: string[];
  issues?: { path: string; message: string }[];
}

interface RemixOpts {
  seeds?: number;
  axis?: [string, Scalar[]][];
  submit?: boolean;
}

/** `name=a,b,c`; values of a `params.` axis that look like numbers are numbers, as in a spec file. */
export function parseAxis(arg: string, previous: [string, Scalar[]][] = []): [string, Scalar[]][] {
  const m = /^([A-Za-z_][\w.]*)=(.*)$/s.exec(arg);
  if (!m) throw new InvalidArgumentError('expected name=value1,value2,… (e.g. style=watercolor,ink)');
  const name = m[1]!;
  const values = m[2]!.split(',').map((v) => v.trim());
  if (!values.some((v) => v !== '')) throw new InvalidArgumentError(`axis ${name} needs at least one value`);
  const typed = values.map((v): Scalar => (name.startsWith('params.') && /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v));
  return [...previous, [name, typed]];
}

/** The remixed spec with the command line's changes: N seeds from the image's own, extra axes. */
export function applyRemixOptions(spec: Spec, opts: Pick<RemixOpts, 'seeds' | 'axis'>): Spec {
  const out = { ...spec };
  if (opts.seeds !== undefined) out.seeds = { start: Array.isArray(spec.seeds) ? (spec.seeds[0] ?? 0) : spec.seeds.start, count: opts.seeds };
  if (opts.axis?.length) out.axes = { ...(spec.axes ?? {}), ...Object.fromEntries(opts.axis) };
  return out;
}

export function registerRemix(program: Command, ctx: CommandContext): void {
  const { io, print, printJson } = ctx;
  program
    .command('remix')
    .description('read the settings a PNG was made with (Nightshift, A1111, ComfyUI, InvokeAI) as a sweep spec; print it or --submit it')
    .argument('<file>', 'a PNG with generation metadata')
    .option('--seeds <n>', 'render N seeds, starting from the image\'s own', int('seeds', 1, 100_000))
    .option('--axis <name=a,b,…>', 'add an axis (repeatable), e.g. style=watercolor,ink or params.steps=20,40', parseAxis)
    .option('--submit', 'submit the spec instead of printing it')
    .addHelpText('after', '\nExample:\n  nightshift remix cat.png --seeds 20 --axis style=watercolor,ink > cat.yaml && nightshift submit cat.yaml')
    .action(async (file: string, opts: RemixOpts, cmd: Command) => {
      const g = ctx.globals(cmd);
      let bytes: Buffer;
      try {
        bytes = readFileSync(file);
      } catch (err) {
        const code = (err as { code?: string }).code;
        throw new CliError(`cannot read ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : String(err)}`, EXIT.usage);
      }
      const c = ctx.client(cmd);
      const remix = await c.postBytes<RemixAnswer>('/api/remix', bytes, 'image/png');
      const spec = applyRemixOptions(remix.spec, opts);
      // Notes go to stderr, so `remix a.png > a.yaml` leaves a clean spec file.
      for (const n of remix.notes ?? []) if (!g.json) io.err.write(`note: ${n}\n`);
      for (const i of remix.issues ?? []) if (!g.json) io.err.write(`to fix before submitting: ${i.path ? `${i.path}: ` : ''}${i.message}\n`);
      if (!opts.submit) {
        if (g.json) return printJson({ ...remix, spec });
        io.out.write(`# remixed from ${file} (${remix.source} metadata)\n${stringify(spec)}`);
        return;
      }
      const res = await postSweep(c, file, spec);
      if (g.json) return printJson({ ...res, source: remix.source, spec });
      print(`submitted a remix of ${file} (${remix.source}) as sweep ${res.id} (${res.jobs} jobs)`);
      print(`  follow it: nightshift watch ${res.id}   ·   dashboard: ${c.base}/ui/sweeps/${res.id}`);
    });
}
