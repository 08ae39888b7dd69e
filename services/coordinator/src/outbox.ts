/**
 * Publishes outbox rows to JetStream in order, each with its Nats-Msg-Id so a
 * retry after a lost ack is deduplicated by the server. If NATS is away the
 * rows simply wait; state changes never depend on NATS being up. It wakes by
 * itself after every commit that wrote outbox rows (the Store's commit hook).
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from '@nightshift/common';
import type { Store } from './store.js';

export class OutboxPublisher {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;
  private failures = 0;
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly store: Pick<Store, 'pendingEvents' | 'markPublished' | 'onCommit'>,
    /** Undefined until NATS is first reached; events wait in the outbox meanwhile. */
    private readonly js: () => JetStreamClient | undefined,
    private readonly log: Logger,
    private readonly idleMs = 100,
  ) {}

  start(): void {
    this.unsubscribe = this.store.onCommit((c) => {
      if (c.outbox) this.poke();
    });
    this.schedule(0);
  }

  /** Ask for a prompt flush (NATS became reachable; commits that wrote events poke by themselves). */
  poke(): void {
    if (!this.running) this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.flush(), ms);
  }

  /** Publishes everything pending; returns how many were published. */
  async flush(): Promise<number> {
    if (this.running) return 0;
    this.running = true;
    let published = 0;
    try {
      const js = this.js();
      if (!js) throw new Error('NATS not connected yet');
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
      this.schedule(this.idleMs * 10);
    } catch (err) {
      this.failures++;
      if (this.failures === 1 || this.failures % 20 === 0) this.log.warn({ err: String(err), failures: this.failures }, 'outbox: publish failed, will retry');
      this.schedule(Math.min(5_000, 200 * 2 ** Math.min(this.failures, 5)));
    } finally {
      this.running = false;
    }
    return published;
  }
}
