/**
 * Keeps the coordinator's bookkeeping tables from growing all night, every
 * night: published outbox rows (JetStream has them; the outbox only has to
 * outlive a publish), `results` audit rows and finished webhook deliveries
 * older than their retention are deleted. Off the hot path: on a WakeLoop, in small batches, each its
 * own statement, yielding to the event loop between them, so node messages
 * and HTTP requests never wait behind a long delete.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Logger } from '@nightshift/common';
import type { Store } from './store.js';
import { WakeLoop } from './wake-loop.js';

export interface RetentionOptions {
  /** Published outbox rows are kept this long. */
  outboxMs: number;
  /** Result audit rows are kept this long. */
  resultsMs: number;
  /** Finished webhook deliveries (and their attempts) are kept this long; unset: not pruned here. */
  webhookDeliveriesMs?: number;
  /** How often to prune (first run one interval after start). */
  everyMs?: number;
  /** Rows per DELETE statement. */
  batch?: number;
  now?: () => number;
}

export const HOUR_MS = 3_600_000;

export class Retention {
  private stopped = false;
  private readonly now: () => number;
  private readonly batch: number;
  private readonly every: number;

  constructor(
    private readonly store: Pick<Store, 'pruneOutbox' | 'pruneResults'> & Partial<Pick<Store, 'pruneDeliveries'>>,
    private readonly log: Logger,
    private readonly opts: RetentionOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.batch = opts.batch ?? 1_000;
    this.every = opts.everyMs ?? 10 * 60_000;
  }

  private readonly loop = new WakeLoop({
    pass: async () => {
      await this.prune();
      return this.every;
    },
    onError: (err) => {
      this.log.warn({ err: String(err) }, 'pruning failed; trying again at the next interval');
      return this.every;
    },
  });

  start(): void {
    this.loop.start(this.every);
  }

  /** Stops the loop and waits for a prune under way (its current batch) to end. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop.stop();
  }

  /** One pass: deletes everything past retention, a batch at a time; returns how many rows of each. */
  async prune(): Promise<{ outbox: number; results: number; webhookDeliveries?: number }> {
    const now = this.now();
    const outbox = await this.drain((n) => this.store.pruneOutbox(now - this.opts.outboxMs, n));
    const results = await this.drain((n) => this.store.pruneResults(now - this.opts.resultsMs, n));
    const keep = this.opts.webhookDeliveriesMs;
    const pruneDeliveries = this.store.pruneDeliveries?.bind(this.store);
    // Counted only where configured (the coordinator configures it; a store without webhooks does not).
    const deliveries = keep !== undefined && pruneDeliveries ? { webhookDeliveries: await this.drain((n) => pruneDeliveries(now - keep, n)) } : {};
    if (outbox || results || deliveries.webhookDeliveries) this.log.info({ outbox, results, ...deliveries }, 'pruned old outbox, result and webhook delivery rows');
    return { outbox, results, ...deliveries };
  }

  private async drain(deleteBatch: (limit: number) => number): Promise<number> {
    let total = 0;
    while (!this.stopped) {
      const n = deleteBatch(this.batch);
      total += n;
      if (n < this.batch) break;
      await nextTurn();
    }
    return total;
  }
}
