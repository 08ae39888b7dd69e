/**
 * Publishes outbox rows to JetStream in order, each with its Nats-Msg-Id so a
 * retry after a lost ack is deduplicated by the server. If NATS is away the
 * rows simply wait; state changes never depend on NATS being up. It wakes by
 * itself after commits that wrote outbox rows (the Store's commit hook),
 * gathering those of up to `coalesceMs` into one pass: at a thousand
 * results a second, a pass (and its markPublished commit) per commit was a
 * good part of the coordinator's CPU (bench/dispatch.ts).
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from '@nightshift/common';
import type { Store } from './store.js';
import { WakeLoop } from './wake-loop.js';

export class OutboxPublisher {
  private failures = 0;
  private unsubscribe: (() => void) | undefined;
  /** A poke is due within `coalesceMs`: later commits ride on it. */
  private soon: NodeJS.Timeout | undefined;
  private readonly loop = new WakeLoop({ pass: () => this.pass(), onError: (err) => this.failed(err) });

  constructor(
    private readonly store: Pick<Store, 'pendingEvents' | 'markPublished' | 'onCommit'>,
    /** Undefined until NATS is first reached; events wait in the outbox meanwhile. */
    private readonly js: () => JetStreamClient | undefined,
    private readonly log: Logger,
    private readonly idleMs = 100,
    private readonly coalesceMs = 5,
  ) {}

  start(): void {
    this.unsubscribe = this.store.onCommit((c) => {
      if (c.outbox) this.pokeSoon();
    });
    this.loop.start();
  }

  /** Ask for a prompt flush (NATS became reachable; commits that wrote events poke by themselves). */
  poke(): void {
    this.loop.poke();
  }

  /** A commit wrote events: one pass within `coalesceMs` publishes them with those of the commits that follow. */
  private pokeSoon(): void {
    if (this.soon) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      this.poke();
    }, this.coalesceMs);
    this.soon.unref();
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    clearTimeout(this.soon);
    await this.loop.stop();
  }

  /** Publishes everything pending; the next pass is a safety net a second later (commits poke). */
  private async pass(): Promise<number> {
    const js = this.js();
    if (!js) throw new Error('NATS not connected yet');
    let published = 0;
    for (;;) {
      const batch = this.store.pendingEvents(256);
      if (batch.length === 0) break;
      // Publish a batch concurrently (JetStream keeps per-connection order), then mark it in one transaction.
      const results = await Promise.allSettled(batch.map((row) => js.publish(row.subject, row.payload, { msgID: row.msg_id, timeout: 5_000 })));
      const ok = batch.filter((_, i) => results[i]!.status === 'fulfilled').map((r) => r.id);
      this.store.markPublished(ok);
      published += ok.length;
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
    }
    if (this.failures > 0) this.log.info({ published }, 'outbox: NATS reachable again, backlog published');
    this.failures = 0;
    return this.idleMs * 10;
  }

  /** NATS away or refusing: the rows wait; retry with backoff up to 5 s, logging now and then. */
  private failed(err: unknown): number {
    this.failures++;
    if (this.failures === 1 || this.failures % 20 === 0) this.log.warn({ err: String(err), failures: this.failures }, 'outbox: publish failed, will retry');
    return Math.min(5_000, 200 * 2 ** Math.min(this.failures, 5));
  }
}
