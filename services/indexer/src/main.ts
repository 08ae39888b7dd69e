/** Indexer entry point. */
import { createLogger, loadConfig } from '@nightshift/common';
import { startIndexer } from './app.js';

const log = createLogger('indexer');
const running = await startIndexer(loadConfig(), log);
let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    void running.stop().then(() => process.exit(0));
  });
}
