/**
 * Pruning as a periodic duty over a StoreEngine (retention.ts's rule: old
 * published outbox rows, result audits, finished webhook deliveries and
 * expired shares deleted a small batch per statement, yielding between
 * batches). With several replicas on PostgreSQL only the one holding the
 * `retention` duty prunes; when its session dies another's next pass takes
 * the duty over. The caller runs `pass` on its own timer (a WakeLoop).
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Leadership, StoreEngine } from './engine.js';

export const RETENTION_DUTY = 'retention';

export interface RetentionDutyOptions {
  /** Published outbox rows are kept this long. */
  outboxMs: number;
  /** Result audit rows are kept this long. */
  resultsMs: number;
  /** Finished webhook deliveries are kept this long; unset: not pruned. */
  webhookDeliveriesMs?: number;
  /** Rows per DELETE statement. */
  batch?: number;
  now?: () => number;
}

export interface Pruned {
  outbox: number;
  results: number;
  webhookDeliveries: number;
  shares: number;
}

export class RetentionDuty {
  private leadership: Leadership | undefined;
  private stopped = false;
  private readonly batch: number;
  private readonly now: () => number;

  constructor(
    private readonly engine: StoreEngine,
    private readonly opts: RetentionDutyOptions,
  ) {
    this.batch = opts.batch ?? 1_000;
    this.now = opts.now ?? Date.now;
  }

  /** Whether this engine holds the duty now. */
  leading(): boolean {
    return this.leadership?.held() ?? false;
  }

  /** Takes the duty if nobody holds it, then prunes; undefined when another replica holds it. */
  async pass(): Promise<Pruned | undefined> {
    if (this.stopped) return undefined;
    if (!this.leading()) {
      const won = await this.engine.lead(RETENTION_DUTY);
      // stop() ran while lead() was answering: it released nothing, so this leadership is let go here.
      if (this.stopped) {
        await won?.release();
        return undefined;
      }
      this.leadership = won;
    }
    if (!this.leadership) return undefined;
    const now = this.now();
    const keep = this.opts.webhookDeliveriesMs;
    return {
      outbox: await this.drain((n) => this.engine.retention.pruneOutbox(now - this.opts.outboxMs, n)),
      results: await this.drain((n) => this.engine.retention.pruneResults(now - this.opts.resultsMs, n)),
      webhookDeliveries: keep === undefined ? 0 : await this.drain((n) => this.engine.webhooks.pruneDeliveries(now - keep, n)),
      // Expired shares are few (one row per link): one statement.
      shares: await this.engine.shares.pruneExpired(now),
    };
  }

  /** No pass prunes after this; the duty is released for another replica. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.leadership?.release();
    this.leadership = undefined;
  }

  private async drain(deleteBatch: (limit: number) => Promise<number>): Promise<number> {
    let total = 0;
    // Each batch is its own statement; a lost leadership stops at the next one (the new leader carries on).
    while (!this.stopped && this.leading()) {
      const n = await deleteBatch(this.batch);
      total += n;
      if (n < this.batch) break;
      await nextTurn();
    }
    return total;
  }
}
