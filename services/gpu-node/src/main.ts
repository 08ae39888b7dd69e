/** gpu-node entry point. */
import { createLogger, loadConfig, stopOnSignals } from '@nightshift/common';
import { startNode } from './node.js';

const log = createLogger('gpu-node');
const node = await startNode(loadConfig(), log);
stopOnSignals(() => node.stop(), log);
