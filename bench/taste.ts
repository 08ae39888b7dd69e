/**
 * The taste model (services/indexer/src/taste*.ts): how many stars it needs,
 * how honest its cross-validated AUC is, and how long it takes to train.
 *
 * 1. Synthetic night, tiny CLIP: procedural renders embedded by the built-in
 *    nightshift-tiny-clip; hidden rule "yellow in the prompt" (colour is what
 *    that model encodes). A labelled evening sweep of S matching images, all
 *    starred, plus 5·S that were not; an unlabelled night sweep of --night
 *    images, a quarter matching. For S = 5, 10, 20, 50: precision@20 on the
 *    night (starred images excluded, as suggestions), the CV AUC the indexer
 *    would report, and the AUC on the night measured with the hidden rule.
 * 2. The same on CLIP-like 512-d vectors (x = normalise(W·z + ε), z in a 64-d
 *    latent space; the rule is a noisy linear cut in z), where the rule is not
 *    perfectly learnable, so the AUCs say something; means over --draws
 *    independent draws, and the mean gap between CV and held-out AUC.
 * 3. Training time on --n random 512-d unit vectors (10 % positive): one fit,
 *    and the 5-fold cross-validation the indexer runs after it.
 * 4. The aesthetic head (services/indexer/src/aesthetic*.ts): with no stars,
 *    precision@20 and AUC of the built-in nightshift-tiny-aesthetic head
 *    ("likes yellow") on the same night; and the indexer's scoring rate
 *    (one onnxruntime thread, as it runs) for --aesthetic-n 768-d embeddings
 *    through a head of the LAION aesthetic predictor's shape (Linear
 *    768→1024→128→64→16→1, random weights: only the time means anything).
 *
 *   node --import tsx bench/taste.ts [--n 100000] [--night 400] [--draws 8] [--aesthetic-n 20000] [--skip-clip]
 * The last line is JSON.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { COLOR_NAMES, SHAPES } from '@nightshift/common';
import { fixtureImage } from '@nightshift/devfarm';
import { attr, ClipEmbedder, DataType, ensureTinyAesthetic, ensureTinyClip, GraphBuilder } from '@nightshift/models';
import { loadAestheticHead } from '../services/indexer/src/aesthetic-head.js';
import { linearScore, trainLogistic } from '../services/indexer/src/taste-logistic.js';
import { auc, crossValidatedAuc, seededRandom } from '../services/indexer/src/taste-metrics.js';

const { values: args } = parseArgs({
  options: {
    n: { type: 'string', default: '100000' },
    night: { type: 'string', default: '400' },
    'skip-clip': { type: 'boolean', default: false },
    draws: { type: 'string', default: '8' },
    'aesthetic-n': { type: 'string', default: '20000' },
  },
});
const DRAWS = Number(args.draws);
const N = Number(args.n);
const NIGHT = Number(args.night);
const AESTHETIC_N = Number(args['aesthetic-n']);
const STARS = [5, 10, 20, 50];

interface Labelled {
  x: Float32Array;
  match: boolean;
}

interface Row {
  stars: number;
  precisionAt20: number;
  cvAuc: number | null;
  heldOutAuc: number;
  /** Mean |CV AUC − held-out AUC| over the draws (averaged rows only). */
  meanGap?: number;
}

/** Means over several independent draws: with few stars one draw says little (the CV AUC of 10 positives varies by ±0.15). */
function averaged(draws: Row[][]): Row[] {
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return draws[0]!.map((_, i) => {
    const rows = draws.map((d) => d[i]!);
    return {
      stars: rows[0]!.stars,
      precisionAt20: mean(rows.map((r) => r.precisionAt20)),
      cvAuc: mean(rows.map((r) => r.cvAuc ?? Number.NaN)),
      heldOutAuc: mean(rows.map((r) => r.heldOutAuc)),
      meanGap: mean(rows.map((r) => Math.abs((r.cvAuc ?? Number.NaN) - r.heldOutAuc))),
    };
  });
}

