/**
 * Builds the project's built-in test models into a models folder, skipping
 * what is already current: nightshift-tiny-clip (the offline test CLIP), the
 * tiny ×4 upscaler, nightshift-tiny-sd (a diffusers ONNX export layout) and
 * nightshift-tiny-aesthetic (an aesthetic head over the tiny CLIP's embeddings).
 * None is a real model; they exist so the real loading and inference paths
 * run offline.
 *
 *   node --import tsx scripts/build-models.ts [outDir]    (default: .data/models)
 *
 * Prints each model's absolute path on stdout.
 */
import path from 'node:path';
import { ensureTinyAesthetic, ensureTinyClip, ensureTinySd, ensureTinyUpscaler } from '@nightshift/models';

const outDir = path.resolve(process.argv[2] ?? '.data/models');
const started = performance.now();
const clip = await ensureTinyClip(outDir);
const upscaler = await ensureTinyUpscaler(outDir);
const sd = await ensureTinySd(outDir);
const aesthetic = await ensureTinyAesthetic(outDir);
console.error(`built-in test models ready in ${Math.round(performance.now() - started)} ms`);
console.log(clip);
console.log(upscaler);
console.log(sd);
console.log(aesthetic);
