/** The taste model's learner and its metrics on small synthetic data with known answers. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { linearScore, sigmoid, trainLogistic } from './taste-logistic.js';
import { auc, crossValidatedAuc, seededRandom, stratifiedFolds } from './taste-metrics.js';

/** Gaussian-ish points around ±shift on the first axis, in `dim` dimensions. */
function blobs(nPos: number, nNeg: number, dim: number, shift: number, seed: number) {
  const rnd = seededRandom(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd());
  const xs: Float32Array[] = [];
  const ys: boolean[] = [];
  for (let i = 0; i < nPos + nNeg; i++) {
    const y = i < nPos;
    const x = new Float32Array(dim);
    for (let j = 0; j < dim; j++) x[j] = gauss() * 0.5;
    x[0]! += y ? shift : -shift;
    // An offset on every axis, like CLIP vectors sitting in a narrow cone.
    for (let j = 0; j < dim; j++) x[j]! += 3;
    xs.push(x);
    ys.push(y);
  }
  return { xs, ys };
}

describe('auc', () => {
  test('perfect, reversed, chance and ties', () => {
    assert.equal(auc([0.9, 0.8, 0.2, 0.1], [true, true, false, false]), 1);
    assert.equal(auc([0.1, 0.2, 0.8, 0.9], [true, true, false, false]), 0);
    assert.equal(auc([0.5, 0.5, 0.5, 0.5], [true, false, true, false]), 0.5);
    // One positive above both negatives, one tied with a negative: (2 + 1.5) / 4.
    assert.equal(auc([0.9, 0.4, 0.4, 0.1], [true, true, false, false]), 0.875);
    assert.ok(Number.isNaN(auc([0.3, 0.2], [true, true])));
  });
});

describe('stratifiedFolds', () => {
  test('every fold gets its share of each class, and the split is the same every time', () => {
    const labels = Array.from({ length: 53 }, (_, i) => i % 5 === 0);
    const folds = stratifiedFolds(labels, 5, 7);
    for (let f = 0; f < 5; f++) {
      const inFold = labels.filter((_, i) => folds[i] === f);
      assert.ok(inFold.filter(Boolean).length >= 2, `fold ${f} has positives`);
      assert.ok(inFold.filter((y) => !y).length >= 8, `fold ${f} has negatives`);
    }
    assert.deepEqual(stratifiedFolds(labels, 5, 7), folds);
  });
});

describe('trainLogistic', () => {
  test('separates two blobs in an offset cone, deterministically', () => {
    const { xs, ys } = blobs(30, 300, 16, 1, 1);
    const m = trainLogistic(xs, ys);
    assert.ok(auc(xs.map((x) => linearScore(m, x)), ys) > 0.97);
    const again = trainLogistic(xs, ys);
    assert.deepEqual([...again.weights], [...m.weights]);
    assert.equal(again.bias, m.bias);
  });

  test('class weighting: 10 positives among 1,000 still get scores above one half', () => {
    const { xs, ys } = blobs(10, 1000, 8, 1.5, 2);
    const m = trainLogistic(xs, ys);
    const pos = xs.filter((_, i) => ys[i]).map((x) => linearScore(m, x));
    const meanPos = pos.reduce((a, b) => a + b, 0) / pos.length;
    assert.ok(meanPos > 0.5, `balanced weights keep the minority's scores up (mean ${meanPos})`);
  });

  test('converges to the optimum: the gradient of the regularised loss is ~0 at the result', () => {
    const { xs, ys } = blobs(20, 60, 4, 0.5, 3);
    const m = trainLogistic(xs, ys, { maxIter: 5000, tolerance: 1e-9, l2: 0 });
    // Unregularised optimum in raw space: the weighted residuals are orthogonal to every feature and to 1.
    const wPos = 1 / 40;
    const wNeg = 1 / 120;
    const g = new Float64Array(5);
    xs.forEach((x, i) => {
      const r = (ys[i] ? wPos : wNeg) * (linearScore(m, x) - (ys[i] ? 1 : 0));
      for (let j = 0; j < 4; j++) g[j]! += r * x[j]!;
      g[4]! += r;
    });
    for (const v of g) assert.ok(Math.abs(v) < 1e-5, `gradient component ${v}`);
  });

  test('rejects a single class', () => {
    assert.throws(() => trainLogistic([new Float32Array(2)], [true]), /both classes/);
  });

  test('sigmoid is stable at the extremes', () => {
    assert.equal(sigmoid(1000), 1);
    assert.equal(sigmoid(-1000), 0);
    assert.equal(sigmoid(0), 0.5);
  });
});

describe('crossValidatedAuc', () => {
  test('high for separable data, about one half for noise, undefined with one positive', () => {
    const sep = blobs(20, 100, 8, 1.5, 4);
    assert.ok(crossValidatedAuc(sep.xs, sep.ys, 5)!.auc > 0.95);
    const noise = blobs(40, 200, 8, 0, 5);
    const cv = crossValidatedAuc(noise.xs, noise.ys, 5)!;
    assert.ok(Math.abs(cv.auc - 0.5) < 0.15, `noise gives ~0.5, got ${cv.auc}`);
    assert.equal(cv.folds, 5);
    assert.equal(crossValidatedAuc(sep.xs.slice(0, 21), sep.ys.slice(0, 21).map((_, i) => i === 0), 5), undefined);
  });
});
