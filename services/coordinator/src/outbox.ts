/**
 * Publishes outbox rows to JetStream in order, each with its Nats-Msg-Id so a
 * retry after a lost ack is deduplicated by the server. If NATS is away the
 * rows simply wait; state changes never depend on NATS being up. It wakes by
 * itself after commits that wrote outbox rows (the engine's `subscribe`, which
 * on PostgreSQL hears every replica's commits), gathering those of up to
 * `coalesceMs` into one pass: at a thousand results a second, a pass (and its
 * markPublished commit) per commit was a good part of the coordinator's CPU
 * (bench/dispatch.ts).
 *
 * Publishing is a duty (duty-loop.ts): one replica at a time publishes, the
 * others wait to take over. Why a leadership rather than every replica
 * claiming rows (`claimEvents`): one publisher keeps the events in commit
 * order on one connection (JetStream keeps per-connection order), as one
 * coordinator always did; a batch that NATS refused is retried at the next
 * backoff in order, where a claim would hold those rows back until it lapsed
 * while later rows went out first; and N replicas would each run a claim
 * query on every commit's wake for no more throughput (publishing is not the
 * bottleneck). When a leader dies mid-batch, the next one publishes that
 * batch again with the same msg ids, which JetStream drops as duplicates.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from '@nightshift/common';
import type { Leadership, ListingEngine, StoreEngine } from './store-engine/engine.js';
import { DutyLoop } from './duty-loop.js';
import { pokeOnOutboxCommits, WakeLoop } from './wake-loop.js';

export const OUTBOX_DUTY = 'outbox';

export type OutboxEngine = Pick<StoreEngine, 'lead' | 'subscribe' | 'markPublished' | 'flush'> & { listings: Pick<ListingEngine, 'pendingEvents'> };

export interface OutboxOptions {
  /** Sleep between passes when nothing pokes (a safety net; commits poke), ×10. */
  idleMs?: number;
  /** Commits within this of each other are published by one pass. */
  coalesceMs?: number;
  /** How often a replica not publishing asks for the duty. */
  pollMs?: number;
}

export class OutboxPublisher {
  private failures = 0;
  private unsubscribe: Promise<(() => Promise<void>) | undefined> | undefined;
  /** A poke is due within `coalesceMs`: later commits ride on it. */
  private soon: NodeJS.Timeout | undefined;
  /** The publishing loop while this replica holds the duty. */
  private loop: WakeLoop | undefined;
  private readonly duty: DutyLoop;
  private readonly idleMs: number;
  private readonly coalesceMs: number;

  constructor(
    private readonly engine: OutboxEngine,
    /** Undefined until NATS is first reached; events wait in the outbox meanwhile. */
    private readonly js: () => Pick<JetStreamClient, 'publish'> | undefined,
    private readonly log: Logger,
    opts: OutboxOptions = {},
  ) {
    this.idleMs = opts.idleMs ?? 100;
    this.coalesceMs = opts.coalesceMs ?? 5;
    this.duty = new DutyLoop(engine, { duty: OUTBOX_DUTY, log, pollMs: opts.pollMs, onLead: (l) => this.lead(l) });
  }

  start(): void {
    // Without wake-ups the idle pass still publishes, a second later.
    this.unsubscribe = pokeOnOutboxCommits(this.engine, () => this.pokeSoon(), this.log, 'outbox');
    this.duty.start();
  }

  /** Whether this replica publishes now. */
  leading(): boolean {
    return this.duty.leading();
  }

  /** Ask for a prompt flush (NATS became reachable; commits that wrote events poke by themselves). */
  poke(): void {
    this.loop?.poke();
  }

  async stop(): Promise<void> {
    clearTimeout(this.soon);
    await this.duty.stop();
    await (await this.unsubscribe)?.();
  }

  /** This replica won the duty: publish until it is lost or stopped. */
  private lead(leadership: Leadership): () => Promise<void> {
    const loop = new WakeLoop({ pass: () => this.pass(leadership), onError: (err) => this.failed(err) });
    this.loop = loop;
    loop.start();
    return async () => {
      if (this.loop === loop) this.loop = undefined;
      await loop.stop();
    };
  }

  /** A commit wrote events: one pass within `coalesceMs` publishes them with those of the commits that follow. */
  private pokeSoon(): void {
    if (this.soon || !this.loop) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      this.poke();
    }, this.coalesceMs);
    this.soon.unref();
  }

  /** Publishes everything pending; the next pass is a safety net a second later (commits poke). */
  private async pass(leadership: Leadership): Promise<number> {
    const js = this.js();
    if (!js) throw new Error('NATS not connected yet');
    let published = 0;
    // A lost leadership ends the pass at the next batch; its loop is being stopped.
    while (leadership.held()) {
      // Only what is durable is announced (SQLite commits a turn's writes at its end: flush commits it now, and the read follows at once).
      this.engine.flush();
      const batch = await this.engine.listings.pendingEvents(256);
      if (batch.length === 0) break;
      // Publish a batch concurrently (JetStream keeps per-connection order), then mark it in one transaction.
      const results = await Promise.allSettled(batch.map((row) => js.publish(row.subject, row.payload, { msgID: row.msg_id, timeout: 5_000 })));
      const ok = batch.filter((_, i) => results[i]!.status === 'fulfilled').map((r) => r.id);
      await this.engine.markPublished(ok);
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
