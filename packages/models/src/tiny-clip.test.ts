/**
 * nightshift-tiny-clip end to end: the folder is built from TypeScript, loaded
 * through the real transformers.js + onnxruntime-node path, and must rank
 * synthetic palette images the way its concept space promises.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { AutoTokenizer, CLIPTextModelWithProjection, env } from '@huggingface/transformers';
import { BACKGROUND, COLORS } from '@nightshift/common';
import { ClipEmbedder, cosine } from './embed.js';
import { ensureTinyClip, TINY_CLIP_NAME } from './mod.js';
import { buildTinyClip, TINY_CLIP_CONCEPTS, TINY_CLIP_DIM } from './tiny-clip.js';

type RGB = readonly [number, number, number];
type Shape =
  | { kind: 'circle' | 'square' | 'triangle'; color: RGB; cx: number; cy: number; r: number }
  | { kind: 'stripes'; color: RGB; period: number; vertical?: boolean };

const SIZE = 192;

function inside(s: Shape, x: number, y: number): boolean {
  if (s.kind === 'stripes') return Math.floor((s.vertical ? x : y) / s.period) % 2 === 0;
  const dx = x - s.cx;
  const dy = y - s.cy;
  switch (s.kind) {
    case 'circle':
      return dx * dx + dy * dy <= s.r * s.r;
    case 'square':
      return Math.abs(dx) <= s.r && Math.abs(dy) <= s.r;
    case 'triangle': {
      // Upright, apex at the top.
      const top = s.cy - s.r;
      const bottom = s.cy + 0.7 * s.r;
      if (y < top || y > bottom) return false;
      return Math.abs(dx) <= ((y - top) / (bottom - top)) * 1.1 * s.r;
    }
  }
}

/** Paints shapes on the grey background, 4×4 supersampled like an anti-aliasing renderer. */
function paintRaw(shapes: Shape[]): Buffer {
  const buf = Buffer.alloc(SIZE * SIZE * 3);
  const ss = 4;
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const acc = [0, 0, 0];
      for (let sy = 0; sy < ss; sy++) {
        for (let sx = 0; sx < ss; sx++) {
          let c: RGB = BACKGROUND;
          for (const s of shapes) if (inside(s, x + (sx + 0.5) / ss, y + (sy + 0.5) / ss)) c = s.color;
          for (let i = 0; i < 3; i++) acc[i]! += c[i]!;
        }
      }
      for (let i = 0; i < 3; i++) buf[(y * SIZE + x) * 3 + i] = Math.round(acc[i]! / (ss * ss));
    }
  }
  return buf;
}

const rawOpts = { raw: { width: SIZE, height: SIZE, channels: 3 as const } };
const png = (shapes: Shape[]) => sharp(paintRaw(shapes), rawOpts).png().toBuffer();

/** Deterministic ±amp per-channel noise, then lossy JPEG: a rough stand-in for a grainy render. */
async function noisyJpeg(shapes: Shape[], amp: number): Promise<Buffer> {
  const raw = paintRaw(shapes);
  let seed = 12345;
  for (let i = 0; i < raw.length; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    raw[i] = Math.max(0, Math.min(255, raw[i]! + Math.round(((seed / 2 ** 32) * 2 - 1) * amp)));
  }
  return sharp(raw, rawOpts).jpeg({ quality: 80 }).toBuffer();
}

const { red, blue, green, yellow } = COLORS;
const SCENES = {
  redCircles: [
    { kind: 'circle', color: red, cx: 60, cy: 70, r: 32 },
    { kind: 'circle', color: red, cx: 135, cy: 125, r: 40 },
  ],
  redSquare: [{ kind: 'square', color: red, cx: 96, cy: 96, r: 45 }],
  blueSquares: [
    { kind: 'square', color: blue, cx: 55, cy: 60, r: 30 },
    { kind: 'square', color: blue, cx: 135, cy: 130, r: 35 },
  ],
  blueCircle: [{ kind: 'circle', color: blue, cx: 96, cy: 96, r: 55 }],
  greenTriangles: [
    { kind: 'triangle', color: green, cx: 60, cy: 70, r: 40 },
    { kind: 'triangle', color: green, cx: 135, cy: 125, r: 45 },
  ],
  yellowStripes: [{ kind: 'stripes', color: yellow, period: 24 }],
  blank: [],
} satisfies Record<string, Shape[]>;
type SceneName = keyof typeof SCENES;
const SCENE_NAMES = Object.keys(SCENES) as SceneName[];

