/**
 * Upscale throughput of the tiler with the built-in tiny ×4 model
 * (nightshift-tiny-upscaler-x4) on onnxruntime-node's CPU provider, for tile
 * sizes 64/128/256 (16 px overlap), next to the whole image in one run.
 * Megapixels/s counts input pixels (the output has 16× as many). The tiny
 * model is a bicubic resize + 3×3 conv, so this mostly measures the tiling,
 * tensor conversion and onnxruntime overhead; a real Real-ESRGAN is orders
 * of magnitude heavier per pixel.
 *   node --import tsx bench/upscale.ts [SIDE=512] [RUNS=3] [THREADS=1]
 */
import { tinyUpscalerBytes } from '@nightshift/models';
import { TiledUpscaler } from '../services/gpu-node/src/upscale/tiler.js';
import { testCard } from '../services/gpu-node/src/upscale/test-card.js';

const SIDE = Number(process.argv[2] ?? 512);
const RUNS = Number(process.argv[3] ?? 3);
const THREADS = Number(process.argv[4] ?? 1);

const model = await TiledUpscaler.load(tinyUpscalerBytes(), { threads: THREADS });
const img = testCard(SIDE, SIDE, 42);
const mp = (SIDE * SIDE) / 1e6;

console.log(`input ${SIDE}x${SIDE} (${mp.toFixed(3)} MP) → ${SIDE * 4}x${SIDE * 4}, ${RUNS} runs, onnxruntime threads ${THREADS || 'default'}, overlap 16`);
console.log('tile      tiles  median ms   MP/s in  MP/s out  peak RSS MiB');
const rows: { tile: number; tiles: number; medianMs: number; mpPerSIn: number; rssMiB: number }[] = [];
for (const tile of [64, 128, 256, SIDE]) {
  const tiles = Math.ceil(SIDE / tile) ** 2;
  await model.upscale(img, { tileSize: tile, overlap: 16 }); // warm-up: first-run allocations
  const times: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t = performance.now();
    await model.upscale(img, { tileSize: tile, overlap: 16 });
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)]!;
  const label = tile === SIDE ? `${tile} (whole)` : String(tile);
  rows.push({ tile, tiles, medianMs: ms, mpPerSIn: mp / (ms / 1000), rssMiB: process.memoryUsage().rss / 2 ** 20 });
  console.log(
    `${label.padEnd(10)}${String(tiles).padStart(5)}  ${ms.toFixed(0).padStart(9)}  ${(mp / (ms / 1000)).toFixed(2).padStart(8)}  ${((16 * mp) / (ms / 1000)).toFixed(1).padStart(8)}  ${(process.memoryUsage().rss / 2 ** 20).toFixed(0).padStart(12)}`,
  );
}
await model.release();
// Machine-readable summary, last line (bench/ convention).
console.log(JSON.stringify({ bench: 'upscale', side: SIDE, runs: RUNS, threads: THREADS, tiles: rows }));
