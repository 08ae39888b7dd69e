/**
 * `nightshift`: the command line for a Nightshift farm. Commands talk to the
 * coordinator's HTTP API (--url, default $NIGHTSHIFT_URL or
 * http://127.0.0.1:8080) with --token / $NIGHTSHIFT_API_TOKEN; `up` and
 * `node start` run the farm's own processes.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { expandSweep } from '@nightshift/sweep';
import { ApiError, CliError, Client, EXIT } from './client.js';
import { ago, countsText, duration, finished, FINAL, sweepLine, table, type SweepView } from './format.js';
import { formatProblems, readSpecFile } from './spec-file.js';
import { getSweep, watchSweep } from './watch.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DEFAULT_URL = 'http://127.0.0.1:8080';

export interface Io {
  out: NodeJS.WritableStream & { isTTY?: boolean };
  err: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

interface GlobalOpts {
  url: string;
  token?: string;
  json?: boolean;
}

interface NodeView {
  id: string;
  name: string;
  status: string;
  capabilities: { gpuName?: string; vramMb?: number; backends?: string[]; models?: string[]; slots?: number };
  lastSeen: string;
  jobsDone: number;
  currentJobs: string[];
}

interface SearchResult {
  key: string;
  renderKey?: string;
  score: number;
  prompt: string;
  seed: number;
  sweepId: string;
  url: string;
  favorite: boolean;
}

const int = (what: string, min: number, max: number) => (v: string) => {
  if (!/^-?\d+$/.test(v)) throw new InvalidArgumentError(`${what} must be an integer`);
  const n = Number(v);
  if (n < min || n > max) throw new InvalidArgumentError(`${what} must be from ${min} to ${max}`);
  return n;
};

export function buildProgram(io: Io): Command {
  const print = (text: string): void => void io.out.write(`${text}\n`);
  const printJson = (value: unknown): void => void io.out.write(`${JSON.stringify(value, null, 2)}\n`);

  const program = new Command('nightshift')
    .description('Submit, watch and search Nightshift render sweeps; run a local farm or a gpu-node.')
    .addOption(new Option('--url <url>', 'coordinator HTTP address').env('NIGHTSHIFT_URL').default(DEFAULT_URL))
    .addOption(new Option('--token <token>', 'API token, when the coordinator has NIGHTSHIFT_API_TOKEN set').env('NIGHTSHIFT_API_TOKEN'))
    .option('--json', 'print JSON instead of text (for scripts)')
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({ writeOut: (s) => io.out.write(s), writeErr: (s) => io.err.write(s) })
    .exitOverride()
    .addHelpText(
      'after',
      `
Examples:
  nightshift up                               start the local farm and the example sweep
  nightshift submit examples/sweep.yaml --watch
  nightshift status                           all sweeps; \`status SWEEP\` for one
  nightshift search "red circle" --k 5
  nightshift node start --coordinator farm.lan:7070 --s3-endpoint http://farm.lan:9000

Exit codes: 0 ok, 1 failed (or the sweep failed), 2 bad input, 3 coordinator unreachable, 4 API token refused.`,
    );

  const globals = (cmd: Command): GlobalOpts => cmd.optsWithGlobals<GlobalOpts>();
  const client = (cmd: Command) => {
    const g = globals(cmd);
    return new Client(g.url, g.token || undefined);
  };

  // ---------------------------------------------------------------- up
  program
    .command('up')
    .description("run the README's local farm (nats-server, S3, coordinator, two gpu-nodes, indexer) and submit a sweep; Ctrl-C stops it")
    .argument('[spec]', 'sweep file to submit (default: examples/sweep.yaml of this checkout)')
    .action(async (spec: string | undefined) => {
      const file = spec ? resolve(spec) : resolve(ROOT, 'examples/sweep.yaml');
      const code = await runChild('bash', [resolve(ROOT, 'scripts/up.sh'), file], { cwd: ROOT, env: io.env });
      if (code !== 0) throw new CliError(`the farm stopped with exit code ${code} (logs in ${io.env.NIGHTSHIFT_DATA_DIR ?? resolve(ROOT, '.nightshift')}/logs)`, code);
    });

  // ---------------------------------------------------------------- submit
  program
    .command('submit')
    .description('submit a sweep spec (YAML or JSON file); checks it locally first')
    .argument('<file>', 'sweep spec, e.g. examples/sweep.yaml')
    .option('-w, --watch', 'follow the sweep until it finishes (exit code 1 if it fails)')
    .option('--dry-run', 'only check the file and show the job count and sample prompts')
    .option('--priority <n>', 'override the spec priority (-100..100)', int('priority', -100, 100))
    .action(async (file: string, opts: { watch?: boolean; dryRun?: boolean; priority?: number }, cmd: Command) => {
      const g = globals(cmd);
      const { input, spec, jobs } = readSpecFile(file);
      const body = opts.priority === undefined ? input : { ...(input as object), priority: opts.priority };
      if (opts.dryRun) {
        const sample = jobs <= 200_000 ? expandSweep({ ...spec, seeds: [Array.isArray(spec.seeds) ? spec.seeds[0]! : spec.seeds.start] }, Number.MAX_SAFE_INTEGER) : [];
        const prompts = [...new Set(sample.map((j) => j.prompt))];
        if (g.json) return printJson({ ok: true, jobs, prompts: prompts.slice(0, 20) });
        print(`${file}: ok — ${jobs} job(s): ${spec.prompts.length} prompt(s) × ${Object.keys(spec.axes).length} ax(es) × ${Array.isArray(spec.seeds) ? spec.seeds.length : spec.seeds.count} seed(s)`);
        for (const p of prompts.slice(0, 10)) print(`  ${p}`);
        if (prompts.length > 10) print(`  … ${prompts.length - 10} more`);
        return;
      }
      const c = client(cmd);
      let res: { id: string; jobs: number };
      try {
        res = await c.post<{ id: string; jobs: number }>('/api/sweeps', body);
      } catch (err) {
        if (err instanceof ApiError && err.details.length) throw new CliError(formatProblems(file, `the coordinator refused it: ${err.message.split(':')[0]}`, err.details), EXIT.usage);
        throw err;
      }
      if (!opts.watch) {
        if (g.json) return printJson(res);
        print(`submitted ${file} as sweep ${res.id} (${res.jobs} jobs)`);
        print(`  follow it: nightshift watch ${res.id}   ·   dashboard: ${c.base}/ui/sweeps/${res.id}`);
        return;
      }
      if (!g.json) print(`submitted ${file} as sweep ${res.id} (${res.jobs} jobs) — watching; Ctrl-C stops watching, not the sweep`);
      const final = await watchSweep(c, res.id, { out: io.out, quiet: Boolean(g.json) });
      finishWatch(final, g, res);
    });

  function finishWatch(final: SweepView, g: GlobalOpts, extra: object = {}) {
    if (g.json) printJson({ ...extra, ...final });
    else {
      print(sweepLine(final));
      for (const f of final.failedJobs ?? []) print(`  failed: ${f.prompt} (seed ${f.seed}): ${f.error ?? 'no error recorded'}`);
    }
    if (final.status !== 'done') throw new CliError(`sweep ${final.id} ended ${final.status}`, EXIT.failed);
  }

  // ---------------------------------------------------------------- status / watch
  program
    .command('status')
    .description('list sweeps with progress, or show one sweep in detail')
    .argument('[sweep]', 'sweep id')
    .action(async (id: string | undefined, _opts: unknown, cmd: Command) => {
      const g = globals(cmd);
      const c = client(cmd);
      if (id) {
        const s = await getSweep(c, id);
        if (g.json) return printJson(s);
        print(`${s.name} (${s.id}) — ${s.kind ?? 'render'}, backend ${s.backend}, priority ${s.priority}`);
        print(`  status    ${s.status}`);
        print(`  progress  ${finished(s)}/${s.total} (${s.total ? Math.floor((100 * finished(s)) / s.total) : 100}%): ${countsText(s)}`);
        if (!FINAL.has(s.status)) print(`  rate      ${s.rate ? `${s.rate.toFixed(2)} img/s` : '—'}   ETA ${duration(s.etaSeconds)}`);
        print(`  created   ${s.createdAt} (${ago(s.createdAt)})${s.finishedAt ? `, finished ${s.finishedAt}` : ''}`);
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
      const g = globals(cmd);
      finishWatch(await watchSweep(client(cmd), id, { out: io.out, quiet: Boolean(g.json) }), g);
    });

  // ---------------------------------------------------------------- search / favorites / upscale
  program
    .command('search')
    .description('search rendered images by text (CLIP), or find images like one image')
    .argument('[text...]', 'what to look for, e.g. "red circle"')
    .option('-k, --k <n>', 'number of results', int('k', 1, 500), 10)
    .option('--sweep <id>', 'only images of this sweep')
    .option('--favorites', 'only favorites')
    .option('--like <key>', 'images similar to this image (key or render key)')
    .action(async (words: string[], opts: { k: number; sweep?: string; favorites?: boolean; like?: string }, cmd: Command) => {
      const g = globals(cmd);
      const q = words.join(' ').trim();
      if (!q && !opts.like) throw new CliError('give some text to search for, or --like KEY', EXIT.usage);
      const c = client(cmd);
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
      const g = globals(cmd);
      const rk = key.replace(/^images\//, '').replace(/\.png$/, '');
      const res = await client(cmd).request<{ key: string; favorite: boolean }>(opts.remove ? 'DELETE' : 'PUT', `/api/favorites/${encodeURIComponent(rk)}`);
      if (g.json) return printJson(res);
      print(`${res.key} ${res.favorite ? 'is now a favorite ★' : 'is no longer a favorite'}`);
    });

  program
    .command('upscale')
    .description('queue ×4 upscales: of given images, of the favorites of a sweep, or of a whole sweep')
    .argument('[keys...]', 'image keys (images/KEY.png) or render keys')
    .option('--favorites <sweep>', 'the favorites of this sweep')
    .option('--sweep <sweep>', 'every image of this sweep')
    .option('--priority <n>', 'priority of the upscale batch', int('priority', -100, 100))
    .action(async (keys: string[], opts: { favorites?: string; sweep?: string; priority?: number }, cmd: Command) => {
      const g = globals(cmd);
      const chosen = [keys.length > 0, Boolean(opts.favorites), Boolean(opts.sweep)].filter(Boolean).length;
      if (chosen !== 1) throw new CliError('give image keys, or --favorites SWEEP, or --sweep SWEEP (exactly one)', EXIT.usage);
      const body = keys.length ? { keys } : opts.favorites ? { sweep: opts.favorites, favorites: true } : { sweep: opts.sweep };
      const res = await client(cmd).post<{ id: string; jobs: number }>('/api/upscale', { ...body, ...(opts.priority === undefined ? {} : { priority: opts.priority }) });
      if (g.json) return printJson(res);
      print(`upscale batch ${res.id}: ${res.jobs} image(s) queued — nightshift watch ${res.id}`);
    });

  // ---------------------------------------------------------------- nodes
  program
    .command('nodes')
    .description('list gpu-nodes: status, GPU, VRAM, backends, current jobs, throughput')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd);
      const { nodes } = await client(cmd).get<{ nodes: NodeView[] }>('/api/nodes');
      if (g.json) return printJson({ nodes });
      if (!nodes.length) return print('no gpu-node has registered yet — start one with `nightshift node start`');
      print(
        table(
          ['NODE', 'STATUS', 'GPU', 'VRAM', 'SLOTS', 'BACKENDS', 'JOBS', 'DONE', 'HEARTBEAT'],
          nodes.map((n) => [
            n.name,
            n.status,
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

  // ---------------------------------------------------------------- cancel / pause / resume / priority
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
        const g = globals(cmd);
        const c = client(cmd);
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
      const g = globals(cmd);
      const s = await client(cmd).post<SweepView>(`/api/sweeps/${encodeURIComponent(id)}/priority`, { priority });
      if (g.json) return printJson(s);
      print(`sweep ${id} now has priority ${s.priority}`);
    });

  // ---------------------------------------------------------------- node start
  const node = program.command('node').description('run farm processes on this machine');
  node
    .command('start')
    .description('run a gpu-node here that renders for a (possibly remote) coordinator; Ctrl-C stops it')
    .addOption(new Option('--coordinator <host:port>', 'coordinator gRPC address (default: --url host, port 7070)').env('NIGHTSHIFT_COORDINATOR'))
    .addOption(new Option('--s3-endpoint <url>', 'S3 endpoint the node uploads to').env('NIGHTSHIFT_S3_ENDPOINT'))
    .addOption(new Option('--s3-access-key <key>', 'S3 access key').env('NIGHTSHIFT_S3_ACCESS_KEY'))
    .addOption(new Option('--s3-secret-key <key>', 'S3 secret key').env('NIGHTSHIFT_S3_SECRET_KEY'))
    .addOption(new Option('--bucket <name>', 'S3 bucket').env('NIGHTSHIFT_S3_BUCKET'))
    .addOption(new Option('--node-token <token>', "the coordinator's node token").env('NIGHTSHIFT_NODE_TOKEN'))
    .addOption(new Option('--id <id>', 'node id (default: hostname-pid)').env('NIGHTSHIFT_NODE_ID'))
    .addOption(new Option('--name <name>', 'display name').env('NIGHTSHIFT_NODE_NAME'))
    .addOption(new Option('--slots <n>', 'jobs rendered at once').env('NIGHTSHIFT_NODE_SLOTS').argParser(int('slots', 1, 64)))
    .addOption(new Option('--vram-mb <mb>', 'VRAM to advertise').env('NIGHTSHIFT_NODE_VRAM_MB').argParser(int('vram-mb', 0, 10_000_000)))
    .addOption(new Option('--gpu <name>', 'GPU name to advertise').env('NIGHTSHIFT_NODE_GPU'))
    .addOption(new Option('--data-dir <dir>', 'working folder').env('NIGHTSHIFT_DATA_DIR'))
    .addOption(new Option('--config <file>', 'node config file (JSON/YAML with NIGHTSHIFT_* keys, e.g. backends)').env('NIGHTSHIFT_CONFIG'))
    .action(async (opts: Record<string, string | number | undefined>, cmd: Command) => {
      const g = globals(cmd);
      const coordinator = (opts.coordinator as string | undefined) ?? `${new URL(g.url).hostname}:7070`;
      const map: Record<string, string> = {
        s3Endpoint: 'NIGHTSHIFT_S3_ENDPOINT',
        s3AccessKey: 'NIGHTSHIFT_S3_ACCESS_KEY',
        s3SecretKey: 'NIGHTSHIFT_S3_SECRET_KEY',
        bucket: 'NIGHTSHIFT_S3_BUCKET',
        nodeToken: 'NIGHTSHIFT_NODE_TOKEN',
        id: 'NIGHTSHIFT_NODE_ID',
        name: 'NIGHTSHIFT_NODE_NAME',
        slots: 'NIGHTSHIFT_NODE_SLOTS',
        vramMb: 'NIGHTSHIFT_NODE_VRAM_MB',
        gpu: 'NIGHTSHIFT_NODE_GPU',
        dataDir: 'NIGHTSHIFT_DATA_DIR',
        config: 'NIGHTSHIFT_CONFIG',
      };
      const env: NodeJS.ProcessEnv = { ...io.env, NIGHTSHIFT_COORDINATOR: coordinator };
      for (const [k, name] of Object.entries(map)) {
        const v = opts[k];
        if (v !== undefined) env[name] = k === 'dataDir' || k === 'config' ? resolve(String(v)) : String(v);
      }
      io.err.write(`starting a gpu-node for coordinator ${coordinator}, uploading to ${env.NIGHTSHIFT_S3_ENDPOINT ?? 'http://127.0.0.1:9000'} (Ctrl-C stops it)\n`);
      const tsx = import.meta.resolve('tsx');
      const code = await runChild(process.execPath, ['--import', tsx, resolve(ROOT, 'services/gpu-node/src/main.ts')], { env });
      if (code !== 0) throw new CliError(`the gpu-node stopped with exit code ${code}`, code);
    });

  return program;
}

/** Runs a child with our stdio; Ctrl-C reaches it through the terminal and we wait for it to finish. */
function runChild(cmd: string, args: string[], opts: { cwd?: string; env: NodeJS.ProcessEnv }): Promise<number> {
  return new Promise((resolveCode, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: 'inherit' });
    const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
    const onInt = forward('SIGINT');
    const onTerm = forward('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolveCode(code ?? (signal === 'SIGINT' || signal === 'SIGTERM' ? 0 : 1));
    });
  });
}

/** Runs the CLI; returns the exit code instead of exiting, so tests can call it. */
export async function main(argv: string[], io: Io = { out: process.stdout, err: process.stderr, env: process.env }): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; usage errors were already printed by commander.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (err instanceof CliError) {
      io.err.write(`nightshift: ${err.message}\n`);
      return err.exitCode;
    }
    io.err.write(`nightshift: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return EXIT.failed;
  }
}
