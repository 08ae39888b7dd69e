/**
 * A big sweep stored in parts on SQLite (SqliteEngine.createSweep), one
 * transaction and one event-loop turn each: nodes lease the first part while
 * the rest are made, and no turn holds the loop for the whole sweep (a
 * 100,000-job sweep is most of a second of inserts). The sweep counts every
 * job as queued from the first part (store/sweeps.ts beginSweepInParts), so
 * nothing settles it while parts are missing. What happens to the sweep
 * meanwhile reaches the parts still to come: a cancel (store.storeSweepPart
 * stores them cancelled) and a failure of its queued jobs for want of a
 * capable node (failQueued: they are failed too). A sweep whose parts stop
 * short is cut to the jobs it has and cancelled (store.endSweepShort); if
 * that fails too, the next settle pass does it, and a coordinator that
 * stopped while storing does it at its next start.
 */
import { memoJson } from '../store/sweeps.js';
import type { Store } from '../store.js';
import type { NewJob, NewSweep } from './engine.js';

/** Jobs a part holds: about 20 ms of inserts, and more than 1,000 one-slot nodes lease at their first fill. */
export const SWEEP_PART_JOBS = 2_048;

/** The longest the second part waits for the nodes' fills after the first: a slow node line must not hold the submit. */
export const FIRST_FILLS_WAIT_MS = 1_000;

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
      const made = jobs[Symbol.iterator]();
      const json = memoJson();
      this.queueing(() => this.store.beginSweepInParts(sweep, expected, made, SWEEP_PART_JOBS, id, json));
      const progress: { failed?: string } = {};
      this.storing.set(id, progress);
      let stored = SWEEP_PART_JOBS;
      try {
        for (let first = true; ; first = false) {
          // The first part's fills run before the next part is stored: they share the loop otherwise, and every
          // node's first lease came a part's worth (20 ms) later per part (a 100,000-job sweep: 300 ms, not 120).
          const told = tell(sweep.partStored);
          if (first) await within(told, FIRST_FILLS_WAIT_MS);
          else void told;
          if (stored >= expected) break;
          await new Promise((resolve) => setImmediate(resolve));
          const part = Math.min(SWEEP_PART_JOBS, expected - stored);
          const n = this.queueing(() => this.store.storeSweepPart(id, sweep.modelHash ?? '', made, part, json));
          stored += n;
          if (n < part) throw new Error(`the expansion made ${stored} jobs of the ${expected} it counted`);
          if (progress.failed) this.store.failQueued(id, progress.failed);
        }
        if (!made.next().done) throw new Error(`the expansion made more jobs than the ${expected} it counted`);
      } catch (err) {
        const unended = this.endShort(id, stored);
        const ending = unended ? `is to be cancelled shortly (cancelling it now failed: ${String(unended)})` : 'is cancelled (finished images are kept)';
        throw new Error(`storing sweep ${id} stopped after ${stored} of its ${expected} jobs, so it ${ending}: ${String(err)}`, { cause: err });
      } finally {
        this.storing.delete(id);
      }
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

/** `work`, or `ms` if that comes first. */
async function within(work: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([work, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Tells a listener that a part is stored; its failure is not the sweep's (the hub's next tick offers the work anyway). */
async function tell(listener: (() => void | Promise<void>) | undefined): Promise<void> {
  try {
    await listener?.();
  } catch {
    // Nothing to undo: the part is stored, and the hub's tick fills the nodes.
  }
}