const dimOf = (concept: string) => {
  const i = TINY_CLIP_CONCEPTS.indexOf(concept);
  assert.ok(i >= 0, `unknown concept ${concept}`);
  return i;
};

describe('nightshift-tiny-clip', () => {
  let tmp: string;
  let folder: string;
  let embedder: ClipEmbedder;
  const images = new Map<SceneName, Float32Array>();
  let buildMs = 0;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tiny-clip-test-'));
    const t0 = performance.now();
    folder = await ensureTinyClip(path.join(tmp, 'models'));
    buildMs = performance.now() - t0;
    embedder = await ClipEmbedder.load(folder);
    const pngs = await Promise.all(SCENE_NAMES.map((n) => png(SCENES[n])));
    const embeds = await embedder.embedImages(pngs); // one batch, as the indexer does
    SCENE_NAMES.forEach((n, i) => images.set(n, embeds[i]!));
  });

  after(async () => {
    await embedder?.dispose();
    await rm(tmp, { recursive: true, force: true });
  });

  /** Scenes ordered by cosine to the query text, best first. */
  async function rank(query: string): Promise<{ name: SceneName; score: number }[]> {
    const [q] = await embedder.embedTexts([query]);
    return SCENE_NAMES.map((name) => ({ name, score: cosine(q!, images.get(name)!) })).sort((a, b) => b.score - a.score);
  }

  test('writes the CLIP folder layout, kilobytes in size', async () => {
    assert.equal(path.basename(folder), TINY_CLIP_NAME);
    assert.ok(buildMs < 5000, `build took ${buildMs} ms`);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json', 'onnx/text_model.onnx', 'onnx/vision_model.onnx']) {
      const s = await stat(path.join(folder, f));
      assert.ok(s.size > 100 && s.size < 64 * 1024, `${f}: ${s.size} bytes`);
    }
    const config = JSON.parse(await readFile(path.join(folder, 'config.json'), 'utf8'));
    assert.equal(config.model_type, 'clip');
    assert.equal(config.projection_dim, TINY_CLIP_DIM);
    const pre = JSON.parse(await readFile(path.join(folder, 'preprocessor_config.json'), 'utf8'));
    assert.equal(pre.image_processor_type, 'CLIPImageProcessor');
    const tok = JSON.parse(await readFile(path.join(folder, 'tokenizer_config.json'), 'utf8'));
    assert.equal(tok.pad_token, '[PAD]');
  });

  test('builds are byte-for-byte deterministic', async () => {
    const a = path.join(tmp, 'a');
    const b = path.join(tmp, 'b');
    await buildTinyClip(a);
    await buildTinyClip(b);
    const files = async (dir: string) => (await readdir(dir, { recursive: true, withFileTypes: true })).filter((d) => d.isFile()).map((d) => path.relative(dir, path.join(d.parentPath, d.name))).sort();
    const names = await files(a);
    assert.deepEqual(names, await files(b));
    assert.equal(names.length, 6);
    for (const n of names) {
      const bytesA = await readFile(path.join(a, n));
      assert.ok(bytesA.equals(await readFile(path.join(b, n))), `${n} differs between builds`);
      assert.ok(bytesA.equals(await readFile(path.join(folder, n))), `${n} differs from the ensured folder`);
    }
  });

  test('ensureTinyClip leaves a current folder alone and repairs a changed one', async () => {
    const onnx = path.join(folder, 'onnx/vision_model.onnx');
    const before = (await stat(onnx)).mtimeMs;
    assert.equal(await ensureTinyClip(path.dirname(folder)), folder);
    assert.equal((await stat(onnx)).mtimeMs, before, 'current folder was rewritten');

    const good = await readFile(onnx);
    await writeFile(onnx, Buffer.from('not a model'));
    const configPath = path.join(folder, 'config.json');
    const config = JSON.parse(await readFile(configPath, 'utf8'));
    config.nightshift.version = -1;
    await writeFile(configPath, JSON.stringify(config));
    assert.equal(await ensureTinyClip(path.dirname(folder)), folder);
    assert.ok((await readFile(onnx)).equals(good), 'stale model was not rebuilt');
    assert.notEqual(JSON.parse(await readFile(configPath, 'utf8')).nightshift.version, -1);
    assert.deepEqual((await readdir(path.dirname(folder))).sort(), [TINY_CLIP_NAME], 'temporary folders left behind');
  });

  test('concurrent ensureTinyClip calls agree on one complete folder', async () => {
    const dir = path.join(tmp, 'concurrent');
    const results = await Promise.all([1, 2, 3, 4].map(() => ensureTinyClip(dir)));
    assert.ok(results.every((r) => r === path.join(dir, TINY_CLIP_NAME)));
    assert.deepEqual(await readdir(dir), [TINY_CLIP_NAME]);
    for (const f of ['config.json', 'onnx/text_model.onnx', 'onnx/vision_model.onnx']) {
      assert.ok((await readFile(path.join(dir, TINY_CLIP_NAME, f))).equals(await readFile(path.join(folder, f))), f);
    }
  });

  test('embeddings are normalised, batched and of the declared dimension', async () => {
    assert.equal(embedder.dim, TINY_CLIP_DIM);
    const texts = ['red', 'A photo of a RED circle, on grey.', 'blue squares', '', 'completely unknown words'];
    const batch = await embedder.embedTexts(texts);
    assert.equal(batch.length, texts.length);
    for (const [i, v] of batch.entries()) {
      assert.equal(v.length, TINY_CLIP_DIM);
      assert.ok(Math.abs(cosine(v, v) - 1) < 1e-5, `text ${i} not unit length`);
      // Padding must not change a text's embedding.
      const [single] = await embedder.embedTexts([texts[i]!]);
      assert.ok(cosine(v, single!) > 1 - 1e-5, `text ${i} differs batched vs alone`);
    }
    // The tokenizer lowercases and splits punctuation: same concepts, same vector.
    const [a, b] = await embedder.embedTexts(['Red, Circle!', 'red circle']);
    assert.ok(cosine(a!, b!) > 1 - 1e-6);

    for (const n of SCENE_NAMES) assert.ok(Math.abs(cosine(images.get(n)!, images.get(n)!) - 1) < 1e-5, `${n} not unit length`);
    const [alone] = await embedder.embedImages([await png(SCENES.greenTriangles)]);
    assert.ok(cosine(alone!, images.get('greenTriangles')!) > 1 - 1e-5, 'image differs batched vs alone');
  });

  test('colour queries rank images with that colour first', async () => {
    for (const [query, expected] of [
      ['red', ['redCircles', 'redSquare']],
      ['blue', ['blueSquares', 'blueCircle']],
      ['green', ['greenTriangles']],
      ['yellow', ['yellowStripes']],
    ] as const) {
      const ranked = await rank(query);
      const top = ranked.slice(0, expected.length).map((r) => r.name);
      assert.deepEqual([...top].sort(), [...expected].sort(), `"${query}" ranked ${JSON.stringify(ranked)}`);
      // And clearly: every matching image well above every other one.
      const worstMatch = ranked[expected.length - 1]!.score;
      const bestOther = ranked[expected.length]!.score;
      assert.ok(worstMatch > 0.4 && bestOther < 0.2, `"${query}" margins ${worstMatch} vs ${bestOther}`);
    }
    // A colour that no image contains matches nothing.
    assert.ok((await rank('purple')).every((r) => r.score < 0.1));
  });

  test('colour + shape queries prefer the image with both', async () => {
    const cases: [string, SceneName][] = [
      ['a red circle', 'redCircles'],
      ['red square', 'redSquare'],
      ['a blue circle', 'blueCircle'],
      ['blue squares', 'blueSquares'],
      ['green triangles', 'greenTriangles'],
      ['yellow stripes', 'yellowStripes'],
    ];
    for (const [query, expected] of cases) {
      const ranked = await rank(query);
      assert.equal(ranked[0]!.name, expected, `"${query}" ranked ${JSON.stringify(ranked)}`);
    }
  });

  test('shape dimensions: shape-only queries find the shape, whatever its colour', async () => {
    for (const [query, expected] of [
      ['circles', ['redCircles', 'blueCircle']],
      ['squares', ['blueSquares', 'redSquare']],
      ['triangle', ['greenTriangles']],
      ['stripes', ['yellowStripes']],
    ] as const) {
      const ranked = await rank(query);
      const top = ranked.slice(0, expected.length).map((r) => r.name);
      assert.deepEqual([...top].sort(), [...expected].sort(), `"${query}" ranked ${JSON.stringify(ranked)}`);
    }
    // Directly on the vectors: each scene's strongest shape dimension is its own shape.
    const shapeDims = ['circle', 'square', 'triangle', 'stripes'].map(dimOf);
    const strongest = (n: SceneName) => {
      const v = images.get(n)!;
      return TINY_CLIP_CONCEPTS[shapeDims.reduce((best, d) => (v[d]! > v[best]! ? d : best))];
    };
    assert.equal(strongest('redCircles'), 'circle');
    assert.equal(strongest('blueCircle'), 'circle');
    assert.equal(strongest('redSquare'), 'square');
    assert.equal(strongest('blueSquares'), 'square');
    assert.equal(strongest('greenTriangles'), 'triangle');
    assert.equal(strongest('yellowStripes'), 'stripes');
    // A blank canvas has no colour and no shape: only "other".
    const blank = images.get('blank')!;
    assert.ok(blank[dimOf('other')]! > 0.99, `blank: ${Array.from(blank)}`);
  });

  test('WebP and grainy JPEG bytes embed like the clean PNG', async () => {
    const webp = await sharp(paintRaw(SCENES.redCircles), rawOpts).webp({ quality: 80 }).toBuffer();
    const jpeg = await noisyJpeg(SCENES.redCircles, 20);
    const [w, j] = await embedder.embedImages([webp, jpeg]);
    const clean = images.get('redCircles')!;
    assert.ok(cosine(w!, clean) > 0.97, `webp cosine ${cosine(w!, clean)}`);
    assert.ok(cosine(j!, clean) > 0.9, `jpeg cosine ${cosine(j!, clean)}`);
    const [q] = await embedder.embedTexts(['red']);
    const others = SCENE_NAMES.filter((n) => !n.startsWith('red')).map((n) => cosine(q!, images.get(n)!));
    assert.ok(cosine(q!, j!) > Math.max(...others) + 0.3);
  });

  test('undecodable bytes are rejected with the image index', async () => {
    const good = await png(SCENES.blank);
    await assert.rejects(embedder.embedImages([good, Buffer.from('definitely not an image')]), /image 1/);
  });

  test('also loads by folder name through env.localModelPath, offline', async () => {
    const saved = { allowRemoteModels: env.allowRemoteModels, localModelPath: env.localModelPath };
    env.allowRemoteModels = false;
    env.localModelPath = path.dirname(folder);
    try {
      const tokenizer = await AutoTokenizer.from_pretrained(TINY_CLIP_NAME);
      const model = await CLIPTextModelWithProjection.from_pretrained(TINY_CLIP_NAME);
      const { text_embeds } = await model(tokenizer(['red'], { padding: true, truncation: true }));
      assert.deepEqual(text_embeds.dims, [1, TINY_CLIP_DIM]);
      const [viaEmbedder] = await embedder.embedTexts(['red']);
      assert.ok(cosine(Float32Array.from(text_embeds.data as Float32Array), viaEmbedder!) > 1 - 1e-6);
      await model.dispose();
      // A name that is not in localModelPath fails instead of going to the Hub.
      await assert.rejects(AutoTokenizer.from_pretrained('no-such-model-here'));
    } finally {
      env.allowRemoteModels = saved.allowRemoteModels;
      env.localModelPath = saved.localModelPath;
    }
  });
});
