/**
 * The onnx backend's cost per image with the built-in nightshift-tiny-sd on
 * onnxruntime-node's CPU provider, at 64/128/256 px: per-step UNet time (one
 * batched cond/uncond pass, guidance 7.5), total time per image (text
 * encoder, sampling, previews as a node makes them, VAE decode, PNG), and
 * the share of the image's time spent outside the model calls (SdModel's
 * wrappers around session.run, their tensor conversions counted as inside),
 * broken down into the sampler's math, preview frames and the PNG encode.
 * The tiny UNet costs a fraction of a millisecond per step, so here the
 * share outside is large; a real SD UNet's step costs 10²–10⁴ times more.
 * Batch 1 vs 4 (several seeds of one prompt in one UNet batch, per-seed
 * noise) is measured on the sampling core, sampleLatent + VAE decode + one
 * PNG per image, without previews: jobs are not batched yet (params.batch
 * is not wired to the node), so the ratio says what batching would buy.
 *   node --import tsx bench/onnx-diffusion.ts [STEPS=20] [RUNS=3] [THREADS=1]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TINY_SD_NAME } from '@nightshift/models';
import { OnnxBackend } from '../services/gpu-node/src/backends/onnx.js';
import { newRenderTiming, sampleLatent, type RenderTiming } from '../services/gpu-node/src/backends/onnx-sample.js';
import { vaeImageToPng } from '../services/gpu-node/src/backends/onnx-image.js';
import { parseSchedulerConfig, unscaleForDecode } from '@nightshift/diffusion';
import { ensureTinySd, SdModel } from '@nightshift/models';

const STEPS = Number(process.argv[2] ?? 20);
const RUNS = Number(process.argv[3] ?? 3);
const THREADS = Number(process.argv[4] ?? 1);

const dataDir = mkdtempSync(path.join(tmpdir(), 'nightshift-bench-onnx-'));
const backend = new OnnxBackend({ models: {}, dataDir, threads: THREADS });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

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
}
const rows: Row[] = [];
console.log(`nightshift-tiny-sd, CPU, ${STEPS} steps euler_a, guidance 7.5 (batched cond/uncond UNet), ${RUNS} runs (median), onnxruntime threads ${THREADS || 'default'}`);
console.log('side  batch  UNet ms/step  ms/image  images/s  outside model calls  (sampler math, previews, PNG)');
try {
  for (const side of [64, 128, 256]) {
    const req = (seed: number) => ({
      jobId: 'bench',
      renderKey: 'bench',
      kind: 'render' as const,
      prompt: 'a lighthouse at dusk, oil painting',
      seed,
      model: TINY_SD_NAME,
      params: { width: side, height: side, steps: STEPS, guidance: 7.5, sampler: 'euler_a', negative_prompt: 'blurry' },
    });
    await backend.render(req(0), () => {}, new AbortController().signal); // warm-up: model load, first-run allocations
    const totals: number[] = [];
    const perStep: number[] = [];
    const outside: number[] = [];
    const parts: { timing: RenderTiming; ms: number }[] = [];
    for (let r = 0; r < RUNS; r++) {
      const timing = newRenderTiming();
      const t0 = performance.now();
      await backend.render(req(r + 1), () => {}, new AbortController().signal, timing);
      const ms = performance.now() - t0;
      totals.push(ms);
      perStep.push(timing.unetMs / timing.unetCalls);
      outside.push((ms - timing.modelMs) / ms);
      parts.push({ timing, ms });
    }
    const share = (f: (t: RenderTiming) => number) => median(parts.map((p) => f(p.timing) / p.ms));
    const row: Row = { side, batch: 1, unetMsPerStep: median(perStep), msPerImage: median(totals), imagesPerSecond: 1000 / median(totals), outsideModelShare: median(outside), schedulerShare: share((t) => t.schedulerMs), previewShare: share((t) => t.previewMs), pngShare: share((t) => t.pngMs) };
    rows.push(row);
    console.log(
      `${String(side).padEnd(6)}${String(1).padStart(5)}  ${row.unetMsPerStep.toFixed(2).padStart(12)}  ${row.msPerImage.toFixed(1).padStart(8)}  ${row.imagesPerSecond.toFixed(2).padStart(8)}  ${(100 * row.outsideModelShare).toFixed(1).padStart(18)} %  (${[row.schedulerShare, row.previewShare, row.pngShare].map((x) => `${(100 * x).toFixed(1)} %`).join(', ')})`,
    );
  }
} finally {
  await backend.close();
}

/** Core path: one UNet batch of `batch` seeds → `batch` PNGs; ms per image. */
const sd = await SdModel.load(await ensureTinySd(path.join(dataDir, 'models')), { threads: THREADS });
const schedulerConfig = parseSchedulerConfig(sd.folder.schedulerConfig);
async function corePerImage(side: number, batch: number, seed0: number): Promise<number> {
  const t0 = performance.now();
  const seeds = Array.from({ length: batch }, (_, k) => seed0 + k);
  const r = await sampleLatent({
    model: sd,
    prompt: 'a lighthouse at dusk, oil painting',
    negativePrompt: 'blurry',
    seeds,
    width: side,
    height: side,
    steps: STEPS,
    guidance: 7.5,
    sampler: 'euler_a',
    schedulerConfig,
    signal: new AbortController().signal,
  });
  const image = await sd.decode({ data: unscaleForDecode(r.latent, sd.scalingFactor), dims: r.dims });
  for (let k = 0; k < batch; k++) await vaeImageToPng(image, k);
  return (performance.now() - t0) / batch;
}
const batchRows: { side: number; batch1MsPerImage: number; batch4MsPerImage: number; batch4Speedup: number }[] = [];
console.log('core (no previews)  side  batch 1 ms/image  batch 4 ms/image  images/s ratio 4:1');
try {
  for (const side of [64, 128, 256]) {
    await corePerImage(side, 4, 0); // warm-up
    const one: number[] = [];
    const four: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      one.push(await corePerImage(side, 1, 100 + r));
      four.push(await corePerImage(side, 4, 200 + 4 * r));
    }
    const row = { side, batch1MsPerImage: median(one), batch4MsPerImage: median(four), batch4Speedup: median(one) / median(four) };
    batchRows.push(row);
    console.log(`${''.padEnd(20)}${String(side).padEnd(6)}${row.batch1MsPerImage.toFixed(1).padStart(16)}  ${row.batch4MsPerImage.toFixed(1).padStart(16)}  ${row.batch4Speedup.toFixed(2).padStart(18)}`);
  }
} finally {
  await sd.release();
  rmSync(dataDir, { recursive: true, force: true });
}
console.log(JSON.stringify({ bench: 'onnx-diffusion', model: TINY_SD_NAME, provider: 'cpu', steps: STEPS, threads: THREADS, rows, batch: batchRows }));
