export { startCoordinator, type RunningCoordinator } from './app.js';
export type { CoordinatorDeps } from './deps.js';
