/**
 * The taste model: a logistic regression on the stored CLIP vectors that
 * learns which images this person stars (taste-data.ts says where the labels
 * come from). Retrained in the background, debounced, whenever favorites
 * change, and on demand when asked while out of date; kept in the catalog's
 * meta table with its training-set size and cross-validated AUC, so a restart
 * has it at once. With fewer than MIN_FAVORITES favorites there is no model:
 * callers say so rather than invent a score.
 *
 * Training runs on the event loop, one fit at a time with a yield between
 * the cross-validation folds; the training set is bounded (taste-data.ts), so
 * each fit holds the loop for well under a second at 20,000 × 512.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Logger } from '@nightshift/common';
import type { IndexStore } from './store.js';
import { MAX_NEGATIVES, tasteTrainingSet, usableFavorites } from './taste-data.js';
import { linearScore, trainLogistic, type LinearModel, type TrainOptions } from './taste-logistic.js';
import { foldAucs } from './taste-metrics.js';
import { rankImages, type ScoredImage } from './ranking.js';

export type { ScoredImage } from './ranking.js';

export const MIN_FAVORITES = 10;
const META_KEY = 'taste.model';
const FORMAT = 1;

export interface TasteModelInfo {
  /** The CLIP model whose vectors it was trained on. */
  clipModel: string;
  positives: number;
  negatives: number;
  /** k-fold cross-validated AUC on the training set; null when there were too few of a class for 2 folds. */
  cvAuc: number | null;
  folds: number;
  trainedAt: string;
  trainMs: number;
}

export interface TasteModel extends TasteModelInfo, LinearModel {}

export interface TasteOptions extends TrainOptions {
  /** Quiet time after the last favorite change before retraining. */
  debounceMs?: number;
  /** Folds for the cross-validated AUC. */
  folds?: number;
  /** Favorites needed before there is a model. */
  minFavorites?: number;
  /** Negatives kept for training (an even stride beyond this). */
  maxNegatives?: number;
}

export class TooFewFavorites extends Error {
  constructor(
    readonly favorites: number,
    readonly needed: number,
  ) {
    super(`too few favorites to learn from: ${favorites} of the ${needed} needed (star more images)`);
  }
}

export class Taste {
  private current: TasteModel | undefined;
  /** Favorites changed since `current` was trained (or there is none yet). */
  private dirty: boolean;
  private timer: NodeJS.Timeout | undefined;
  /** The training in flight (or the last one): trainings run one after another. */
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private readonly minFavorites: number;

  constructor(
    private readonly store: IndexStore,
    private readonly log: Logger,
    private readonly opts: TasteOptions = {},
  ) {
    this.minFavorites = opts.minFavorites ?? MIN_FAVORITES;
    this.current = this.load();
    this.dirty = !this.current;
  }

  /** Favorites changed: retrain once they have been quiet for debounceMs. */
  favoritesChanged(): void {
    this.dirty = true;
    this.schedule();
  }

