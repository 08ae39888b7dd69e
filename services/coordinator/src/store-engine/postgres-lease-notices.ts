/**
 * Live clients hear of a lease (a sweep's running count) through one NOTIFY
 * per sweep every LEASE_NOTICE_MS, sent by the replica that leased, instead
 * of one in each pick's transaction (a sweep's first pick still notifies in
 * its transaction, through its row going from queued to running). A
 * transaction that notifies takes one lock for the whole database at commit
 * (PostgreSQL queues notifications in commit order), so at 1,000 one-second
 * nodes every pick waited its turn behind the others' commits: a third of
 * the picks' time in bench/scale.ts was spent waiting on it (pg_stat_activity: Lock/object), and with the
 * notification left out the run went from 0.73-0.77 to 0.82 of ideal.
 * postgres-schema.ts's jobs_changed_sweeps no longer notifies a lease;
 * every other change of a job's state it still does, in its transaction.
 *
 * The notice is sent after the pick committed (its own statement), so
 * "heard after commit" holds, up to LEASE_NOTICE_MS late; a notice that
 * fails (the database away) is dropped: the next change of the sweep, or
 * the next lease, tells the live clients again.
 */
import type pg from 'pg';
import { CHANGES_CHANNEL } from './postgres-schema.js';

/** How long a lease's notice may wait for others of its sweep (ms): the dashboard redraws at most a few times a second. */
export const LEASE_NOTICE_MS = 200;

const NOTIFY_SQL = `SELECT pg_notify($1, 'sweep:' || s) FROM unnest($2::text[]) AS s`;

export class LeaseNotices {
  private readonly pending = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  /** Every send, one after another: a flush waits for those before it. */
  private sends: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly delayMs = LEASE_NOTICE_MS,
  ) {}

  /** A job of `sweepId` was leased and committed (after close: nothing, the pool is gone). */
  leased(sweepId: string): void {
    if (this.closed) return;
    this.pending.add(sweepId);
    this.timer ??= setTimeout(() => void this.flush(), this.delayMs).unref();
  }

  /** Sends what is pending now, after any send under way, and waits for it; never throws. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.sends = this.sends.then(() => this.send());
    return this.sends;
  }

  /** Sends what is pending and takes no more: before the pool ends. */
  close(): Promise<void> {
    this.closed = true;
    return this.flush();
  }

  private async send(): Promise<void> {
    if (this.pending.size === 0) return;
    const sweeps = [...this.pending].sort();
    this.pending.clear();
    await this.pool.query(NOTIFY_SQL, [CHANGES_CHANNEL, sweeps]).catch(() => {});
  }
}