/** Trains on S starred matches + 5·S unstarred, as the indexer would, and judges the night by the hidden rule. */
function evaluate(matches: Labelled[], others: Labelled[], night: Labelled[], stars: number): Row {
  const train = [...matches.slice(0, stars), ...others.slice(0, 5 * stars)];
  const xs = train.map((t) => t.x);
  const ys = train.map((t) => t.match);
  const model = trainLogistic(xs, ys);
  const cv = crossValidatedAuc(xs, ys, 5);
  const scores = night.map((n) => linearScore(model, n.x));
  const order = scores.map((s, i) => [s, i] as const).sort((a, b) => b[0] - a[0]);
  const hits = order.slice(0, 20).filter(([, i]) => night[i]!.match).length;
  return { stars, precisionAt20: hits / 20, cvAuc: cv ? cv.auc : null, heldOutAuc: auc(scores, night.map((n) => n.match)) };
}

function print(title: string, rows: Row[]): void {
  console.log(`\n${title}\n  stars   precision@20   CV AUC   held-out AUC   mean |gap|`);
  for (const r of rows) {
    const gap = r.meanGap === undefined ? '' : r.meanGap.toFixed(3).padStart(12);
    console.log(`  ${String(r.stars).padStart(5)}   ${r.precisionAt20.toFixed(2).padStart(12)}   ${(r.cvAuc?.toFixed(3) ?? '  -  ').padStart(6)}   ${r.heldOutAuc.toFixed(3).padStart(12)}   ${gap}`);
  }
}

/** With no stars: the built-in aesthetic head's ranking of the night, judged by the hidden rule. */
interface AestheticRow {
  precisionAt20: number;
  auc: number;
}

