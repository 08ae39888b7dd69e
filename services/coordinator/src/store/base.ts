/**
 * The Store's ground floor: prepared statements, transactions, the outbox,
 * and the after-commit hook. Writes record what they change; once the
 * outermost transaction commits, `onCommit` listeners hear it in one
 * `Committed` (the outbox publisher wakes, live clients update) and
 * `afterCommit` callbacks run (messages to nodes). A rolled-back transaction
 * or savepoint drops what it recorded, so nobody hears of an undone change.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Statement } from 'better-sqlite3';
import type { DB } from '../db.js';
import type { LiveEvent } from '../live.js';
import type { FailurePolicy } from '../placement.js';
import type { JobState } from './rows.js';
import { statementCache } from './statements.js';
import type { OutboxEvent } from './events.js';

export interface StoreOptions extends FailurePolicy {
  now: () => number;
  /** How long a big sweep's second part waits at most for the fills after its first (store-engine/sweep-parts.ts; tests make it long). */
  firstFillsWaitMs?: number;
}

/** What one committed transaction changed, for `onCommit` listeners. */
export interface Committed {
  /** It wrote outbox rows: the publisher has events to send. */
  outbox: boolean;
  /** It wrote webhook deliveries: the webhook worker has something to send. */
  webhooks: boolean;
  /** Job and node changes in order, then each changed sweep once. */
  events: LiveEvent[];
}

type Change = { kind: 'outbox' } | { kind: 'webhooks' } | { kind: 'sweep'; sweepId: string } | { kind: 'event'; event: LiveEvent } | { kind: 'then'; run: () => void };

interface TurnBatching {
  /** A turn's transaction is open (BEGIN ran; its commit is scheduled). */
  open: boolean;
  /** committed() callers of the open turn. */
  waiting: { resolve: () => void; reject: (err: unknown) => void }[];
  lost: (err: unknown) => void;
  failed: (err: unknown) => void;
  /** Set while a caller's writes must commit one by one (`unbatched`). */
  unbatched: AsyncLocalStorage<true>;
}

export const DEFAULT_STORE_OPTIONS: StoreOptions = { maxAttempts: 3, blocklistAfter: 3, now: Date.now };

export class StoreBase {
  readonly opts: StoreOptions;
  protected readonly now: () => number;
  private readonly statement: (sql: string) => Statement;
  private readonly inTransaction: (work: () => unknown) => unknown;
  private readonly listeners = new Set<(c: Committed) => void>();
  /** Changes written but not yet committed (rolled back with their savepoint). */
  private pending: Change[] = [];
  /** Set by batchTurns(): writes join one transaction per event-loop turn. */
  private turns: TurnBatching | undefined;
  /** transaction() calls under way (a write inside one never commits the turn midway). */
  private depth = 0;

  /** A prepared statement, compiled once (statements.ts). */
  protected q(sql: string): Statement {
    return this.statement(sql);
  }

  constructor(
    readonly db: DB,
    opts: Partial<StoreOptions> = {},
  ) {
    this.opts = { ...DEFAULT_STORE_OPTIONS, ...opts };
    this.now = this.opts.now;
    this.statement = statementCache(db);
    // One better-sqlite3 transaction function for every call (it nests as savepoints): building one per call cost ~2.5 % of the coordinator's CPU at 1,000 nodes.
    this.inTransaction = db.transaction((work: () => unknown) => work());
  }

