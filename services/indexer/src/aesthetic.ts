/**
 * The aesthetic head at work in the indexer: every image is scored when it is
 * indexed (the consumer calls scoreIds after its commit), rows without a
 * current score (indexed before the head was configured, by another head, or
 * re-embedded) are scored in the background at start and, before a ranking,
 * for the rows that ranking covers; so a ranking never leaves out or invents
 * a score. The scores live in the catalog (aesthetic-store.ts).
 *
 * Scoring runs one page at a time through one queue, so the consumer's
 * batches interleave with a long backfill instead of waiting for all of it.
 */
import type { Logger } from '@nightshift/common';
import type { AestheticHead } from './aesthetic-head.js';
import { rowsById, scoreCounts, scoresOf, setScores, topScored, unscoredOf, unscoredRows, type UnscoredRow } from './aesthetic-store.js';
import { rankImages, type ScoredImage } from './ranking.js';
import type { IndexStore } from './store.js';

export interface AestheticInfo {
  /** The head's id (file name @ hash of its bytes). */
  head: string;
  /** Images of the current CLIP model it has scored, and how many wait. */
  scored: number;
  unscored: number;
}

export interface AestheticOptions {
  /** Rows per backfill step. */
  page?: number;
}

export class Aesthetic {
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private readonly page: number;

  constructor(
    private readonly store: IndexStore,
    readonly head: AestheticHead,
    private readonly log: Logger,
    opts: AestheticOptions = {},
  ) {
    this.page = opts.page ?? 512;
  }

  /** Scores rows just stored (their vectors are read back, so a batch the store deduplicated is fine). Returns rows scored. */
  scoreIds(ids: readonly number[]): Promise<number> {
    if (!ids.length) return Promise.resolve(0);
    return this.run(() => this.scoreRows(rowsById(this.store.catalog, this.store.model.id, ids)));
  }

  /** Scores every current-model row this head has not scored (`sweep`: only that sweep's); returns how many. */
  async backfill(sweep?: string): Promise<number> {
    let done = 0;
    let after = 0;
    while (!this.stopped) {
      const step = await this.run(async () => {
        const rows = unscoredRows(this.store.catalog, this.store.model.id, this.head.id, this.page, after, sweep);
        if (rows.length) after = rows[rows.length - 1]!.id;
        return { read: rows.length, scored: await this.scoreRows(rows) };
      });
      done += step.scored;
      if (step.read < this.page) break;
    }
    return done;
  }

  /** Backfills in the background (at start); failures are logged, and rankings backfill what they need anyway. */
  backfillInBackground(): void {
    const started = performance.now();
    this.backfill().then(
      (n) => {
        if (n) this.log.info({ head: this.head.id, scored: n, ms: Math.round(performance.now() - started) }, 'aesthetic scores backfilled');
      },
      (err: unknown) => this.log.warn({ head: this.head.id, err: String(err) }, 'aesthetic backfill failed'),
    );
  }

  /** A sweep's images, best first by the head's score. */
  async best(sweep: string, k: number, o: { starred?: boolean } = {}): Promise<{ results: ScoredImage[]; aesthetic: AestheticInfo }> {
    await this.backfill(sweep);
    return this.ranked(k, { ...o, sweep });
  }

  /** Every image, best first by the head's score. */
  async bestOverall(k: number, o: { starred?: boolean } = {}): Promise<{ results: ScoredImage[]; aesthetic: AestheticInfo }> {
    await this.backfill();
    return this.ranked(k, o);
  }

  /**
   * The head's scores of some images, by renderKey: those not scored yet
   * (just re-embedded, say) are scored first, so the taste model's results
   * all carry one. Absent: images of another CLIP model, and those the head
   * failed on (logged; the taste ranking does not depend on the head).
   */
  async scoresOf(renderKeys: readonly string[]): Promise<Map<string, number>> {
    const missing = unscoredOf(this.store.catalog, this.store.model.id, this.head.id, renderKeys);
    if (missing.length) {
      await this.run(() => this.scoreRows(missing)).catch((err: unknown) => this.log.warn({ head: this.head.id, err: String(err), n: missing.length }, 'aesthetic scoring failed'));
    }
    return scoresOf(this.store.catalog, this.head.id, renderKeys);
  }

  info(): AestheticInfo {
    return { head: this.head.id, ...scoreCounts(this.store.catalog, this.store.model.id, this.head.id) };
  }

  /** Stops backfilling and waits for the scoring in flight (before the catalog closes). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.queue.catch(() => undefined);
  }

  private ranked(k: number, o: { sweep?: string; starred?: boolean }): { results: ScoredImage[]; aesthetic: AestheticInfo } {
    const scores = topScored(this.store.catalog, this.store.model.id, this.head.id, k, o);
    return { results: rankImages(this.store.catalog, scores, k, o), aesthetic: this.info() };
  }

  private async scoreRows(rows: readonly UnscoredRow[]): Promise<number> {
    if (!rows.length || this.stopped) return 0;
    const scores = await this.head.score(rows.map((r) => r.vector));
    if (this.stopped) return 0; // the catalog may be closing
    return setScores(this.store.catalog, this.head.id, rows.map((r, i) => ({ id: r.id, seq: r.seq, score: scores[i]! })));
  }

  /** One scoring step at a time, in call order. */
  private run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