async function tinyClipNight(): Promise<{ rows: Row[]; aesthetic: AestheticRow }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-taste-'));
  const embedder = await ClipEmbedder.load(await ensureTinyClip(join(dir, 'models')));
  try {
    const rnd = seededRandom(11);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
    const others = COLOR_NAMES.filter((c) => c !== 'yellow');
    const object = (colors: readonly string[]) => `a ${pick(colors)} ${pick(SHAPES)}`;
    const prompt = (yellow: boolean) => {
      const first = object(yellow ? ['yellow'] : others);
      return rnd() < 0.5 ? first : `${object(others)} and ${first}`;
    };
    const wanted = [
      ...Array.from({ length: 50 }, () => true),
      ...Array.from({ length: 250 }, () => false),
      ...Array.from({ length: NIGHT }, (_, i) => i % 4 === 0),
    ];
    const prompts = wanted.map(prompt);
    const images = await Promise.all(prompts.map((p, i) => fixtureImage({ prompt: p, seed: i + 1, size: 64 }).then((f) => f.png)));
    const vectors: Float32Array[] = [];
    for (let i = 0; i < images.length; i += 64) vectors.push(...(await embedder.embedImages(images.slice(i, i + 64))));
    const all = vectors.map((x, i) => ({ x, match: prompts[i]!.includes('yellow') }));
    const night = all.slice(300);
    const head = await loadAestheticHead(await ensureTinyAesthetic(join(dir, 'models')), embedder.dim);
    const scores = [...(await head.score(night.map((n) => n.x)))];
    await head.dispose();
    const top = scores.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]).slice(0, 20);
    const aesthetic = { precisionAt20: top.filter(([, i]) => night[i]!.match).length / 20, auc: auc(scores, night.map((n) => n.match)) };
    return { rows: STARS.map((s) => evaluate(all.slice(0, 50), all.slice(50, 300), night, s)), aesthetic };
  } finally {
    await embedder.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

function clipLike(seed: number): Row[] {
  const rnd = seededRandom(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd());
  const D = 512;
  const LATENT = 64;
  const W = Array.from({ length: D * LATENT }, () => gauss() / Math.sqrt(LATENT));
  const u = Array.from({ length: LATENT }, (_, i) => (i < 4 ? 0.5 : 0)); // the rule: a direction in the latent space
  const make = (want: boolean | undefined): Labelled => {
    for (;;) {
      const z = Array.from({ length: LATENT }, gauss);
      // Label noise: the rule is a cut on the latent direction plus a little luck.
      const match = z.reduce((s, v, i) => s + v * u[i]!, 0) + 0.3 * gauss() > 1.2;
      if (want !== undefined && match !== want) continue;
      const x = new Float32Array(D);
      let norm = 0;
      for (let d = 0; d < D; d++) {
        let v = 2 + 0.8 * gauss(); // a shared offset: CLIP vectors sit in a narrow cone
        for (let k = 0; k < LATENT; k++) v += W[d * LATENT + k]! * z[k]!;
        x[d] = v;
        norm += v * v;
      }
      for (let d = 0; d < D; d++) x[d]! /= Math.sqrt(norm);
      return { x, match };
    }
  };
  const matches = Array.from({ length: 50 }, () => make(true));
  const others = Array.from({ length: 250 }, () => make(false));
  const night = Array.from({ length: NIGHT }, () => make(undefined));
  return STARS.map((s) => evaluate(matches, others, night, s));
}

function trainingTime(): { n: number; fitMs: number; iterations: number; cvMs: number } {
  const rnd = seededRandom(3);
  const D = 512;
  const xs: Float32Array[] = [];
  const ys: boolean[] = [];
  for (let i = 0; i < N; i++) {
    const x = new Float32Array(D);
    let s = 0;
    for (let d = 0; d < D; d++) {
      x[d] = rnd() - 0.5;
      s += x[d]! * x[d]!;
    }
    for (let d = 0; d < D; d++) x[d]! /= Math.sqrt(s);
    xs.push(x);
    ys.push(rnd() < 0.1);
  }
  let t = performance.now();
  const m = trainLogistic(xs, ys);
  const fitMs = performance.now() - t;
  t = performance.now();
  crossValidatedAuc(xs, ys, 5);
  const cvMs = performance.now() - t;
  return { n: N, fitMs: Math.round(fitMs), iterations: m.iterations, cvMs: Math.round(cvMs) };
}

/** Rows per second through a LAION-shaped head (random weights), one onnxruntime thread as in the indexer. */
async function aestheticRate(): Promise<{ n: number; dim: number; ms: number; rowsPerS: number }> {
  const rnd = seededRandom(5);
  const widths = [768, 1024, 128, 64, 16, 1];
  const g = new GraphBuilder('laion_shaped');
  let x = g.input('input', DataType.FLOAT, ['batch', widths[0]!]);
  for (let l = 1; l < widths.length; l++) {
    const [i, o] = [widths[l - 1]!, widths[l]!];
    const w = Float32Array.from({ length: o * i }, () => (rnd() - 0.5) / Math.sqrt(i));
    x = g.op('Gemm', [x, g.floats(`w${l}`, [o, i], w), g.floats(`b${l}`, [o], new Float32Array(o))], { transB: attr.int(1) }, l === widths.length - 1 ? 'score' : undefined);
  }
  g.output('score', DataType.FLOAT, ['batch', 1]);
  const dir = mkdtempSync(join(tmpdir(), 'bench-aesthetic-'));
  try {
    const file = join(dir, 'laion-shaped.onnx');
    writeFileSync(file, g.toBytes());
    const head = await loadAestheticHead(file, widths[0]!);
    const xs = Array.from({ length: AESTHETIC_N }, () => Float32Array.from({ length: widths[0]! }, () => rnd() - 0.5));
    const t = performance.now();
    await head.score(xs);
    const ms = performance.now() - t;
    await head.dispose();
    return { n: AESTHETIC_N, dim: widths[0]!, ms: Math.round(ms), rowsPerS: Math.round(AESTHETIC_N / (ms / 1000)) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`taste model bench: ${cpus().length} cpus, load ${loadavg()[0]!.toFixed(1)}`);
const night = args['skip-clip'] ? undefined : await tinyClipNight();
const tiny = night?.rows ?? [];
if (tiny.length) print(`synthetic night, tiny CLIP (${NIGHT} night images, rule "yellow"):`, tiny);
if (night) console.log(`  no stars, nightshift-tiny-aesthetic head: precision@20 ${night.aesthetic.precisionAt20.toFixed(2)}, AUC ${night.aesthetic.auc.toFixed(3)}`);
const synthetic = averaged(Array.from({ length: DRAWS }, (_, i) => clipLike(101 * (i + 1))));
print(`CLIP-like 512-d vectors (${NIGHT} night images, noisy latent rule, mean of ${DRAWS} draws):`, synthetic);
const time = trainingTime();
console.log(`\ntraining on ${time.n} random 512-d embeddings: fit ${time.fitMs} ms (${time.iterations} iterations), 5-fold CV ${time.cvMs} ms`);
const rate = await aestheticRate();
console.log(`aesthetic scoring, LAION-shaped head: ${rate.n} ${rate.dim}-d embeddings in ${rate.ms} ms (${rate.rowsPerS} rows/s, one thread)`);
console.log(JSON.stringify({ bench: 'taste', tinyClip: tiny, tinyAesthetic: night?.aesthetic ?? null, clipLike: synthetic, training: time, aestheticScoring: rate }));
