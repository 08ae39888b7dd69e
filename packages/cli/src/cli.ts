/**
 * `nightshift`: the command line for a Nightshift farm. Commands talk to the
 * coordinator's HTTP API (--url, default $NIGHTSHIFT_URL or
 * http://127.0.0.1:8080) with --token / $NIGHTSHIFT_API_TOKEN (or a named key as
 * $NIGHTSHIFT_API_KEY); `up` and
 * `node start` run the farm's own processes. Each command group registers
 * itself from commands/; this file assembles them and maps errors to exit codes.
 */
import { Command, CommanderError, Option } from 'commander';
import { CliError, EXIT } from './client.js';
import { commandContext, type Io } from './context.js';
import { registerAlbum } from './commands/album.js';
import { registerBest } from './commands/best.js';
import { registerControl } from './commands/control.js';
import { registerImages } from './commands/images.js';
import { registerKeys } from './commands/keys.js';
import { registerModels } from './commands/models.js';
import { registerNodeStart } from './commands/node-start.js';
import { registerNodes } from './commands/nodes.js';
import { registerRemix } from './commands/remix.js';
import { registerStatus } from './commands/status.js';
import { registerSubmit } from './commands/submit.js';
import { registerUp } from './commands/up.js';
import { registerUpscale } from './commands/upscale.js';
import { registerWildcards } from './commands/wildcards.js';

export type { Io } from './context.js';

const DEFAULT_URL = 'http://127.0.0.1:8080';

export function buildProgram(io: Io): Command {
  const program = new Command('nightshift')
    .description('Submit, watch and search Nightshift render sweeps; run a local farm or a gpu-node.')
    .addOption(new Option('--url <url>', 'coordinator HTTP address').env('NIGHTSHIFT_URL').default(DEFAULT_URL))
    .addOption(new Option('--token <token>', "API token or named key (`nightshift keys add`); also $NIGHTSHIFT_API_KEY").env('NIGHTSHIFT_API_TOKEN'))
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

  // The order here is the order `--help` lists the commands in.
  const ctx = commandContext(io);
  for (const register of [registerUp, registerSubmit, registerRemix, registerStatus, registerImages, registerBest, registerAlbum, registerUpscale, registerWildcards, registerModels, registerNodes, registerControl, registerKeys, registerNodeStart]) {
    register(program, ctx);
  }
  return program;
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
