/** `nightshift node start`: a gpu-node on this machine for a (possibly remote) coordinator. */
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { int } from '../args.js';
import { CliError } from '../client.js';
import type { CommandContext } from '../context.js';
import { ROOT, runChild } from '../farm-process.js';
import { registerNodePause } from './node-pause.js';

/** Each option's setting in the gpu-node's environment. */
const ENV_OF: Record<string, string> = {
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

export function registerNodeStart(program: Command, ctx: CommandContext): void {
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
      const g = ctx.globals(cmd);
      const coordinator = (opts.coordinator as string | undefined) ?? `${new URL(g.url).hostname}:7070`;
      const env: NodeJS.ProcessEnv = { ...ctx.io.env, NIGHTSHIFT_COORDINATOR: coordinator };
      for (const [k, name] of Object.entries(ENV_OF)) {
        const v = opts[k];
        if (v !== undefined) env[name] = k === 'dataDir' || k === 'config' ? resolve(String(v)) : String(v);
      }
      ctx.io.err.write(`starting a gpu-node for coordinator ${coordinator}, uploading to ${env.NIGHTSHIFT_S3_ENDPOINT ?? 'http://127.0.0.1:9000'} (Ctrl-C stops it)\n`);
      const tsx = import.meta.resolve('tsx');
      const code = await runChild(process.execPath, ['--import', tsx, resolve(ROOT, 'services/gpu-node/src/main.ts')], { env });
      if (code !== 0) throw new CliError(`the gpu-node stopped with exit code ${code}`, code);
    });
  registerNodePause(node, ctx);
}
