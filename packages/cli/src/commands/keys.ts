/**
 * `nightshift keys` (admin) and `nightshift whoami`: the people who share a
 * farm and their API keys (the coordinator's /api/keys and /api/me). A key
 * is shown once, when it is made; the coordinator keeps only its hash. Use
 * it as --token, $NIGHTSHIFT_API_TOKEN or $NIGHTSHIFT_API_KEY.
 */
import type { Command } from 'commander';
import { CliError, EXIT } from '../client.js';
import type { CommandContext } from '../context.js';
import { table } from '../format.js';

const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

interface KeyView {
  name: string;
  admin: boolean;
  weight: number;
  quotaImages: number | null;
  active: boolean;
  running: number;
}

interface Me {
  user: string;
  admin: boolean;
  quota: { imagesPerDay: number; usedToday: number; leftToday: number; resetsAt: string } | null;
}

function checkName(name: string): string {
  if (!NAME.test(name)) throw new CliError(`key names are 1-64 of a-z, 0-9, ".", "_", "-" (starting with a letter or digit): got ${JSON.stringify(name)}`, EXIT.usage);
  return name;
}

/** `--quota-images 500` or `500/day`. */
export function parseQuota(text: string): number {
  const m = /^(\d{1,9})(?:\/day)?$/.exec(text.trim());
  if (!m) throw new CliError(`--quota-images takes images a day, e.g. 500 or 500/day: got ${JSON.stringify(text)}`, EXIT.usage);
  return Number(m[1]);
}

export function parseWeight(text: string): number {
  const w = Number(text);
  if (!Number.isFinite(w) || w < 0.01 || w > 1000) throw new CliError(`--weight is a number from 0.01 to 1000 (a share of the farm relative to others): got ${JSON.stringify(text)}`, EXIT.usage);
  return w;
}

export function registerKeys(program: Command, ctx: CommandContext): void {
  const { print, printJson } = ctx;
  const keys = program.command('keys').description("the farm's users and their API keys (admin): fair-share weight, daily image quota");

  keys
    .command('add')
    .description('a new key for NAME (its user); printed once, only its hash is kept')
    .argument('<name>', 'the user the key belongs to')
    .option('--admin', 'the key may manage keys and see and act on every user\'s sweeps')
    .option('--quota-images <n>', 'images NAME may submit per UTC day, e.g. 500/day', parseQuota)
    .option('--weight <w>', "NAME's share of the farm relative to other users' (default 1)", parseWeight)
    .action(async (name: string, opts: { admin?: boolean; quotaImages?: number; weight?: number }, cmd: Command) => {
      const body = { name: checkName(name), admin: Boolean(opts.admin), quotaImages: opts.quotaImages ?? null, ...(opts.weight !== undefined ? { weight: opts.weight } : {}) };
      const res = await ctx.client(cmd).post<KeyView & { key: string }>('/api/keys', body);
      if (ctx.globals(cmd).json) return printJson(res);
      ctx.io.err.write(`key for ${res.name}${res.admin ? ' (admin)' : ''}; give it as --token or NIGHTSHIFT_API_KEY. It is not stored anywhere and is shown only now:\n`);
      print(res.key);
    });

  keys
    .command('list')
    .description('every user: admin, weight, quota, whether a key is active, jobs running now')
    .action(async (_opts: unknown, cmd: Command) => {
      const res = await ctx.client(cmd).get<{ keys: KeyView[] }>('/api/keys');
      if (ctx.globals(cmd).json) return printJson(res);
      print(
        table(
          ['NAME', 'ADMIN', 'WEIGHT', 'QUOTA/DAY', 'KEY', 'RUNNING'],
          res.keys.map((k) => [k.name, k.admin ? 'yes' : '', String(k.weight), k.quotaImages === null ? '-' : String(k.quotaImages), k.active ? 'active' : 'revoked', String(k.running)]),
        ),
      );
    });

  keys
    .command('revoke')
    .description("revoke NAME's key: refused from the next request on (their sweeps stay)")
    .argument('<name>', 'user')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      await ctx.client(cmd).request('DELETE', `/api/keys/${checkName(name)}`);
      if (ctx.globals(cmd).json) return printJson({ ok: true, name });
      print(`revoked ${name}'s key`);
    });

  program
    .command('whoami')
    .description('the user this token or key is, and their quota')
    .action(async (_opts: unknown, cmd: Command) => {
      const me = await ctx.client(cmd).get<Me>('/api/me');
      if (ctx.globals(cmd).json) return printJson(me);
      const q = me.quota ? `; ${me.quota.leftToday} of ${me.quota.imagesPerDay} images left today (resets ${me.quota.resetsAt})` : '; no quota';
      print(`${me.user}${me.admin ? ' (admin)' : ''}${q}`);
    });
}
