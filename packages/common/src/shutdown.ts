import type { Logger } from './log.js';

/**
 * Stops a service once on SIGINT or SIGTERM, then exits: the shared tail of
 * every main.ts. A second signal while stopping exits at once, so a stop that
 * hangs never needs SIGKILL.
 */
export function stopOnSignals(stop: () => Promise<void>, log?: Logger): void {
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (stopping) {
        log?.warn({ sig }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      log?.info({ sig }, 'stopping');
      void stop().then(
        () => process.exit(0),
        (err: unknown) => {
          log?.error({ err: String(err) }, 'stop failed');
          process.exit(1);
        },
      );
    });
  }
}
