/**
 * "No job is queued in any sweep", remembered on PostgreSQL between jobs
 * wakes. At a sweep's tail every node that finishes a job asks for another
 * and finds none: at 1,000 nodes a third of all picks came back empty
 * (7,593 of 21,593 in bench/scale.ts), each a walk of the open sweeps.
 *
 * Once a pick finds nothing and no sweep has a queued job at all, picks are
 * skipped until a jobs wake is heard. Every way a job becomes queued wakes
 * (postgres-schema.ts: a new job, a job back in the queue; a resumed sweep
 * notifies too), on this replica as on the others, and the hub fills its
 * nodes on every jobs wake (app.ts), so nothing waits longer than a
 * notification takes. A queued job that cannot be picked yet (backoff, an
 * exclusion, a card too small) is queued: it keeps the queue from being
 * dry, so time and placement rules need no wake. While the engine is not
 * listening (no subscriber, or its connection lost) nothing is remembered;
 * and a dry answer is trusted for DRY_RECHECK_MS at most.
 */
import type pg from 'pg';

export const DRY_RECHECK_MS = 1_000;

const ANY_QUEUED_SQL = `
SELECT 1 FROM sweeps s
 WHERE s.status IN ('queued', 'running', 'paused')
   AND EXISTS (SELECT 1 FROM sweep_counts c WHERE c.sweep_id = s.id AND c.state = 'queued' AND c.n > 0)
 LIMIT 1`;

export class DryQueue {
  /** The jobs-wake count the queue was found dry at, and until when that is trusted. */
  private dryAt: number | undefined;
  private dryUntil = -Infinity;

  constructor(
    private readonly pool: pg.Pool,
    private readonly jobsWakes: () => number | undefined,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /** Whether a pick would find nothing: the queue was dry and no jobs wake has been heard since. */
  isDry(): boolean {
    const heard = this.jobsWakes();
    return heard !== undefined && heard === this.dryAt && this.clock() < this.dryUntil;
  }

  /** The count to hand foundNothing, read before the pick. */
  mark(): number | undefined {
    return this.jobsWakes();
  }

  /** A pick found nothing; `before` is mark() from before it. Remembers a dry queue when none is queued and no wake came meanwhile. */
  async foundNothing(before: number | undefined): Promise<void> {
    if (before === undefined) return;
    const queued = (await this.pool.query(ANY_QUEUED_SQL)).rows.length > 0;
    if (queued || this.jobsWakes() !== before) return;
    this.dryAt = before;
    this.dryUntil = this.clock() + DRY_RECHECK_MS;
  }
}
