/** The benches' PostgreSQL: a throwaway cluster for `run`, or why there is none (Debian's postgresql missing). */
import { join } from 'node:path';
import { postgresMissing, startPostgres, type PostgresServer } from '@nightshift/devfarm';

export async function withPostgres<T>(dir: string, run: (server: PostgresServer) => Promise<T>): Promise<T | { skipped: string }> {
  const missing = postgresMissing();
  if (missing) return { skipped: missing };
  const server = await startPostgres({ logFile: join(dir, 'postgres.log') });
  try {
    return await run(server);
  } finally {
    await server.close();
  }
}
