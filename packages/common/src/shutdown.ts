import type { Logger } from './log.js';

/** Stops a service once on SIGINT or SIGTERM, then exits: the shared tail of every main.ts. */
export function stopOnSignals(stop: () => Promise<void>, log?: Logger): void {
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (stopping) return;
      stopping = true;
      log?.info({ sig }, 'stopping');
      void stop().then(() => process.exit(0));
    });
  }
}
