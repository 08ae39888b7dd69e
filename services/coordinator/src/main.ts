/** Coordinator entry point: configuration in, servers up, clean stop on signals. */
import { createLogger, loadConfig, stopOnSignals } from '@nightshift/common';
import { startCoordinator } from './app.js';

const log = createLogger('coordinator');
const running = await startCoordinator(loadConfig(), log);
// Machine-readable line for supervisors (the README farm and tests) that pick ports at random.
console.log(JSON.stringify({ ready: 'coordinator', httpPort: running.httpPort, grpcPort: running.grpcPort }));
stopOnSignals(() => running.stop(), log);
