/**
 * Indexer entry point.
 *   main.ts             run the service (consumers + HTTP API)
 *   main.ts reindex     rebuild the index from the S3 bucket alone, then exit
 *                       (--keep: do not prune rows whose image is gone)
 */
import { createLogger, loadConfig, stopOnSignals } from '@nightshift/common';
import { openIndex, startIndexer } from './app.js';
import { loadIndexerOptions } from './options.js';

const log = createLogger('indexer');
const command = process.argv[2];

if (command === 'reindex') {
  const { store, reindexer, model, unlock } = await openIndex(loadConfig(), loadIndexerOptions(), log);
  const started = performance.now();
  reindexer.start('bucket', { prune: !process.argv.includes('--keep') });
  const status = await reindexer.wait();
  store.close();
  await model.embedder.dispose();
  unlock();
  log.info({ ...status, indexed: store.index.size, seconds: Math.round((performance.now() - started) / 100) / 10 }, 'reindex done');
  process.exit(status.error ? 1 : 0);
} else if (command !== undefined) {
  console.error(`unknown command ${command}; usage: main.ts [reindex [--keep]]`);
  process.exit(2);
}

const running = await startIndexer(loadConfig(), log);
stopOnSignals(() => running.stop(), log);
