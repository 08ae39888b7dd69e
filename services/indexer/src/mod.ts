export { startIndexer, type RunningIndexer } from './app.js';
