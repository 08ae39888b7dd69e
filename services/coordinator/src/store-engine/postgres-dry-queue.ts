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

/** Named: prepared once per connection (it has no parameters, which would leave it unnamed, postgres-pool.ts). */
const ANY_QUEUED = {
  name: 'nightshift-any-queued',
  text: `SELECT 1 FROM sweeps s
          WHERE s.status IN ('queued', 'running', 'paused')
            AND EXISTS (SELECT 1 FROM sweep_counts c WHERE c.sweep_id = s.id AND c.state = 'queued' AND c.n > 0)
          LIMIT 1`,
};

export class DryQueue {
  /** The jobs-wake count the queue was found dry at, and until when that is trusted. */
  private dryAt: number | undefined;
  private dryUntil = -Infinity;
  /** A check under way (one at a time), and until when a "some job is queued" answer stands. */
  private checking: Promise<void> | undefined;
  private queuedUntil = -Infinity;
  /** Moves with every forget(): a check that began before one must not remember its answer. */
  private forgotten = 0;
  /** Picks skipped so far (tests, and what the memo saves). */
  skipped = 0;

  constructor(
    private readonly pool: pg.Pool,
    private readonly jobsWakes: () => number | undefined,
    private readonly clock: () => number = () => performance.now(),
    private readonly recheckMs = DRY_RECHECK_MS,
  ) {}

  /** Whether a pick would find nothing: the queue was dry and no jobs wake has been heard since (counted as a skipped pick). */
  isDry(): boolean {
    const heard = this.jobsWakes();
    const dry = heard !== undefined && heard === this.dryAt && this.clock() < this.dryUntil;
    if (dry) this.skipped++;
    return dry;
  }

  /** The count to hand foundNothing, read before the pick. */
  mark(): number | undefined {
    return this.jobsWakes();
  }

  /** This engine queued work: its next pick looks, without waiting for its own wake to come back. */
  forget(): void {
    this.dryAt = undefined;
    this.forgotten++;
  }

  /**
   * A pick found nothing; \`before\` is mark() from before it. Remembers a dry
   * queue when no sweep has a queued job (no wake came since \`before\`, or
   * isDry would not match it). A queue found to hold jobs that cannot be
   * picked now (a backoff, a paused sweep) is not asked about again for
   * DRY_RECHECK_MS, and concurrent empty picks share one check. Never throws:
   * the memo only saves picks.
   */
  async foundNothing(before: number | undefined): Promise<void> {
    if (before === undefined || this.clock() < this.queuedUntil) return;
    this.checking ??= (async () => {
      const forgotten = this.forgotten;
      try {
        const queued = (await this.pool.query(ANY_QUEUED)).rows.length > 0;
        if (queued) this.queuedUntil = this.clock() + this.recheckMs;
        // This engine queued work while the check ran: its snapshot may not have it.
        else if (forgotten === this.forgotten) {
          this.dryAt = before;
          this.dryUntil = this.clock() + this.recheckMs;
        }
      } catch {
        // Not remembered: the next empty pick asks again.
      } finally {
        this.checking = undefined;
      }
    })();
    await this.checking;
  }
}
