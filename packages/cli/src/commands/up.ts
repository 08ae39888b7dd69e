/** `nightshift up`: the README's local farm and a sweep, through scripts/up.sh. */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { CliError } from '../client.js';
import type { CommandContext } from '../context.js';
import { ROOT, runChild } from '../farm-process.js';

export function registerUp(program: Command, { io }: CommandContext): void {
  program
    .command('up')
    .description("run the README's local farm (nats-server, S3, coordinator, three gpu-nodes — one of them onnx —, indexer) and submit a sweep; Ctrl-C stops it")
    .argument('[spec]', 'sweep file to submit (default: examples/sweep.yaml and examples/onnx-sweep.yaml of this checkout)')
    .action(async (spec: string | undefined) => {
      // Without a spec, scripts/up.ts submits the example sweeps itself.
      const code = await runChild('bash', [resolve(ROOT, 'scripts/up.sh'), ...(spec ? [resolve(spec)] : [])], { cwd: ROOT, env: io.env });
      if (code !== 0) throw new CliError(`the farm stopped with exit code ${code} (logs in ${io.env.NIGHTSHIFT_DATA_DIR ?? resolve(ROOT, '.nightshift')}/logs)`, code);
    });
}
