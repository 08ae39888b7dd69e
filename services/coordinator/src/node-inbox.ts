/**
 * The hub's group commit: node messages and verified results that arrive in
 * one turn of the event loop are handled together in one transaction; a
 * database failure rolls the batch back and retries what still matters.
 */
import type { ConnectRequest, JobCompleted } from '@nightshift/proto';
import type { Logger } from '@nightshift/common';
import type { Store } from './store.js';
import type { LoopHealth } from './loop-health.js';
import type { NodeStream } from './node-messages.js';

/** What arrived for the hub this turn: a node's message (with its stream's session slot), or a result whose image storage confirmed. */
export type InboxItem<S> =
  | { kind: 'message'; call: NodeStream; get: () => S | undefined; set: (s: S | undefined) => void; req: ConnectRequest }
  | { kind: 'verified'; nodeId: string; report: JobCompleted };

export interface InboxDeps<S> {
  store: Pick<Store, 'transaction' | 'afterCommit'>;
  health: Pick<LoopHealth, 'ok' | 'failed'>;
  log: Logger;
  /** Set when the hub stops: nothing more is flushed. */
  signal: AbortSignal;
  /** Handles one item inside the batch's transaction, returning the node to refill after the batch if any; throws to roll the whole batch back. */
  handle(item: InboxItem<S>): string | undefined;
  /** Runs last in the batch's transaction with the nodes to refill (those that reported a result or a failure). */
  afterBatch(reported: Set<string>): void;
}

export class NodeInbox<S> {
  private items: InboxItem<S>[] = [];
  private flushScheduled = false;

  constructor(private readonly deps: InboxDeps<S>) {}

  push(item: InboxItem<S>): void {
    this.items.push(item);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /**
   * Handles everything that arrived in this turn of the event loop in one
   * transaction (each item in its own savepoint, the hub's handler). A
   * database failure (busy, disk full) rolls the batch back instead; it is
   * retried with backoff, and nodes heard nothing of it (messages to them
   * wait for the commit).
   */
  private flush(): void {
    this.flushScheduled = false;
    const { store, health, log } = this.deps;
    if (this.deps.signal.aborted) return;
    const batch = this.items;
    this.items = [];
    const reported = new Set<string>();
    let committed = false;
    try {
      store.transaction(() => {
        store.afterCommit(() => (committed = true));
        for (const item of batch) {
          const nodeId = this.deps.handle(item);
          if (nodeId !== undefined) reported.add(nodeId);
        }
        this.deps.afterBatch(reported);
      });
      health.ok('inbox');
    } catch (err) {
      // After the commit only a node's stream can have thrown: the batch is recorded, nothing to retry.
      if (committed) return log.error({ err: String(err) }, 'after-commit work failed');
      const failures = health.failed('inbox', err);
      this.items = [...retryable(batch), ...this.items];
      this.flushScheduled = true;
      setTimeout(() => this.flush(), Math.min(5_000, 50 * 2 ** Math.min(failures, 7))).unref();
    }
  }
}

/** What a failed flush keeps for its retry: progress is cosmetic and only each stream's newest heartbeat matters. */
function retryable<S>(batch: InboxItem<S>[]): InboxItem<S>[] {
  const lastHeartbeat = new Map<NodeStream, InboxItem<S>>();
  for (const item of batch) if (item.kind === 'message' && item.req.msg.case === 'heartbeat') lastHeartbeat.set(item.call, item);
  return batch.filter((item) => {
    if (item.kind === 'verified') return true;
    if (item.req.msg.case === 'progress') return false;
    return item.req.msg.case !== 'heartbeat' || lastHeartbeat.get(item.call) === item;
  });
}
