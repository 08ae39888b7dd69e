/**
 * nightshift-tiny-aesthetic through onnxruntime-node over nightshift-tiny-clip
 * embeddings of the procedural painter's pictures: its score must mean what
 * its doc says (yellow in the picture lifts it above 5, nothing else does),
 * and the file is written once, deterministically.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { COLOR_NAMES, SHAPES } from '@nightshift/common';
import { ClipEmbedder } from './embed.js';
import { encodePng } from './painter/encode.js';
import { renderProcedural } from './painter/render.js';
import { ensureTinyAesthetic, TINY_AESTHETIC_FILE, tinyAestheticBytes } from './tiny-aesthetic.js';
import { ensureTinyClip } from './tiny-clip.js';

describe('nightshift-tiny-aesthetic', () => {
  let dir: string;
  let embedder: ClipEmbedder;
  let head: ort.InferenceSession;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tiny-aesthetic-'));
    embedder = await ClipEmbedder.load(await ensureTinyClip(dir));
    head = await ort.InferenceSession.create(await ensureTinyAesthetic(dir));
  });
  after(async () => {
    await head.release();
    await embedder.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  test('procedural pictures with yellow score above 5, all others at most 5', async () => {
    const others = COLOR_NAMES.filter((c) => c !== 'yellow');
    const prompts: { prompt: string; yellow: boolean }[] = [];
    for (const shape of SHAPES) {
      prompts.push({ prompt: `a yellow ${shape}`, yellow: true });
      for (const c of others) {
        prompts.push({ prompt: `a ${c} ${shape}`, yellow: false });
        prompts.push({ prompt: `a ${c} ${shape} and a yellow ${SHAPES[(SHAPES.indexOf(shape) + 1) % SHAPES.length]}`, yellow: true });
      }
    }
    const pngs = await Promise.all(prompts.map((p, i) => encodePng(renderProcedural(p.prompt, 100 + i, 96, 96).data, 96, 96)));
    const vectors = await embedder.embedImages(pngs);
    const data = new Float32Array(vectors.length * embedder.dim);
    vectors.forEach((v, i) => data.set(v, i * embedder.dim));
    const out = await head.run({ embeds: new ort.Tensor('float32', data, [vectors.length, embedder.dim]) });
    assert.deepEqual(out.score!.dims, [vectors.length, 1]);
    const scores = out.score!.data as Float32Array;
    const wrong = prompts.filter((p, i) => (scores[i]! > 5) !== p.yellow).map((p) => `${p.prompt}: ${scores[prompts.indexOf(p)]!.toFixed(3)}`);
    assert.deepEqual(wrong, []);
  });

  test('written once: same bytes every build, not rewritten when current', async () => {
    assert.deepEqual(tinyAestheticBytes(), tinyAestheticBytes());
    const file = path.join(dir, TINY_AESTHETIC_FILE);
    assert.deepEqual(new Uint8Array(await readFile(file)), tinyAestheticBytes());
    const before = (await stat(file)).mtimeMs;
    assert.equal(await ensureTinyAesthetic(dir), file);
    assert.equal((await stat(file)).mtimeMs, before);
  });
});
