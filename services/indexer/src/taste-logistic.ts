/**
 * Class-weighted, L2-regularised logistic regression over embedding vectors,
 * by accelerated gradient descent: the taste model's learner.
 *
 * Written here rather than taken from npm: ml-logistic-regression (the
 * maintained candidate) has neither class weights nor L2 and wants its input
 * copied into an ml-matrix, which at 100k × 512 is hundreds of MB; this is one
 * pass over the caller's own Float32Arrays per iteration.
 *
 * Features are standardised (training mean and standard deviation per
 * dimension) implicitly: the model is kept in standardised space while
 * training, so the problem is well conditioned (CLIP vectors sit in a narrow
 * cone), and folded back into raw-space weights at the end, so scoring is a
 * plain dot product. Classes are weighted "balanced" (n / (2·n_class)), so ten
 * favorites among thousands of images count as much as the rest. Full batch,
 * no randomness: the same data gives the same model.
 */

export interface LinearModel {
  /** Raw-space weights: score = sigmoid(weights · x + bias). */
  weights: Float64Array;
  bias: number;
}

export interface TrainOptions {
  /** L2 strength on the standardised weights (the loss is a weighted mean). */
  l2?: number;
  maxIter?: number;
  /** Stop when the gradient's norm falls below this. */
  tolerance?: number;
}

export interface TrainResult extends LinearModel {
  iterations: number;
}

const DEFAULTS = { l2: 1e-2, maxIter: 300, tolerance: 1e-5 };

export function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

export function linearScore(m: LinearModel, x: Float32Array): number {
  let z = m.bias;
  const w = m.weights;
  for (let j = 0; j < w.length; j++) z += w[j]! * x[j]!;
  return sigmoid(z);
}

/** Trains on rows `xs` (all of one dimension) with labels `ys` (true = positive); needs both classes. */
export function trainLogistic(xs: readonly Float32Array[], ys: ArrayLike<boolean>, options: TrainOptions = {}): TrainResult {
  const { l2, maxIter, tolerance } = { ...DEFAULTS, ...options };
  const n = xs.length;
  if (n !== ys.length) throw new Error(`trainLogistic: ${n} rows but ${ys.length} labels`);
  let pos = 0;
  for (let i = 0; i < n; i++) if (ys[i]) pos++;
  if (pos === 0 || pos === n) throw new Error('trainLogistic: needs examples of both classes');
  const d = xs[0]!.length;
  for (const x of xs) if (x.length !== d) throw new Error('trainLogistic: rows differ in dimension');

  // Balanced class weights, normalised so the weights sum to 1 (the loss is a weighted mean).
  const wPos = 1 / (2 * pos);
  const wNeg = 1 / (2 * (n - pos));

  const mean = new Float64Array(d);
  const scale = new Float64Array(d);
  for (const x of xs) for (let j = 0; j < d; j++) mean[j]! += x[j]!;
  for (let j = 0; j < d; j++) mean[j]! /= n;
  for (const x of xs) {
    for (let j = 0; j < d; j++) {
      const c = x[j]! - mean[j]!;
      scale[j]! += c * c;
    }
  }
  // A constant dimension keeps scale 1: its centred value is 0, so its weight never moves.
  for (let j = 0; j < d; j++) scale[j] = Math.sqrt(scale[j]! / n) || 1;

  // θ = (β in standardised space, b). z_i = Σ β_j (x_ij − μ_j)/s_j + b = w·x_i + c with w = β/s, c = b − w·μ.
  const rawOf = (beta: Float64Array, b: number, w: Float64Array): number => {
    let c = b;
    for (let j = 0; j < d; j++) {
      w[j] = beta[j]! / scale[j]!;
      c -= w[j]! * mean[j]!;
    }
    return c;
  };
  const w = new Float64Array(d);
  const acc = new Float64Array(d);
  const label = Uint8Array.from({ length: n }, (_, i) => (ys[i] ? 1 : 0));
  /** Gradient at (beta, b) into gBeta; returns the bias's component. */
  const gradient = (beta: Float64Array, b: number, gBeta: Float64Array): number => {
    const c = rawOf(beta, b, w);
    acc.fill(0);
    let rSum = 0;
    for (let i = 0; i < n; i++) {
      const x = xs[i]!;
      const y = label[i]!;
      const r = (y ? wPos : wNeg) * (sigmoid(c + dot(w, x)) - y);
      rSum += r;
      axpy(acc, r, x);
    }
    for (let j = 0; j < d; j++) gBeta[j] = (acc[j]! - mean[j]! * rSum) / scale[j]! + l2 * beta[j]!;
    return rSum;
  };

  const sample = eigenSample(ys, wPos, wNeg);
  const L = 0.25 * largestEigen(sample.rows.map((i) => xs[i]!), (k) => sample.weights[k]!, mean, scale) * (sample.sampled ? 1.25 : 1) + l2;
  const step = 1 / L;
  let beta = new Float64Array(d);
  let b = 0;
  let yBeta = new Float64Array(d);
  let yB = 0;
  const g = new Float64Array(d);
  let t = 1;
  let iterations = 0;
  for (; iterations < maxIter; iterations++) {
    const gB = gradient(yBeta, yB, g);
    let norm = gB * gB;
    for (let j = 0; j < d; j++) norm += g[j]! * g[j]!;
    if (Math.sqrt(norm) < tolerance) break;
    const nextBeta = new Float64Array(d);
    for (let j = 0; j < d; j++) nextBeta[j] = yBeta[j]! - step * g[j]!;
    const nextB = yB - step * gB;
    // Adaptive restart (O'Donoghue & Candès): drop the momentum when it points uphill.
    let uphill = gB * (nextB - b);
    for (let j = 0; j < d; j++) uphill += g[j]! * (nextBeta[j]! - beta[j]!);
    const tNext = uphill > 0 ? 1 : (1 + Math.sqrt(1 + 4 * t * t)) / 2;
    const momentum = uphill > 0 ? 0 : (t - 1) / tNext;
    yBeta = new Float64Array(d);
    for (let j = 0; j < d; j++) yBeta[j] = nextBeta[j]! + momentum * (nextBeta[j]! - beta[j]!);
    yB = nextB + momentum * (nextB - b);
    beta = nextBeta;
    b = nextB;
    t = tNext;
  }
  const weights = new Float64Array(d);
  const bias = rawOf(beta, b, weights);
  return { weights, bias, iterations };
}

