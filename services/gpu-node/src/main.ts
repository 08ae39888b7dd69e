/** gpu-node entry point. */
import { createLogger, loadConfig } from '@nightshift/common';
import { startNode } from './node.js';

const log = createLogger('gpu-node');
const node = await startNode(loadConfig(), log);
let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    void node.stop().then(() => process.exit(0));
  });
}
