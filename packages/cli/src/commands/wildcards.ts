/** `nightshift wildcards`: the lists `__name__` in a prompt picks a line from (stored in the farm's bucket). */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ApiError, CliError, EXIT } from '../client.js';
import type { CommandContext } from '../context.js';
import { table } from '../format.js';

const NAME = /^[a-z0-9_-]{1,64}$/;
const path = (name: string) => {
  if (!NAME.test(name)) throw new CliError(`list names are 1-64 of a-z, 0-9, "_", "-": got ${JSON.stringify(name)}`, EXIT.usage);
  return `/api/wildcards/${name}`;
};

export function registerWildcards(program: Command, ctx: CommandContext): void {
  const { print, printJson } = ctx;
  const wildcards = program.command('wildcards').description('wildcard lists for prompts: __name__ picks one line, {2$$__name__} two distinct ones');

  wildcards
    .command('list')
    .description('every list with its number of lines')
    .action(async (_opts: unknown, cmd: Command) => {
      const res = await ctx.client(cmd).get<{ wildcards: { name: string; lines: number }[] }>('/api/wildcards');
      if (ctx.globals(cmd).json) return printJson(res);
      if (!res.wildcards.length) return print('no wildcard lists yet — add one with `nightshift wildcards put NAME FILE`');
      print(table(['NAME', 'LINES', 'USE AS'], res.wildcards.map((w) => [w.name, String(w.lines), `__${w.name}__`])));
    });

  wildcards
    .command('show')
    .description("a list's lines (blank lines and # comments left out)")
    .argument('<name>', 'list name')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const res = await ctx.client(cmd).get<{ name: string; lines: string[]; text: string }>(path(name));
      if (ctx.globals(cmd).json) return printJson(res);
      for (const line of res.lines) print(line);
    });

  wildcards
    .command('put')
    .description('create or replace a list from a text file, one option a line (≤ 1 MiB, ≤ 10,000 lines)')
    .argument('<name>', 'list name')
    .argument('<file>', 'text file')
    .action(async (name: string, file: string, _opts: unknown, cmd: Command) => {
      const target = path(name);
      let bytes: Buffer;
      try {
        bytes = readFileSync(file);
      } catch (err) {
        throw new CliError(`cannot read ${file}: ${(err as Error).message}`, EXIT.usage);
      }
      let res: { name: string; lines: number };
      try {
        res = await ctx.client(cmd).sendBytes<{ name: string; lines: number }>('PUT', target, bytes, 'text/plain; charset=utf-8');
      } catch (err) {
        if (err instanceof ApiError && err.details.length) {
          throw new CliError([`${file}: ${err.message}`, ...err.details.map((d) => `  ${file}${d.path ? ` ${d.path}` : ''}: ${d.message}`)].join('\n'), EXIT.usage);
        }
        throw err;
      }
      if (ctx.globals(cmd).json) return printJson(res);
      print(`stored __${res.name}__: ${res.lines} line(s)`);
    });

  wildcards
    .command('rm')
    .description('delete a list')
    .argument('<name>', 'list name')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      await ctx.client(cmd).request('DELETE', path(name));
      if (ctx.globals(cmd).json) return printJson({ ok: true, name });
      print(`deleted __${name}__`);
    });
}
