/**
 * A coordinator database with rendered images in it, without a farm: sweeps
 * go in through the real submitSweep (validation, expansion, Store) and their
 * jobs are then marked done (and announced) the way a completed render leaves
 * them. Used by the dashboard's unit tests and by bench/dashboard-gallery.ts.
 * The handlers read through `engine` (a SqliteEngine over `store`); tests
 * set up and inspect rows through the synchronous `store` and `db`.
 */
import { join } from 'node:path';
import { loadConfig, createLogger, type Config, type Logger } from '@nightshift/common';
import { EngineStore, openDb, SqliteEngine, submitSweep, type DashboardDeps, type DB, type SweepDeps } from '@nightshift/coordinator';

export interface SeededCoordinator {
  db: DB;
  store: EngineStore;
  engine: SqliteEngine;
  /** What the dashboard and the sweep operations use (no node hub: nothing is dispatched). */
  deps: { config: Config; log: Logger; engine: SqliteEngine; storage: DashboardDeps['storage']; hub: SweepDeps['hub'] };
  /** Submits a sweep and marks every job rendered by `node`, one second apart. */
  addRenderedSweep(spec: unknown, node?: string): Promise<string>;
  close(): void;
}

export function seededCoordinator(dir: string, config: Partial<Config> = {}, storage: DashboardDeps['storage'] = { get: async () => Buffer.alloc(0) }): SeededCoordinator {
  const db = openDb(join(dir, 'coordinator.sqlite'));
  const store = new EngineStore(db);
  const engine = new SqliteEngine(store);
  const log = createLogger('dashboard-test', 'silent');
  // The data folder (share links' secret) is the database's.
  const cfg: Config = { ...loadConfig({}), NIGHTSHIFT_INDEXER_URL: 'http://127.0.0.1:9', NIGHTSHIFT_DATA_DIR: dir, ...config };
  const deps: SeededCoordinator['deps'] = { config: cfg, log, engine, storage, hub: { dispatch: async () => {}, cancelJobs() {} } };
  let clock = Date.parse('2026-01-01T00:00:00Z');
  return {
    db,
    store,
    engine,
    deps,
    async addRenderedSweep(spec, node = 'node-0') {
      const { id } = await submitSweep(deps, spec);
      const done = db.prepare(
        `UPDATE jobs SET state = 'done', announced = 1, node_id = ?, image_key = 'images/' || render_key || '.png', thumb_key = 'thumbs/' || render_key || '.webp',
         render_ms = 20 + idx % 50, started_at = ? + idx * 1000 - 20, finished_at = ? + idx * 1000 WHERE sweep_id = ?`,
      );
      db.transaction(() => {
        done.run(node, clock, clock, id);
        db.prepare(`UPDATE sweeps SET status = 'done', finished_at = ? WHERE id = ?`).run(clock + 1_000_000, id);
      })();
      clock += 10_000_000;
      return id;
    },
    close: () => db.close(),
  };
}
