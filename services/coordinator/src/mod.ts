export { startCoordinator, type RunningCoordinator } from './app.js';
export type { CoordinatorDeps, GrpcDeps, HttpDeps, SweepDeps } from './deps.js';
// The state layer, for the seeded-database fixture in @nightshift/devfarm (dashboard tests and benchmarks).
export { openDb, type DB } from './db.js';
export { Store } from './store.js';
export { EngineStore, SqliteEngine } from './store-engine/sqlite.js';
export { Scheduler, type NodeCaps } from './scheduler.js';
export { Live } from './live.js';
export { submitSweep } from './sweeps.js';
// The HTTP router, for tests that walk its route list (test/e2e/users-keys.test.ts).
export { createHttpApp } from './http.js';
export type { DashboardDeps } from './dashboard/index.js';
