/**
 * Debian's PostgreSQL as a throwaway test server: a fresh cluster (initdb) in
 * a temp folder of its own, listening on a free loopback port and on a unix
 * socket in that folder, with fsync off (a test's data need not survive a
 * power cut, only a killed server). `close()` stops it and removes the folder.
 *
 * PostgreSQL refuses to run as root, and tests run as root: then initdb and
 * the server run as the `postgres` system user (`nobody` without one) through
 * setpriv, which execs rather than forks, so signals (and a kill -9) reach the
 * postmaster itself. The folder is the server's own, made and chowned here,
 * because a caller's mkdtemp folder (0700, root's) is closed to that user.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort, waitFor } from './ports.js';
import { startProcess, type ManagedProcess } from './process.js';

const run = promisify(execFile);

/**
 * The folder holding initdb and postgres: $NIGHTSHIFT_PG_BIN, else the newest
 * /usr/lib/postgresql/N/bin (Debian's layout); undefined when not installed.
 */
export function postgresBinDir(): string | undefined {
  const fromEnv = process.env.NIGHTSHIFT_PG_BIN;
  if (fromEnv) return existsSync(join(fromEnv, 'postgres')) ? fromEnv : undefined;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'postgres')) && existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], 'bin') : undefined;
}

/** Why PostgreSQL tests cannot run here (for a test's `skip`), or undefined when they can. */
export function postgresMissing(): string | undefined {
  return postgresBinDir() ? undefined : 'PostgreSQL is not installed (apt-get install postgresql, or set NIGHTSHIFT_PG_BIN to its bin folder)';
}

export interface PostgresServer {
  /** postgres://postgres@127.0.0.1:PORT/postgres (trust auth: loopback and the folder's socket only). */
  url: string;
  port: number;
  /** The folder of the unix socket (`host=` for clients that prefer it). */
  socketDir: string;
  /** A connection URL for another database of this server. */
  urlFor(database: string): string;
  /** Creates an empty database and returns its URL (one per test keeps tests apart). */
  createDatabase(name: string): Promise<string>;
  /** Starts the server again on the same port and data (after `stop` or `kill9`). */
  start(): Promise<void>;
  /** Fast shutdown (SIGINT: open sessions are ended, not waited for); the data stays. */
  stop(): Promise<void>;
  /** The postmaster dies without a shutdown (its backends follow), for fault tests. */
  kill9(): Promise<void>;
  /** Stops the server and removes its folder. */
  close(): Promise<void>;
}

export interface PostgresOptions {
  port?: number;
  logFile?: string;
  /** Extra `-c name=value` settings, e.g. { max_connections: '200' }. */
  settings?: Record<string, string>;
}

/** The command prefix that runs a program as an unprivileged user when this process is root. */
function dropPrivileges(dir: string): string[] {
  if (process.getuid?.() !== 0) return [];
  const user = hasUser('postgres') ? 'postgres' : 'nobody';
  const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
  chownSync(dir, uid, gid);
  return ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--'];
}

function hasUser(name: string): boolean {
  try {
    execFileSync('id', ['-u', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A database name a URL and CREATE DATABASE may carry without quoting surprises. */
function checkDatabaseName(name: string): void {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`database name ${JSON.stringify(name)}: use 1-63 of [a-z0-9_], not starting with a digit`);
}

export async function startPostgres(opts: PostgresOptions = {}): Promise<PostgresServer> {
  const bin = postgresBinDir();
  if (!bin) throw new Error(postgresMissing());
  const dir = mkdtempSync(join(tmpdir(), 'nightshift-pg-'));
  const dataDir = join(dir, 'data');
  let proc: ManagedProcess | undefined;
  try {
    const prefix = dropPrivileges(dir);
    const initdb = [...prefix, join(bin, 'initdb'), '-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-locale', '--no-sync'];
    await run(initdb[0]!, initdb.slice(1), { cwd: dir });
    const port = opts.port ?? (await freePort());
    const settings: Record<string, string> = {
      listen_addresses: '127.0.0.1',
      unix_socket_directories: dir,
      // A commit still reaches the OS before it returns (synchronous_commit stays on), so a
      // committed row survives a kill -9 of the server; only a machine crash could lose it.
      fsync: 'off',
      full_page_writes: 'off',
      max_connections: '100',
      ...opts.settings,
    };
    const args = ['-D', dataDir, '-p', String(port), ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
    const url = (database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`;
    const query = async (sql: string) => {
      const client = new pg.Client({ connectionString: url('postgres') });
      // A probe whose connection a shutdown ends has nothing to report.
      client.on('error', () => {});
      try {
        await client.connect();
        await client.query(sql);
      } finally {
        await client.end().catch(() => {});
      }
    };
    const server: PostgresServer = {
      url: url('postgres'),
      port,
      socketDir: dir,
      urlFor(database) {
        checkDatabaseName(database);
        return url(database);
      },
      async createDatabase(name) {
        checkDatabaseName(name);
        await query(`CREATE DATABASE ${name}`);
        return url(name);
      },
      async start() {
        const p = startProcess('postgres', join(bin, 'postgres'), args, { ...(opts.logFile ? { logFile: opts.logFile } : {}), prefix, cwd: dir });
        proc = p;
        await waitFor(`postgres on ${port}`, async () => {
          if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`postgres exited: ${p.output()}`);
          await query('SELECT 1');
          return true;
        });
      },
      async stop() {
        await proc?.stop('SIGINT', 10_000);
      },
      async kill9() {
        await proc?.kill9();
      },
      async close() {
        try {
          await server.stop();
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
    await server.start();
    return server;
  } catch (err) {
    await proc?.kill9();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