/** w · x over x's length; unrolled by four, which V8 runs about twice as fast as the plain loop. */
function dot(w: Float64Array, x: Float32Array): number {
  const d = x.length;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let j = 0;
  for (; j + 3 < d; j += 4) {
    s0 += w[j]! * x[j]!;
    s1 += w[j + 1]! * x[j + 1]!;
    s2 += w[j + 2]! * x[j + 2]!;
    s3 += w[j + 3]! * x[j + 3]!;
  }
  for (; j < d; j++) s0 += w[j]! * x[j]!;
  return s0 + s1 + s2 + s3;
}

/** acc += r · x. */
function axpy(acc: Float64Array, r: number, x: Float32Array): void {
  const d = x.length;
  let j = 0;
  for (; j + 3 < d; j += 4) {
    acc[j]! += r * x[j]!;
    acc[j + 1]! += r * x[j + 1]!;
    acc[j + 2]! += r * x[j + 2]!;
    acc[j + 3]! += r * x[j + 3]!;
  }
  for (; j < d; j++) acc[j]! += r * x[j]!;
}

const EIGEN_SAMPLE = 4096;

/**
 * The rows the step size is estimated on: all of them up to EIGEN_SAMPLE per
 * class, else an even stride of that class with its weight scaled up to keep
 * the class's total (the estimate is then given a wider margin).
 */
function eigenSample(ys: ArrayLike<boolean>, wPos: number, wNeg: number): { rows: number[]; weights: number[]; sampled: boolean } {
  const rows: number[] = [];
  const weights: number[] = [];
  let sampled = false;
  for (const cls of [true, false]) {
    const idx: number[] = [];
    for (let i = 0; i < ys.length; i++) if (ys[i] === cls) idx.push(i);
    const stride = Math.max(1, Math.ceil(idx.length / EIGEN_SAMPLE));
    if (stride > 1) sampled = true;
    const kept = idx.filter((_, r) => r % stride === 0);
    const w = ((cls ? wPos : wNeg) * idx.length) / kept.length;
    for (const i of kept) {
      rows.push(i);
      weights.push(w);
    }
  }
  return { rows, weights, sampled };
}

/**
 * Largest eigenvalue of the weighted second-moment matrix of the standardised
 * rows with a constant 1 appended (the Hessian's bound, × 4), by power
 * iteration; a slight overestimate keeps the step safe.
 */
function largestEigen(xs: readonly Float32Array[], sw: (i: number) => number, mean: Float64Array, scale: Float64Array): number {
  const d = mean.length;
  let v = new Float64Array(d + 1).fill(1 / Math.sqrt(d + 1));
  let lambda = 1;
  for (let it = 0; it < 20; it++) {
    // (X̃ᵀ D X̃) v with X̃ = [(x − μ)/s, 1], computed as raw-space dot products.
    const u = new Float64Array(d);
    let c = v[d]!;
    for (let j = 0; j < d; j++) {
      u[j] = v[j]! / scale[j]!;
      c -= u[j]! * mean[j]!;
    }
    const acc = new Float64Array(d);
    let rSum = 0;
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i]!;
      const r = sw(i) * (c + dot(u, x));
      rSum += r;
      axpy(acc, r, x);
    }
    const out = new Float64Array(d + 1);
    for (let j = 0; j < d; j++) out[j] = (acc[j]! - mean[j]! * rSum) / scale[j]!;
    out[d] = rSum;
    let norm = 0;
    for (let j = 0; j <= d; j++) norm += out[j]! * out[j]!;
    norm = Math.sqrt(norm);
    if (!norm) break;
    const next = norm;
    for (let j = 0; j <= d; j++) out[j]! /= norm;
    v = out;
    if (Math.abs(next - lambda) < 1e-3 * next) {
      lambda = next;
      break;
    }
    lambda = next;
  }
  return lambda * 1.1;
}
