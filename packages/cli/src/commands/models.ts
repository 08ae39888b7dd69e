/**
 * `nightshift models add|list|rm`: the farm's model registry
 * (docs/design.md "Model registry"). `list` and `rm` go through the
 * coordinator's /api/models; `add` uploads straight to the farm's bucket
 * (NIGHTSHIFT_S3_* or the --s3-* options: multipart, resumable, instant for
 * content already there), because the coordinator's API takes no bodies
 * larger than 1 MiB and models are gigabytes.
 */
import { resolve } from 'node:path';
import { Presets, SingleBar } from 'cli-progress';
import { Option, type Command } from 'commander';
import { Storage } from '@nightshift/common';
import { addModel, isModelKind, MODEL_KINDS, type TransferProgress } from '@nightshift/registry';
import { ApiError, CliError, EXIT } from '../client.js';
import type { CommandContext } from '../context.js';
import { ago, table } from '../format.js';

/** One model of GET /api/models. */
interface ModelView {
  name: string;
  hash: string;
  kind: string;
  size: number;
  files: unknown[];
  addedAt: string;
  nodes: string[];
}

export function sizeText(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let n = bytes;
  let u = 0;
  while (n >= 1000 && u < units.length - 1) {
    n /= 1000;
    u++;
  }
  return `${u ? n.toFixed(1) : n}${units[u]}`;
}

/** A bar on a terminal (restarted per phase: hashing, then uploading), else a line per phase on stderr (stdout keeps the result). */
function progressView(out: NodeJS.WritableStream & { isTTY?: boolean }, err: NodeJS.WritableStream, quiet: boolean) {
  const tty = Boolean(out.isTTY) && !quiet;
  let bar: SingleBar | undefined;
  let phase = '';
  let started = 0;
  return {
    update(p: TransferProgress) {
      if (p.phase !== phase) {
        bar?.stop();
        phase = p.phase;
        started = Date.now();
        if (tty) {
          bar = new SingleBar({ format: `${phase.padEnd(6)} [{bar}] {percentage}% | {done}/{size} | {rate} MB/s | ETA {eta_formatted}`, hideCursor: true, barsize: 28, stream: out, fps: 5 }, Presets.shades_classic);
          bar.start(p.bytesTotal, 0, { done: '0B', size: sizeText(p.bytesTotal), rate: '—' });
        } else if (!quiet) {
          err.write(`${phase === 'hash' ? 'hashing' : 'uploading'} ${sizeText(p.bytesTotal)}…\n`);
        }
      }
      const secs = (Date.now() - started) / 1000;
      bar?.update(p.bytesDone, { done: sizeText(p.bytesDone), rate: secs > 0.2 ? (p.bytesDone / 1e6 / secs).toFixed(1) : '—' });
    },
    stop() {
      bar?.stop();
    },
  };
}

export function registerModels(program: Command, ctx: CommandContext): void {
  const { print, printJson } = ctx;
  const models = program.command('models').description("the farm's model registry: add a model to the bucket once, nodes pull it on demand");

  models
    .command('add <name> <path>')
    .description('upload a model folder or file to the bucket under models/{sha256}/ and point NAME at it (straight to S3: multipart, resumable, instant when the content is already there)')
    .addOption(new Option('--kind <kind>', 'what the model is').choices([...MODEL_KINDS]).default('diffusion'))
    .addOption(new Option('--s3-endpoint <url>', "the farm's S3 endpoint").env('NIGHTSHIFT_S3_ENDPOINT').default('http://127.0.0.1:9000'))
    .addOption(new Option('--s3-access-key <key>', 'S3 access key').env('NIGHTSHIFT_S3_ACCESS_KEY').default('S3RVER'))
    .addOption(new Option('--s3-secret-key <key>', 'S3 secret key').env('NIGHTSHIFT_S3_SECRET_KEY').default('S3RVER'))
    .addOption(new Option('--bucket <name>', 'S3 bucket').env('NIGHTSHIFT_S3_BUCKET').default('nightshift'))
    .action(async (name: string, path: string, opts: { kind: string; s3Endpoint: string; s3AccessKey: string; s3SecretKey: string; bucket: string }, cmd: Command) => {
      const g = ctx.globals(cmd);
      if (!isModelKind(opts.kind)) throw new CliError(`--kind must be one of ${MODEL_KINDS.join(', ')}`, EXIT.usage);
      let storage: Storage;
      try {
        storage = new Storage({ endpoint: opts.s3Endpoint, accessKey: opts.s3AccessKey, secretKey: opts.s3SecretKey, bucket: opts.bucket });
        await storage.ensureBucket();
      } catch (err) {
        throw new CliError(`cannot reach the bucket ${opts.bucket} at ${opts.s3Endpoint} (${err instanceof Error ? err.message : String(err)}); set --s3-endpoint or NIGHTSHIFT_S3_* to the farm's S3`, EXIT.unreachable);
      }
      const view = progressView(ctx.io.out, ctx.io.err, Boolean(g.json));
      let result;
      try {
        result = await addModel(storage, name, opts.kind, resolve(path), (p) => view.update(p));
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        throw new CliError(`adding ${name} failed: ${message}${/refusing|neither|no such file|ENOENT|holds no files/i.test(message) ? '' : ' (run the same command again: files already uploaded are skipped)'}`, /refusing|ENOENT|neither|holds no files/.test(message) ? EXIT.usage : EXIT.failed);
      } finally {
        view.stop();
      }
      const m = result.manifest;
      if (g.json) return printJson({ name, hash: m.hash, kind: m.kind, size: m.totalSize, files: m.files.length, uploaded: result.uploaded, skipped: result.skipped, existed: result.existed });
      const what = result.existed ? 'already in the registry: nothing uploaded' : `${result.uploaded} file(s) uploaded${result.skipped ? `, ${result.skipped} already there` : ''}`;
      print(`${name} → ${m.hash} (${m.kind}, ${sizeText(m.totalSize)}, ${m.files.length} file(s)): ${what}`);
    });

  models
    .command('list')
    .description('the registered models: name, hash, kind, size, the nodes that hold them')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const { models: list } = await ctx.client(cmd).get<{ models: ModelView[] }>('/api/models');
      if (g.json) return printJson({ models: list });
      if (!list.length) return print('no model is registered yet — add one with `nightshift models add NAME PATH`');
      print(table(['NAME', 'HASH', 'KIND', 'SIZE', 'FILES', 'NODES', 'ADDED'], list.map((m) => [m.name, m.hash.slice(0, 12), m.kind, sizeText(m.size), String(m.files.length), String(m.nodes.length), ago(m.addedAt)])));
    });

  models
    .command('rm <name>')
    .description('remove a model name (and its files when no other name points at them); refused while queued jobs need it')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      let removed: { name: string; hash: string; contentRemoved: boolean };
      try {
        removed = await ctx.client(cmd).request<typeof removed>('DELETE', `/api/models/${encodeURIComponent(name)}`);
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) throw new CliError(`no model ${name} (see \`nightshift models list\`)`, EXIT.usage);
        throw err;
      }
      if (g.json) return printJson(removed);
      print(`removed ${name} (${removed.hash.slice(0, 12)})${removed.contentRemoved ? '' : ': its files stay, another name points at them'}`);
    });
}
