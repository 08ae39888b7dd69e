export { startIndexer, type RunningIndexer } from './app.js';
export { openIndex } from './app.js';
export { loadIndexerOptions, type IndexerOptions } from './options.js';
export { IndexStore } from './store.js';
export { VectorIndex, usearchUnavailable } from './vector-index.js';
export { IndexConsumer, CONSUMER, UPSCALED_CONSUMER, type ConsumerOptions } from './consumer.js';
export { Reindexer } from './reindex.js';
