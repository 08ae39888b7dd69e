import { join } from 'node:path';
import { tempDir } from '@nightshift/devfarm';
import { storeEngineConformance } from './conformance.js';
import { SqliteEngine } from './sqlite.js';

storeEngineConformance('sqlite', {
  async fresh(clock) {
    const tmp = tempDir('nightshift-engine-');
    const engine = SqliteEngine.open(join(tmp.dir, 'coordinator.sqlite'), { now: () => clock.t, maxAttempts: 3, blocklistAfter: 3 });
    const others: SqliteEngine[] = [];
    return {
      engine,
      // One process owns a SQLite file: another "connection" is another engine over the same Store.
      async another() {
        const other = new SqliteEngine(engine.store);
        others.push(other);
        return other;
      },
      async kill(e) {
        await e.close();
      },
      async close() {
        for (const o of others) await o.close();
        await engine.close();
        tmp.cleanup();
      },
    };
  },
});