  /**
   * Calls `listener` after every committed transaction that changed state,
   * once per transaction: a batch run in `transaction()` is heard of once, after it commits.
   */
  onCommit(listener: (c: Committed) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Runs `work` in one transaction (a savepoint inside another); listeners
   * hear of its changes only once the outermost transaction commits.
   */
  transaction<T>(work: () => T): T {
    this.joinTurn();
    const mark = this.pending.length;
    let result: T;
    this.depth++;
    try {
      result = this.inTransaction(work) as T;
    } catch (err) {
      this.pending.length = mark;
      throw err;
    } finally {
      this.depth--;
    }
    this.flushCommitted();
    return result;
  }

  /**
   * Runs `fn` once the open transaction commits (at once when none is open;
   * never if it rolls back): a node must not hear of a lease a crash could undo.
   */
  afterCommit(fn: () => void): void {
    this.pending.push({ kind: 'then', run: fn });
    this.flushCommitted();
  }

  /** A single-statement write: committed at once unless a transaction is open. */
  protected write<T>(work: () => T): T {
    this.joinTurn();
    const result = work();
    this.flushCommitted();
    return result;
  }

  /**
   * From now on, writes join one transaction per event-loop turn, committed
   * once the turn's callbacks have run (setImmediate), so a turn that records
   * many results writes each page once. Every write still resolves at once:
   * what must not be seen before it is durable waits for it (`afterCommit`),
   * and callers that answer someone outside run `unbatched`. `lost` hears of a
   * turn that did not commit (its COMMIT failed, or SQLite rolled it back
   * itself: disk full, I/O): everything it wrote is gone and its afterCommit
   * callbacks never run. `failed` hears of a callback or listener that threw
   * after a commit (the commit stands).
   */
  batchTurns(lost: (err: unknown) => void, failed: (err: unknown) => void): void {
    this.turns = { open: false, waiting: [], lost, failed, unbatched: new AsyncLocalStorage<true>() };
  }

  /**
   * Runs `fn` (and everything it awaits) with its writes committed one by one,
   * before each resolves, as without batching: an HTTP or gRPC answer then
   * tells only of what is durable. A turn open when such a write comes is
   * committed first.
   */
  unbatched<T>(fn: () => T): T {
    return this.turns ? this.turns.unbatched.run(true, fn) : fn();
  }

  /**
   * Runs `fn` (and all it awaits) with its writes joining turns again, inside
   * an `unbatched` caller: work it hands on whose effects wait for the
   * commit anyway (the node hub's fills: what a node is told waits for it).
   */
  batched<T>(fn: () => T): T {
    return this.turns ? this.turns.unbatched.exit(fn) : fn();
  }

  /** Commits the open turn now, so a read that follows in the same synchronous run sees only what is durable (the outbox publisher, the webhook worker; closing the engine). */
  flush(): void {
    this.commitTurn();
  }

  /** Resolves once everything written so far is committed (at once when nothing is open); rejects when that turn did not commit. */
  committed(): Promise<void> {
    const turns = this.turns;
    if (!turns?.open) return Promise.resolve();
    return new Promise((resolve, reject) => turns.waiting.push({ resolve, reject }));
  }

  /** Commits the open turn (at its scheduled end, or earlier through flush(); its scheduled commit then finds nothing). */
  private commitTurn(): void {
    const turns = this.turns;
    if (!turns?.open) return;
    // SQLite rolled the turn back itself (a statement that failed with disk full or I/O error ends the transaction).
    if (!this.db.inTransaction) return this.loseTurn(new Error('the turn\'s transaction was rolled back by SQLite'));
    try {
      this.db.exec('COMMIT');
    } catch (err) {
      return this.loseTurn(err);
    }
    turns.open = false;
    const waiting = turns.waiting.splice(0);
    for (const w of waiting) w.resolve();
    try {
      this.flushCommitted();
    } catch (err) {
      // A listener or callback that threw: the turn is durable all the same; one throw must not take the process down.
      turns.failed(err);
    }
  }

  /** The open turn did not commit: everything of it is undone, nobody hears of it, its waiters fail. */
  private loseTurn(err: unknown): void {
    const turns = this.turns!;
    turns.open = false;
    this.pending = [];
    for (const w of turns.waiting.splice(0)) w.reject(err);
    try {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
    } catch {
      // Already ended by SQLite: nothing of it stands either way.
    }
    try {
      turns.lost(err);
    } catch (e) {
      turns.failed(e);
    }
  }

  /**
   * A call from an `unbatched` caller is about to run: the open turn commits
   * first, so the call neither joins it nor reads what it has not made
   * durable (the engine's faces call this; writes through write() and
   * transaction() do it themselves).
   */
  settleForCaller(): void {
    const turns = this.turns;
    if (turns?.open && turns.unbatched.getStore() && this.depth === 0) this.commitTurn();
  }

  /** A write starts: it joins the open turn, or opens one; unbatched, it commits on its own (after the open turn). */
  private joinTurn(): void {
    const turns = this.turns;
    if (!turns) return;
    // The turn vanished under us (SQLite rolled it back after an earlier statement failed): it is lost, not continued.
    if (turns.open && !this.db.inTransaction) this.loseTurn(new Error('the turn\'s transaction was rolled back by SQLite'));
    if (turns.unbatched.getStore()) return this.settleForCaller();
    if (this.db.inTransaction) return;
    this.db.exec('BEGIN');
    turns.open = true;
    setImmediate(() => this.commitTurn());
  }

  private flushCommitted(): void {
    if (this.db.inTransaction || this.pending.length === 0) return;
    const changes = this.pending;
    this.pending = [];
    const sweeps = new Set<string>();
    const committed: Committed = { outbox: false, webhooks: false, events: [] };
    const then: (() => void)[] = [];
    for (const c of changes) {
      if (c.kind === 'outbox') committed.outbox = true;
      else if (c.kind === 'webhooks') committed.webhooks = true;
      else if (c.kind === 'sweep') sweeps.add(c.sweepId);
      else if (c.kind === 'event') committed.events.push(c.event);
      else then.push(c.run);
    }
    for (const sweepId of sweeps) committed.events.push({ type: 'sweep', sweepId });
    const changed = committed.outbox || committed.webhooks || committed.events.length > 0;
    // Everything runs even when one throws (the transaction is durable either way); the first error is rethrown.
    let failure: unknown;
    const attempt = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        failure ??= err;
      }
    };
    for (const fn of then) attempt(fn);
    if (changed) for (const listener of this.listeners) attempt(() => listener(committed));
    if (failure) throw failure;
  }

  /** Webhook deliveries were written in this transaction. */
  protected deliveriesWritten(): void {
    this.pending.push({ kind: 'webhooks' });
  }

  protected sweepChanged(sweepId: string): void {
    this.pending.push({ kind: 'sweep', sweepId });
  }

  protected jobChanged(job: { id: string; sweep_id: string }, state: JobState): void {
    this.pending.push({ kind: 'event', event: { type: 'job', sweepId: job.sweep_id, jobId: job.id, state } });
    this.sweepChanged(job.sweep_id);
  }

  protected nodeChanged(nodeId: string, status: string): void {
    this.pending.push({ kind: 'event', event: { type: 'node', nodeId, status } });
  }

  /** An event built by events.ts, written to the outbox in the current transaction. */
  protected enqueueEvent(e: OutboxEvent): void {
    this.enqueue(e.subject, e.msgId, e.payload);
  }

  protected enqueue(subject: string, msgId: string, payload: unknown): void {
    this.q('INSERT INTO outbox (subject, msg_id, payload, created_at) VALUES (?, ?, ?, ?)')
      .run(subject, msgId, JSON.stringify(payload), this.now());
    this.pending.push({ kind: 'outbox' });
  }

  pendingEvents(limit: number): { id: number; subject: string; msg_id: string; payload: string }[] {
    return this.q('SELECT id, subject, msg_id, payload FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT ?').all(limit) as {
      id: number;
      subject: string;
      msg_id: string;
      payload: string;
    }[];
  }

  /** Deletes up to `limit` outbox rows published before `before`; returns how many (retention.ts calls it in batches). */
  pruneOutbox(before: number, limit: number): number {
    return this.q('DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE published_at < ? ORDER BY published_at LIMIT ?)').run(before, limit).changes;
  }

  markPublished(ids: number[]): void {
    const stmt = this.q('UPDATE outbox SET published_at = ? WHERE id = ?');
    const now = this.now();
    this.db.transaction(() => {
      for (const id of ids) stmt.run(now, id);
    })();
  }
}
