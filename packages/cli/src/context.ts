/** What every command is given: where to print, the global options, a client for the coordinator. */
import type { Command } from 'commander';
import { Client } from './client.js';

export interface Io {
  out: NodeJS.WritableStream & { isTTY?: boolean };
  err: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

export interface GlobalOpts {
  url: string;
  token?: string;
  json?: boolean;
}

export interface CommandContext {
  io: Io;
  print(text: string): void;
  printJson(value: unknown): void;
  /** --url, --token and --json as seen from a subcommand. */
  globals(cmd: Command): GlobalOpts;
  /** A client for the coordinator the global options name. */
  client(cmd: Command): Client;
}

export function commandContext(io: Io): CommandContext {
  const globals = (cmd: Command): GlobalOpts => cmd.optsWithGlobals<GlobalOpts>();
  return {
    io,
    print: (text) => void io.out.write(`${text}\n`),
    printJson: (value) => void io.out.write(`${JSON.stringify(value, null, 2)}\n`),
    globals,
    client: (cmd) => {
      const g = globals(cmd);
      // --token (or $NIGHTSHIFT_API_TOKEN) first, then a named key from $NIGHTSHIFT_API_KEY.
      return new Client(g.url, g.token || io.env.NIGHTSHIFT_API_KEY || undefined);
    },
  };
}
