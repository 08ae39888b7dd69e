/** How well a scorer ranks positives above negatives: ROC AUC and a stratified k-fold estimate of it. */
import { mulberry32 } from '@nightshift/common';
import { linearScore, trainLogistic, type TrainOptions } from './taste-logistic.js';

/**
 * ROC AUC as the Mann–Whitney statistic: the chance that a random positive
 * scores above a random negative, ties counting one half (average ranks).
 * NaN when either class is missing.
 */
export function auc(scores: ArrayLike<number>, labels: ArrayLike<boolean>): number {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let pos = 0;
  let rankSum = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]!] === scores[order[i]!]) j++;
    const rank = (i + j) / 2 + 1; // average of ranks i+1 … j+1
    for (let t = i; t <= j; t++) {
      if (labels[order[t]!]) {
        pos++;
        rankSum += rank;
      }
    }
    i = j + 1;
  }
  const neg = n - pos;
  if (!pos || !neg) return Number.NaN;
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

/** A small seeded generator (mulberry32): fold assignment must not depend on Math.random. */
export const seededRandom = mulberry32;

/** Fold number (0 … k−1) of each example; each class is shuffled (seeded) and dealt round-robin, so every fold has both. */
export function stratifiedFolds(labels: ArrayLike<boolean>, k: number, seed = 1): Int32Array {
  const rnd = seededRandom(seed);
  const fold = new Int32Array(labels.length);
  for (const cls of [true, false]) {
    const idx: number[] = [];
    for (let i = 0; i < labels.length; i++) if (labels[i] === cls) idx.push(i);
    for (let i = idx.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [idx[i], idx[j]] = [idx[j]!, idx[i]!];
    }
    idx.forEach((i, r) => (fold[i] = r % k));
  }
  return fold;
}

export interface CrossValidation {
  /** Mean of the folds' AUCs. */
  auc: number;
  folds: number;
}

/**
 * k-fold cross-validation of trainLogistic on (xs, ys), one fold's AUC per
 * step (so a caller can yield to its event loop between folds). k is capped
 * by the smaller class, as each fold needs a positive and a negative; nothing
 * is yielded when that leaves fewer than 2 folds.
 */
export function* foldAucs(xs: readonly Float32Array[], ys: readonly boolean[], k: number, options: TrainOptions = {}, seed = 1): Generator<number> {
  const pos = ys.filter(Boolean).length;
  const folds = Math.min(k, pos, ys.length - pos);
  if (folds < 2) return;
  const fold = stratifiedFolds(ys, folds, seed);
  for (let f = 0; f < folds; f++) {
    const trainX: Float32Array[] = [];
    const trainY: boolean[] = [];
    const testScores: number[] = [];
    const testY: boolean[] = [];
    for (let i = 0; i < xs.length; i++) {
      if (fold[i] === f) continue;
      trainX.push(xs[i]!);
      trainY.push(ys[i]!);
    }
    const model = trainLogistic(trainX, trainY, options);
    for (let i = 0; i < xs.length; i++) {
      if (fold[i] !== f) continue;
      testScores.push(linearScore(model, xs[i]!));
      testY.push(ys[i]!);
    }
    yield auc(testScores, testY);
  }
}

/** Mean of foldAucs; undefined with fewer than 2 folds possible. */
export function crossValidatedAuc(xs: readonly Float32Array[], ys: readonly boolean[], k: number, options: TrainOptions = {}, seed = 1): CrossValidation | undefined {
  const aucs = [...foldAucs(xs, ys, k, options, seed)];
  return aucs.length ? { auc: aucs.reduce((a, b) => a + b, 0) / aucs.length, folds: aucs.length } : undefined;
}
