/**
 * The taste model: a logistic regression on the stored CLIP vectors that
 * learns which images a person stars (taste-data.ts says where the labels
 * come from), one model per user: B's ranking never learns from A's stars.
 * Retrained in the background, debounced, whenever that user's favorites
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
import { LOCAL_USER } from './catalog-schema.js';

export type { ScoredImage } from './ranking.js';

export const MIN_FAVORITES = 10;
/** Each user's model in the catalog's meta table (catalog schema 3 moved the one model of before to `local`'s). */
const metaKey = (user: string) => `taste.model:${user}`;
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

/** One user's model and whether their favorites moved since it was trained. */
interface UserTaste {
  current: TasteModel | undefined;
  dirty: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** Models of this many users at most stay in memory (each ~4 KB at 512 dims); the others are read back from the catalog when asked. */
const MAX_CACHED_USERS = 1_000;

export class Taste {
  /** Per user (the coordinator's, `local` without one): each learns from their own stars only. */
  private readonly users = new Map<string, UserTaste>();
  /** The training in flight (or the last one): trainings run one after another, whoever they are for. */
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private readonly minFavorites: number;

  constructor(
    private readonly store: IndexStore,
    private readonly log: Logger,
    private readonly opts: TasteOptions = {},
  ) {
    this.minFavorites = opts.minFavorites ?? MIN_FAVORITES;
  }

  /** `user`'s state, their stored model read on first use. */
  private of(user: string): UserTaste {
    let u = this.users.get(user);
    if (!u) {
      if (this.users.size >= MAX_CACHED_USERS) this.evictOne();
      const current = this.load(user);
      this.users.set(user, (u = { current, dirty: !current, timer: undefined }));
    }
    return u;
  }

  /** Drops the oldest idle user (their model is in the catalog's meta table; a dirty one is kept). */
  private evictOne(): void {
    for (const [name, u] of this.users) {
      if (!u.dirty && !u.timer) {
        this.users.delete(name);
        return;
      }
    }
  }

  /** `user`'s favorites changed: retrain their model once they have been quiet for debounceMs. */
  favoritesChanged(user: string = LOCAL_USER): void {
    this.of(user).dirty = true;
    this.schedule(user);
  }

  /** Images indexed while stopped are labels too: every user who starred something is retrained in the background. */
  everyoneChanged(): void {
    for (const user of this.store.catalog.favoriteUsers()) this.favoritesChanged(user);
  }

  /** Retrain `user`'s model in the background soon. */
  schedule(user: string = LOCAL_USER): void {
    const u = this.of(user);
    if (u.timer) clearTimeout(u.timer);
    u.timer = setTimeout(() => {
      u.timer = undefined;
      if (u.dirty) this.retrain(user).catch((err: unknown) => this.log.warn({ user, err: String(err) }, 'taste model training failed'));
    }, this.opts.debounceMs ?? 1_000);
    u.timer.unref();
  }

  /** Cancels pending retrains and waits for one in flight (before the catalog closes). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const u of this.users.values()) {
      if (u.timer) clearTimeout(u.timer);
      u.timer = undefined;
    }
    await this.queue.catch(() => undefined);
  }

  /** `user`'s up-to-date model (trained now if their favorites changed since), or TooFewFavorites. */
  async model(user: string = LOCAL_USER): Promise<TasteModel> {
    if (this.of(user).dirty) await this.retrain(user);
    else await this.queue.catch(() => undefined);
    const current = this.of(user).current;
    if (current) return current;
    throw new TooFewFavorites(usableFavorites(this.store.catalog, this.store.model.id, user), this.minFavorites);
  }

  /** `user`'s stored model's facts, without training. */
  info(user: string = LOCAL_USER): TasteModelInfo | undefined {
    const current = this.of(user).current;
    if (!current) return undefined;
    const { weights: _w, bias: _b, ...info } = current;
    return info;
  }

  /** Trains `user`'s model on their labels (after any training in flight) and stores it; undefined (and nothing stored) with too few favorites. */
  retrain(user: string = LOCAL_USER): Promise<TasteModel | undefined> {
    const run = this.queue.then(() => this.train(user));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async train(user: string): Promise<TasteModel | undefined> {
    const u = this.of(user);
    if (this.stopped) return u.current;
    u.dirty = false;
    const clipModel = this.store.model.id;
    const started = performance.now();
    const set = tasteTrainingSet(this.store.catalog, clipModel, user, this.opts.maxNegatives ?? MAX_NEGATIVES);
    if (set.positives < this.minFavorites || set.negatives === 0) {
      if (u.current) this.log.info({ user, positives: set.positives, negatives: set.negatives }, 'taste model dropped: too few labels');
      u.current = undefined;
      this.store.catalog.setMeta(metaKey(user), '');
      return undefined;
    }
    const trained = trainLogistic(set.vectors, set.labels, this.opts);
    const aucs: number[] = [];
    for (const a of foldAucs(set.vectors, set.labels, this.opts.folds ?? 5, this.opts)) {
      aucs.push(a);
      await yieldToLoop();
      if (this.stopped) return u.current;
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
    u.current = model;
    this.store.catalog.setMeta(metaKey(user), JSON.stringify({ format: FORMAT, ...model, weights: [...model.weights] }));
    this.log.info({ user, positives: model.positives, negatives: model.negatives, cvAuc: model.cvAuc, ms: model.trainMs, iterations: trained.iterations }, 'taste model trained');
    return model;
  }

  /** A sweep's images, best first by `user`'s taste model (scored exactly); `starred: false` leaves out the ones they starred. */
  async best(user: string, sweep: string, k: number, o: { starred?: boolean } = {}): Promise<{ results: ScoredImage[]; model: TasteModelInfo }> {
    const model = await this.model(user);
    const { ids, vectors } = this.store.catalog.vectorsWhere({ model: this.store.model.id, sweep });
    const scores = new Map(ids.map((id, i) => [id, linearScore(model, vectors[i]!)]));
    return { results: rankImages(this.store.catalog, scores, k, { ...o, user }), model: infoOf(model) };
  }

  /**
   * Every image, best first. The score is monotone in w·x, so the top k are
   * the nearest neighbours of w/|w| in the (inner-product) vector index: no
   * scan of the catalog. `starred: false` asks for more to make up for the
   * starred ones it leaves out.
   */
  async bestOverall(user: string, k: number, o: { starred?: boolean } = {}): Promise<{ results: ScoredImage[]; model: TasteModelInfo }> {
    const model = await this.model(user);
    const w = model.weights;
    let norm = 0;
    for (const v of w) norm += v * v;
    const q = Float32Array.from(w, (v) => v / (Math.sqrt(norm) || 1));
    const extra = o.starred === false ? usableFavorites(this.store.catalog, this.store.model.id, user) : 0;
    const hits = this.store.index.search(q, k + extra);
    const scores = new Map<number, number>();
    for (const h of hits) {
      const v = this.store.catalog.vector(h.id);
      if (v) scores.set(h.id, linearScore(model, v));
    }
    return { results: rankImages(this.store.catalog, scores, k, { ...o, user }), model: infoOf(model) };
  }

  /** `user`'s stored model when it is for this CLIP model; the next request or timer retrains it if favorites moved meanwhile. */
  private load(user: string): TasteModel | undefined {
    const raw = this.store.catalog.meta(metaKey(user));
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

/** A model's facts without its weights. */
function infoOf(model: TasteModel): TasteModelInfo {
  const { weights: _w, bias: _b, ...info } = model;
  return info;
}
