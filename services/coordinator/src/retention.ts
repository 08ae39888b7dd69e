/**
 * Keeps the coordinator's bookkeeping tables from growing all night, every
 * night: published outbox rows (JetStream has them; the outbox only has to
 * outlive a publish), `results` audit rows and finished webhook deliveries
 * older than their retention are deleted. Off the hot path: on a WakeLoop, in small batches, each its
 * own statement, yielding to the event loop between them, so node messages
 * and HTTP requests never wait behind a long delete.
 *
 * A duty (duty-loop.ts): with several replicas on PostgreSQL only the one
 * leading `retention` prunes, and another takes over within seconds when it
 * dies. Not store-engine/retention-duty.ts's runner: that one also deletes
 * shares as soon as they expire, where the share routes keep expired links
 * listed (as expired) for a week (shares-routes.ts prunes them), and it asks
 * for the duty only at a pass (every ten minutes here).
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Logger } from '@nightshift/common';
import type { Leadership, RetentionEngine, StoreEngine, WebhookEngine } from './store-engine/engine.js';
import { RETENTION_DUTY } from './store-engine/retention-duty.js';
import { DutyLoop } from './duty-loop.js';
import { WakeLoop } from './wake-loop.js';

/** The same duty as retention-duty.ts's runner holds, so the two never prune at once. */
export { RETENTION_DUTY };

export interface RetentionOptions {
  /** Published outbox rows are kept this long. */
  outboxMs: number;
  /** Result audit rows are kept this long. */
  resultsMs: number;
  /** Finished webhook deliveries (and their attempts) are kept this long; unset: not pruned here. */
  webhookDeliveriesMs?: number;
  /** How often to prune (first run one interval after taking the duty). */
  everyMs?: number;
  /** How often a replica not pruning asks for the duty. */
  pollMs?: number;
  /** Rows per DELETE statement. */
  batch?: number;
  now?: () => number;
}

export const HOUR_MS = 3_600_000;

/** What pruning uses of the engine; a store without webhooks leaves `webhooks` out. */
export type RetentionParts = Pick<StoreEngine, 'lead'> & { retention: RetentionEngine; webhooks?: Pick<WebhookEngine, 'pruneDeliveries'> };

export class Retention {
  private stopped = false;
  private readonly now: () => number;
  private readonly batch: number;
  private readonly every: number;
  private readonly duty: DutyLoop;

  constructor(
    private readonly engine: RetentionParts,
    private readonly log: Logger,
    private readonly opts: RetentionOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.batch = opts.batch ?? 1_000;
    this.every = opts.everyMs ?? 10 * 60_000;
    this.duty = new DutyLoop(engine, { duty: RETENTION_DUTY, log, pollMs: opts.pollMs, onLead: (l) => this.lead(l) });
  }

  start(): void {
    this.duty.start();
  }

  /** Whether this replica prunes now. */
  leading(): boolean {
    return this.duty.leading();
  }

  /** Stops pruning (waiting for its current batch to end) and releases the duty. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.duty.stop();
  }

  /** This replica won the duty: prune every interval until it is lost or stopped. */
  private lead(leadership: Leadership): () => Promise<void> {
    const loop = new WakeLoop({
      pass: async () => {
        await this.prune(leadership);
        return this.every;
      },
      onError: (err) => {
        this.log.warn({ err: String(err) }, 'pruning failed; trying again at the next interval');
        return this.every;
      },
    });
    loop.start(this.every);
    return () => loop.stop();
  }

  /** One pass: deletes everything past retention, a batch at a time; returns how many rows of each. `under`: stop at the next batch once it is lost. */
  async prune(under?: Leadership): Promise<{ outbox: number; results: number; webhookDeliveries?: number }> {
    const now = this.now();
    const outbox = await this.drain(under, (n) => this.engine.retention.pruneOutbox(now - this.opts.outboxMs, n));
    const results = await this.drain(under, (n) => this.engine.retention.pruneResults(now - this.opts.resultsMs, n));
    const keep = this.opts.webhookDeliveriesMs;
    const webhooks = this.engine.webhooks;
    const pruneDeliveries = webhooks && ((before: number, limit: number) => webhooks.pruneDeliveries(before, limit));
    // Counted only where configured (the coordinator configures it; a store without webhooks does not).
    const deliveries = keep !== undefined && pruneDeliveries ? { webhookDeliveries: await this.drain(under, (n) => pruneDeliveries(now - keep, n)) } : {};
    if (outbox || results || deliveries.webhookDeliveries) this.log.info({ outbox, results, ...deliveries }, 'pruned old outbox, result and webhook delivery rows');
    return { outbox, results, ...deliveries };
  }

  private async drain(under: Leadership | undefined, deleteBatch: (limit: number) => Promise<number>): Promise<number> {
    let total = 0;
    // Each batch is its own statement; a lost leadership stops at the next one (the new leader carries on).
    while (!this.stopped && (under?.held() ?? true)) {
      const n = await deleteBatch(this.batch);
      total += n;
      if (n < this.batch) break;
      await nextTurn();
    }
    return total;
  }
}
