/**
 * One throwaway PostgreSQL per test file: started before the file's first
 * test and closed after its last, as nats.js's tests share one server
 * helper. Where Debian's postgresql is missing nothing starts, and `skip`
 * says why, for the tests' own skip option.
 */
import { after, before } from 'node:test';
import { postgresMissing, startPostgres, type PostgresServer } from './postgres.js';

export interface PostgresForFile {
  /** Why the file's PostgreSQL tests are skipped, if they are. */
  skip: string | undefined;
  /** The file's server (only inside its tests: it starts in the file's `before`). */
  server(): PostgresServer;
}

export function postgresForFile(): PostgresForFile {
  const skip = postgresMissing();
  let running: PostgresServer | undefined;
  if (!skip) {
    before(async () => {
      running = await startPostgres();
    });
    after(async () => {
      await running?.close();
    });
  }
  return {
    skip,
    server() {
      if (!running) throw new Error(skip ?? 'the file\'s PostgreSQL is not started yet (asked outside a test)');
      return running;
    },
  };
}