  /** Retrain in the background soon (e.g. at start, when the stored model may be out of date). */
  schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.dirty) this.retrain().catch((err: unknown) => this.log.warn({ err: String(err) }, 'taste model training failed'));
    }, this.opts.debounceMs ?? 1_000);
    this.timer.unref();
  }

  /** Cancels a pending retrain and waits for one in flight (before the catalog closes). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.queue.catch(() => undefined);
  }

  /** The up-to-date model (trained now if favorites changed since), or TooFewFavorites. */
  async model(): Promise<TasteModel> {
    if (this.dirty) await this.retrain();
    else await this.queue.catch(() => undefined);
    if (this.current) return this.current;
    throw new TooFewFavorites(usableFavorites(this.store.catalog, this.store.model.id), this.minFavorites);
  }

  /** The stored model's facts, without training. */
  info(): TasteModelInfo | undefined {
    if (!this.current) return undefined;
    const { weights: _w, bias: _b, ...info } = this.current;
    return info;
  }

  /** Trains on the catalog's labels (after any training in flight) and stores the result; undefined (and nothing stored) with too few favorites. */
  retrain(): Promise<TasteModel | undefined> {
    const run = this.queue.then(() => this.train());
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async train(): Promise<TasteModel | undefined> {
    if (this.stopped) return this.current;
    this.dirty = false;
    const clipModel = this.store.model.id;
    const started = performance.now();
    const set = tasteTrainingSet(this.store.catalog, clipModel, this.opts.maxNegatives ?? MAX_NEGATIVES);
    if (set.positives < this.minFavorites || set.negatives === 0) {
      if (this.current) this.log.info({ positives: set.positives, negatives: set.negatives }, 'taste model dropped: too few labels');
      this.current = undefined;
      this.store.catalog.setMeta(META_KEY, '');
      return undefined;
    }
    const trained = trainLogistic(set.vectors, set.labels, this.opts);
    const aucs: number[] = [];
    for (const a of foldAucs(set.vectors, set.labels, this.opts.folds ?? 5, this.opts)) {
      aucs.push(a);
      await yieldToLoop();
      if (this.stopped) return this.current;
    }
    const cv = aucs.length ? { auc: aucs.reduce((x, y) => x + y, 0) / aucs.length, folds: aucs.length } : undefined;
    const model: TasteModel = {
      clipModel,
      positives: set.positives,
      negatives: set.negatives,
      cvAuc: cv ? cv.auc : null,
      folds: cv?.folds ?? 0,
      trainedAt: new Date().toISOString(),
      trainMs: Math.round(performance.now() - started),
      weights: trained.weights,
      bias: trained.bias,
    };
    this.current = model;
    this.store.catalog.setMeta(META_KEY, JSON.stringify({ format: FORMAT, ...model, weights: [...model.weights] }));
    this.log.info({ positives: model.positives, negatives: model.negatives, cvAuc: model.cvAuc, ms: model.trainMs, iterations: trained.iterations }, 'taste model trained');
    return model;
  }

  /** A sweep's images, best first by the taste model (scored exactly); `starred: false` leaves out the ones already starred. */
  async best(sweep: string, k: number, o: { starred?: boolean } = {}): Promise<{ results: ScoredImage[]; model: TasteModelInfo }> {
    const model = await this.model();
    const { ids, vectors } = this.store.catalog.vectorsWhere({ model: this.store.model.id, sweep });
    const scores = new Map(ids.map((id, i) => [id, linearScore(model, vectors[i]!)]));
    return { results: rankImages(this.store.catalog, scores, k, o), model: this.info()! };
  }

  /**
   * Every image, best first. The score is monotone in w·x, so the top k are
   * the nearest neighbours of w/|w| in the (inner-product) vector index: no
   * scan of the catalog. `starred: false` asks for more to make up for the
   * starred ones it leaves out.
   */
  async bestOverall(k: number, o: { starred?: boolean } = {}): Promise<{ results: ScoredImage[]; model: TasteModelInfo }> {
    const model = await this.model();
    const w = model.weights;
    let norm = 0;
    for (const v of w) norm += v * v;
    const q = Float32Array.from(w, (v) => v / (Math.sqrt(norm) || 1));
    const extra = o.starred === false ? usableFavorites(this.store.catalog, this.store.model.id) : 0;
    const hits = this.store.index.search(q, k + extra);
    const scores = new Map<number, number>();
    for (const h of hits) {
      const v = this.store.catalog.vector(h.id);
      if (v) scores.set(h.id, linearScore(model, v));
    }
    return { results: rankImages(this.store.catalog, scores, k, o), model: this.info()! };
  }

  /** The stored model when it is for this CLIP model; the next request or timer retrains it if favorites moved meanwhile. */
  private load(): TasteModel | undefined {
    const raw = this.store.catalog.meta(META_KEY);
    if (!raw) return undefined;
    try {
      const m = JSON.parse(raw) as Omit<TasteModel, 'weights'> & { format: number; weights: number[] };
      if (m.format !== FORMAT || m.clipModel !== this.store.model.id || m.weights.length !== this.store.model.dim) return undefined;
      const { format: _f, ...rest } = m;
      return { ...rest, weights: Float64Array.from(m.weights) };
    } catch {
      return undefined;
    }
  }
}
