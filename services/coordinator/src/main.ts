/** Coordinator entry point: configuration in, servers up, clean stop on signals. */
import { createLogger, loadConfig, stopOnSignals } from '@nightshift/common';
import { startCoordinator } from './app.js';

const log = createLogger('coordinator');
const running = await startCoordinator(loadConfig(), log).catch((err: unknown) => {
  // A refused configuration is the operator's to fix: one clear line, no stack.
  log.fatal(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
// Machine-readable line for supervisors (the README farm and tests) that pick ports at random.
console.log(JSON.stringify({ ready: 'coordinator', httpPort: running.httpPort, grpcPort: running.grpcPort }));
stopOnSignals(() => running.stop(), log);
