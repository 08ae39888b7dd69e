/**
 * A big sweep stored in parts on SQLite (SqliteEngine.createSweep; the loop
 * is sweep-parts.ts), one transaction and one event-loop turn each. What
 * happens to the sweep meanwhile reaches the parts still to come: a cancel
 * (store.storeSweepPart stores them cancelled) and a failure of its queued
 * jobs for want of a capable node (failQueued: they are failed too). A sweep
 * whose parts stop short is cut to the jobs it has and cancelled
 * (store.endSweepShort); if that fails too, the next settle pass does it, and
 * a coordinator that stopped while storing does it at its next start.
 */
import { memoJson } from '../store/sweeps.js';
import type { Store } from '../store.js';
import type { NewJob, NewSweep } from './engine.js';
import { storeInParts } from './sweep-parts.js';

export { SWEEP_PART_JOBS } from './sweep-parts.js';

/** The sweeps a process is storing in parts, per Store (every engine over it shares them). */
export class SweepParts {
  /** Sweep id → why its queued jobs were failed meanwhile (failQueued), if they were. */
  private readonly storing = new Map<string, { failed?: string }>();
  /** Sweeps whose parts stopped short and could not be cancelled then (the database failed too). */
  private readonly unended = new Map<string, number>();

  constructor(
    private readonly store: Store,
    /** Runs a write whose commit wakes pickers (it queues jobs). */
    private readonly queueing: <T>(work: () => T) => T,
  ) {}

  /**
   * Stores `jobs` (exactly `expected` of them) as sweep `id`, part by part;
   * resolves once all are stored. Each part commits on its own, whoever
   * calls (`unbatched`: a part that joined an event-loop turn could be lost
   * with it after the nodes were told of it).
   */
  async create(sweep: NewSweep, expected: number, jobs: Iterable<NewJob>, id: string): Promise<void> {
    await this.store.unbatched(async () => {
      const json = memoJson();
      const progress: { failed?: string } = {};
      const modelHash = sweep.modelHash ?? '';
      await storeInParts(id, expected, jobs[Symbol.iterator](), {
        begin: async (made, n) => {
          this.queueing(() => this.store.beginSweepInParts(sweep, expected, made, n, id, json));
          this.storing.set(id, progress);
        },
        part: async (made, n) => {
          const stored = this.queueing(() => this.store.storeSweepPart(id, modelHash, made, n, json));
          if (progress.failed) this.store.failQueued(id, progress.failed);
          return stored;
        },
        finish: async () => void this.storing.delete(id),
        endShort: async (stored) => {
          this.storing.delete(id);
          return this.endShort(id, stored);
        },
      }, sweep.partStored, { firstFillsWaitMs: this.store.opts.firstFillsWaitMs });
    });
  }

  /** A sweep's queued jobs were failed (no capable node): if it is being stored, its later parts are failed too. */
  failedQueued(sweepId: string, reason: string): void {
    const progress = this.storing.get(sweepId);
    if (progress) progress.failed = reason;
  }

  /** Cancels the sweeps whose parts stopped short and could not be cancelled then (the settle pass). */
  endUnended(): void {
    for (const [id, stored] of this.unended) if (this.endShort(id, stored) === undefined) this.unended.delete(id);
  }

  /** At start: cancels every sweep whose parts stopped short (the coordinator stopped while storing it), but those stored now. */
  endStoredShort(): string[] {
    const short = this.store.sweepsStoredShort().filter((s) => !this.storing.has(s.id));
    for (const s of short) this.store.endSweepShort(s.id, s.stored);
    return short.map((s) => s.id);
  }

  /** Ends a sweep whose parts stopped short; returns why it could not (then endUnended tries again). */
  private endShort(id: string, stored: number): unknown {
    try {
      this.store.endSweepShort(id, stored);
      this.unended.delete(id);
      return undefined;
    } catch (err) {
      this.unended.set(id, stored);
      return err;
    }
  }
}
