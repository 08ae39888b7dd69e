/**
 * Whether the coordinator's periodic work (the scheduler tick, the node
 * inbox flush) last ran cleanly. A failed run (SQLite busy, disk full) is
 * logged and retried, never rethrown into the event loop; while any part's
 * last run failed, `/readyz` fails (the `check` below) with what went wrong.
 */
import type { Logger } from '@nightshift/common';

export class LoopHealth {
  private readonly failing = new Map<string, { error: string; since: number; failures: number }>();

  constructor(
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records a failed run of `part`; logs the first failure and then every 20th. */
  failed(part: string, err: unknown): number {
    const prior = this.failing.get(part);
    const entry = { error: err instanceof Error ? err.message : String(err), since: prior?.since ?? this.now(), failures: (prior?.failures ?? 0) + 1 };
    this.failing.set(part, entry);
    if (entry.failures === 1 || entry.failures % 20 === 0) this.log.error({ part, err: entry.error, failures: entry.failures }, 'coordinator loop failed; retrying');
    return entry.failures;
  }

  /** Records a clean run of `part`. */
  ok(part: string): void {
    const prior = this.failing.get(part);
    if (!prior) return;
    this.failing.delete(part);
    this.log.info({ part, failures: prior.failures, ms: this.now() - prior.since }, 'coordinator loop recovered');
  }

  /** A readiness check: throws while some part's last run failed. */
  check = (): string => {
    const parts = [...this.failing].map(([part, f]) => `${part}: ${f.error} (${f.failures} failed runs since ${new Date(f.since).toISOString()})`);
    if (parts.length) throw new Error(parts.join('; '));
    return 'ok';
  };
}
