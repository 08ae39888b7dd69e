/**
 * The onnx backend's cost per image with the built-in nightshift-tiny-sd on
 * onnxruntime-node's CPU provider, at 64/128/256 px, through the node's own
 * path (OnnxBackend.render / renderBatch: text encoder, sampling with
 * previews as a node makes them, VAE decode, PNG):
 *  - per-step UNet time (one batched cond/uncond pass, guidance 7.5) and
 *    total time per image;
 *  - the share of the image's time outside the model calls (SdModel's
 *    wrappers around session.run, their tensor conversions counted as
 *    inside), broken down into the sampler's math (scale, CFG, step, the
 *    ancestral sampler's torch-CPU noise), preview frames and the PNG encode,
 *    and the same overhead in milliseconds (per step, per image), which does
 *    not grow with the UNet: set it against your model's UNet step;
 *  - batch 1 vs 4 (params.batch: four seeds of one prompt in one UNet batch,
 *    renderBatch) as images/s, and the ratio.
 * The tiny UNet costs about a millisecond per step, so here the share outside
 * is large; a real SD UNet's step costs 10²–10⁴ times more.
 *   node --import tsx bench/onnx-diffusion.ts [STEPS=20] [RUNS=9] [THREADS=1]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TINY_SD_NAME } from '@nightshift/models';
import type { RenderRequest } from '../services/gpu-node/src/backends/backend.js';
import { OnnxBackend } from '../services/gpu-node/src/backends/onnx.js';
import { newRenderTiming, type RenderTiming } from '../services/gpu-node/src/backends/onnx-sample.js';

const STEPS = Number(process.argv[2] ?? 20);
const RUNS = Number(process.argv[3] ?? 9);
const THREADS = Number(process.argv[4] ?? 1);
const SIDES = [64, 128, 256];

const dataDir = mkdtempSync(path.join(tmpdir(), 'nightshift-bench-onnx-'));
const backend = new OnnxBackend({ models: {}, dataDir, threads: THREADS });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const signal = new AbortController().signal;

function req(side: number, seed: number, batch: number): RenderRequest {
  return {
    jobId: `bench-${seed}`,
    renderKey: 'bench',
    kind: 'render',
    prompt: 'a lighthouse at dusk, oil painting',
    seed,
    model: TINY_SD_NAME,
    params: { width: side, height: side, steps: STEPS, guidance: 7.5, sampler: 'euler_a', negative_prompt: 'blurry', batch },
  };
}

/** One call of `batch` images; its wall time and where it went. */
async function run(side: number, seed0: number, batch: number): Promise<{ ms: number; timing: RenderTiming }> {
  const timing = newRenderTiming();
  const reqs = Array.from({ length: batch }, (_, k) => req(side, seed0 + k, batch));
  const t0 = performance.now();
  await backend.renderBatch(reqs, () => {}, signal, timing);
  return { ms: performance.now() - t0, timing };
}

interface Row {
  side: number;
  batch: number;
  unetMsPerStep: number;
  msPerImage: number;
  imagesPerSecond: number;
  outsideModelShare: number;
  /** Of the image's time: the sampler's math (scale, CFG, step, noise), preview frames, the final PNG encode. */
  schedulerShare: number;
  previewShare: number;
  pngShare: number;
  /** The same overhead in ms: sampler math per step, previews and PNG per image. */
  schedulerMsPerStep: number;
  previewMsPerImage: number;
  pngMsPerImage: number;
}
const rows: Row[] = [];
console.log(`nightshift-tiny-sd, CPU, ${STEPS} steps euler_a, guidance 7.5 (batched cond/uncond UNet), previews every 250 ms, ${RUNS} runs (median), onnxruntime threads ${THREADS || 'default'}`);
console.log('side  batch  UNet ms/step  ms/image  images/s  outside model calls  (sampler math, previews, PNG)  sampler ms/step');
try {
  for (const side of SIDES) {
    // Batch 1 and 4 runs alternate, so a busy machine weighs on both alike.
    const runs = new Map<number, { ms: number; timing: RenderTiming }[]>([[1, []], [4, []]]);
    for (const batch of runs.keys()) await run(side, 0, batch); // warm-up: model load, first-run allocations
    for (let r = 0; r < RUNS; r++) for (const [batch, xs] of runs) xs.push(await run(side, 100 * (r + 1), batch));
    for (const [batch, xs] of runs) {
      const of = (f: (x: { ms: number; timing: RenderTiming }) => number) => median(xs.map(f));
      const row: Row = {
        side,
        batch,
        unetMsPerStep: of((x) => x.timing.unetMs / x.timing.unetCalls),
        msPerImage: of((x) => x.ms / batch),
        imagesPerSecond: of((x) => (1000 * batch) / x.ms),
        outsideModelShare: of((x) => (x.ms - x.timing.modelMs) / x.ms),
        schedulerShare: of((x) => x.timing.schedulerMs / x.ms),
        previewShare: of((x) => x.timing.previewMs / x.ms),
        pngShare: of((x) => x.timing.pngMs / x.ms),
        schedulerMsPerStep: of((x) => x.timing.schedulerMs / x.timing.unetCalls),
        previewMsPerImage: of((x) => x.timing.previewMs / batch),
        pngMsPerImage: of((x) => x.timing.pngMs / batch),
      };
      rows.push(row);
      const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
      console.log(
        `${String(side).padEnd(6)}${String(batch).padStart(5)}  ${row.unetMsPerStep.toFixed(2).padStart(12)}  ${row.msPerImage.toFixed(1).padStart(8)}  ${row.imagesPerSecond.toFixed(2).padStart(8)}  ${pct(row.outsideModelShare).padStart(19)}  (${[row.schedulerShare, row.previewShare, row.pngShare].map(pct).join(', ')})  ${row.schedulerMsPerStep.toFixed(3)}`,
      );
    }
  }
} finally {
  await backend.close();
  rmSync(dataDir, { recursive: true, force: true });
}
const batch = SIDES.map((side) => {
  const one = rows.find((r) => r.side === side && r.batch === 1)!;
  const four = rows.find((r) => r.side === side && r.batch === 4)!;
  return { side, batch1ImagesPerSecond: one.imagesPerSecond, batch4ImagesPerSecond: four.imagesPerSecond, batch4Speedup: four.imagesPerSecond / one.imagesPerSecond };
});
console.log(`images/s ratio batch 4 : batch 1: ${batch.map((b) => `${b.side} px ${b.batch4Speedup.toFixed(2)}`).join(', ')}`);
console.log(JSON.stringify({ bench: 'onnx-diffusion', model: TINY_SD_NAME, provider: 'cpu', steps: STEPS, threads: THREADS, rows, batch }));
