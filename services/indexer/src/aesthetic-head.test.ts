/**
 * The aesthetic head loader over real ONNX files written by the project's
 * builders: the built-in head's scores equal its two layers recomputed here by
 * hand, and heads that do not fit are refused with a message that says why.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DataType, ensureTinyAesthetic, GraphBuilder, TINY_AESTHETIC_NAME, TINY_CLIP_DIM, tinyAestheticBytes, tinyAestheticWeights } from '@nightshift/models';
import { mulberry32 } from '@nightshift/common';
import { AestheticHeadError, loadAestheticHead } from './aesthetic-head.js';

/** relu(W1·x + b1) then W2·h + b2, in float64, from the weights the builder exports. */
function byHand(x: Float32Array): number {
  const w = tinyAestheticWeights();
  let score = w.b2[0]!;
  for (let j = 0; j < w.hidden; j++) {
    let h = w.b1[j]!;
    for (let i = 0; i < w.dim; i++) h += w.w1[j * w.dim + i]! * x[i]!;
    score += w.w2[j]! * Math.max(0, h);
  }
  return score;
}

/** Random unit vectors with a positive yellow-ish spread, so both hidden units are sometimes on and sometimes off. */
function vectors(n: number, dim: number, seed: number): Float32Array[] {
  const rnd = mulberry32(seed);
  return Array.from({ length: n }, () => {
    const v = Float32Array.from({ length: dim }, () => rnd() * 2 - 0.6);
    const norm = Math.hypot(...v);
    return v.map((x) => x / norm);
  });
}

describe('aesthetic head loader', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'aesthetic-head-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the built-in head scores like its weights say, batch after batch (more rows than one forward pass takes)', async () => {
    const head = await loadAestheticHead(await ensureTinyAesthetic(dir), TINY_CLIP_DIM);
    try {
      assert.equal(head.width, TINY_CLIP_DIM);
      assert.match(head.id, new RegExp(`^${TINY_AESTHETIC_NAME}@[0-9a-f]{12}$`));
      const xs = vectors(2500, TINY_CLIP_DIM, 11);
      const scores = await head.score(xs);
      assert.equal(scores.length, xs.length);
      let above = 0;
      xs.forEach((x, i) => {
        const want = byHand(x);
        assert.ok(Math.abs(scores[i]! - want) < 1e-5, `row ${i}: ${scores[i]} vs ${want}`);
        if (want > 5) above++;
      });
      // Both sides of the ReLUs were exercised, or the comparison proves less than it seems.
      assert.ok(above > 100 && above < xs.length - 100, `${above} of ${xs.length} above 5`);
      assert.deepEqual(await head.score([]), new Float32Array(0));
    } finally {
      await head.dispose();
    }
  });

  test('a head for another embedding width is refused, naming both widths', async () => {
    const file = join(dir, 'laion-like.onnx');
    writeFileSync(file, tinyAestheticBytes({ dim: 768 }));
    await assert.rejects(loadAestheticHead(file, TINY_CLIP_DIM), (err: Error) => {
      assert.ok(err instanceof AestheticHeadError);
      assert.match(err.message, /takes 768-wide embeddings but the CLIP model makes 16-wide ones/);
      return true;
    });
    // The same file fits a 768-wide CLIP.
    const head = await loadAestheticHead(file, 768);
    assert.equal((await head.score(vectors(3, 768, 1))).length, 3);
    await head.dispose();
  });

  test('a head with a symbolic width is probed: a graph that cannot take the width fails at load', async () => {
    const g = new GraphBuilder('symbolic');
    const x = g.input('x', DataType.FLOAT, ['batch', 'width']);
    g.op('MatMul', [x, g.floats('w', [768, 1], new Float32Array(768))], {}, 'score');
    g.output('score', DataType.FLOAT, ['batch', 1]);
    const file = join(dir, 'symbolic.onnx');
    writeFileSync(file, g.toBytes());
    await assert.rejects(loadAestheticHead(file, TINY_CLIP_DIM), (err: Error) => err instanceof AestheticHeadError && /cannot score a 16-wide embedding/.test(err.message));
  });

  test('more than one score per embedding, a missing file, and bytes that are not ONNX are refused clearly', async () => {
    const g = new GraphBuilder('two');
    const x = g.input('embeds', DataType.FLOAT, ['batch', TINY_CLIP_DIM]);
    g.op('MatMul', [x, g.floats('w', [TINY_CLIP_DIM, 2], new Float32Array(TINY_CLIP_DIM * 2))], {}, 'scores');
    g.output('scores', DataType.FLOAT, ['batch', 2]);
    const two = join(dir, 'two.onnx');
    writeFileSync(two, g.toBytes());
    await assert.rejects(loadAestheticHead(two, TINY_CLIP_DIM), /holds 2 float32 values for 1 embeddings; expected one score each/);
    await assert.rejects(loadAestheticHead(join(dir, 'nope.onnx'), TINY_CLIP_DIM), /no such file/);
    const junk = join(dir, 'junk.onnx');
    writeFileSync(junk, 'not a model');
    await assert.rejects(loadAestheticHead(junk, TINY_CLIP_DIM), /not a model onnxruntime can load/);
  });
});
