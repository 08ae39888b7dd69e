/**
 * Builds the project's built-in models (currently nightshift-tiny-clip, the
 * offline test CLIP) into a models folder, skipping what is already current.
 *
 *   node --import tsx scripts/build-models.ts [outDir]    (default: .data/models)
 *
 * Prints the model folder's absolute path on stdout.
 */
import path from 'node:path';
import { ensureTinyClip } from '../packages/models/src/mod.js';

const outDir = path.resolve(process.argv[2] ?? '.data/models');
const started = performance.now();
const folder = await ensureTinyClip(outDir);
console.error(`nightshift-tiny-clip ready in ${Math.round(performance.now() - started)} ms`);
console.log(folder);
