import { after, before } from 'node:test';
import pg from 'pg';
import { postgresMissing, startPostgres, type PostgresServer } from '@nightshift/devfarm';
import { storeEngineConformance } from './conformance.js';
import { PostgresEngine } from './postgres.js';

let server: PostgresServer | undefined;
let databases = 0;
const skip = postgresMissing();

if (!skip) {
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.close();
  });
}

/** Ends every session of an engine from outside, as when its replica's process dies. */
async function terminateSessions(url: string, applicationName: string): Promise<void> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [applicationName]);
  } finally {
    await admin.end();
  }
}

storeEngineConformance(
  'postgres',
  {
    async fresh(clock) {
      const url = await server!.createDatabase(`conformance_${++databases}`);
      const open = () => PostgresEngine.open({ url, now: () => clock.t, maxAttempts: 3, blocklistAfter: 3, poolSize: 8 });
      const engine = await open();
      const engines: PostgresEngine[] = [engine];
      return {
        engine,
        async another() {
          const other = await open();
          engines.push(other);
          return other;
        },
        async kill(e) {
          const victim = engines.find((x) => x === e);
          if (!victim) throw new Error('not an engine of this fixture');
          await terminateSessions(server!.url, victim.applicationName);
        },
        async close() {
          for (const e of engines) await e.close();
        },
      };
    },
  },
  { skip },
);
