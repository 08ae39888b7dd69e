/**
 * nightshift-tiny-clip: the built-in *test* model with the CLIP folder layout.
 *
 * It is not a real CLIP and is never described as one. Its two towers embed
 * into one small, hand-made concept space (one dimension per palette colour,
 * one per shape, one "other"), so that the real loading and search path
 * (transformers.js + onnxruntime-node) can be exercised offline, end to end:
 * the text "red" lands near images that contain the palette's red.
 *
 * Everything here is deterministic: the same code writes the same bytes.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BACKGROUND, COLOR_NAMES, COLORS, SHAPES, type ColorName, type ShapeName } from '@nightshift/common';
import { attr, DataType, GraphBuilder } from './onnx-builder.js';

export const TINY_CLIP_NAME = 'nightshift-tiny-clip';
/** Bump when any written byte changes, so ensureTinyClip rebuilds stale folders. */
export const TINY_CLIP_VERSION = 1;

/** Names of the embedding dimensions, in order: colours, shapes, then "other". */
export const TINY_CLIP_CONCEPTS: readonly string[] = [...COLOR_NAMES, ...SHAPES, 'other'];
export const TINY_CLIP_DIM = TINY_CLIP_CONCEPTS.length;

/** Square side the preprocessor resizes and crops to; small keeps the CPU cost trivial. */
export const TINY_CLIP_IMAGE_SIZE = 64;
const MAX_TEXT_TOKENS = 77;

const K = COLOR_NAMES.length;
const SHAPE_OFFSET = K;
const OTHER = K + SHAPES.length;

// ---------------------------------------------------------------- text side

const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]'] as const;

/** Extra words per colour. Grey is deliberately absent: it is the background. */
const COLOR_SYNONYMS: Partial<Record<ColorName, readonly string[]>> = {
  purple: ['violet'],
  cyan: ['turquoise'],
};

/** Words per shape, plurals and a few obvious synonyms. */
const SHAPE_WORDS: Record<ShapeName, readonly string[]> = {
  circle: ['circle', 'circles', 'round', 'disc', 'discs', 'disk', 'disks', 'dot', 'dots'],
  square: ['square', 'squares', 'box', 'boxes'],
  triangle: ['triangle', 'triangles', 'triangular'],
  stripes: ['stripes', 'stripe', 'striped', 'stripy', 'lines', 'bands'],
};

const PUNCTUATION = [',', '.', '!', '?', ';', ':', '-', "'", '"', '(', ')', '&', '/'] as const;

/** Weight of an unknown word on the "other" dimension: present, but never outweighing a concept word. */
const UNKNOWN_WORD_OTHER = 0.1;
const START_TOKEN_OTHER = 0.01;

interface TextVocab {
  /** token → id, specials first. */
  vocab: Map<string, number>;
  /** One row per id: the concept vector that word contributes. */
  rows: Float32Array[];
}

function buildTextVocab(): TextVocab {
  const vocab = new Map<string, number>();
  const rows: Float32Array[] = [];
  const add = (token: string, row: Float32Array) => {
    if (vocab.has(token)) throw new Error(`tiny-clip vocab: duplicate word ${token}`);
    vocab.set(token, rows.length);
    rows.push(row);
  };
  const oneHot = (dim: number) => {
    const r = new Float32Array(TINY_CLIP_DIM);
    r[dim] = 1;
    return r;
  };
  // [PAD] and [SEP] embed to zero, so padding needs no attention_mask.
  // [UNK] (every word the model does not know) goes to "other"; so does a
  // trace of [CLS], so that even "" gets a direction rather than a zero vector.
  for (const t of SPECIAL_TOKENS) {
    const r = new Float32Array(TINY_CLIP_DIM);
    if (t === '[UNK]') r[OTHER] = UNKNOWN_WORD_OTHER;
    if (t === '[CLS]') r[OTHER] = START_TOKEN_OTHER;
    add(t, r);
  }
  // Punctuation (split off by the pre-tokenizer) carries no meaning: zero rows.
  for (const p of PUNCTUATION) add(p, new Float32Array(TINY_CLIP_DIM));
  COLOR_NAMES.forEach((c, i) => {
    add(c, oneHot(i));
    for (const syn of COLOR_SYNONYMS[c] ?? []) add(syn, oneHot(i));
  });
  SHAPES.forEach((s, i) => {
    for (const w of SHAPE_WORDS[s]) add(w, oneHot(SHAPE_OFFSET + i));
  });
  return { vocab, rows };
}

/**
 * text_model.onnx: input_ids [batch, seq] → text_embeds [batch, D].
 * Gather each token's concept row, sum over the sequence, L2-normalise.
 * Only input_ids is declared (as in the public CLIP text exports);
 * transformers.js feeds a session just the inputs it declares.
 */
function buildTextModel(tv: TextVocab): Uint8Array {
  const g = new GraphBuilder('nightshift_tiny_clip_text');
  const ids = g.input('input_ids', DataType.INT64, ['batch_size', 'sequence_length']);
  const table = g.floats('concept_table', [tv.rows.length, TINY_CLIP_DIM], concat(tv.rows));
  const perToken = g.op('Gather', [table, ids]); // [B, S, D]
  const summed = g.op('ReduceSum', [perToken, g.int64s('axis_seq', [1], [1])], { keepdims: attr.int(0) }); // [B, D]
  l2Normalise(g, summed, 'text_embeds');
  g.output('text_embeds', DataType.FLOAT, ['batch_size', TINY_CLIP_DIM]);
  return g.toBytes({ producerVersion: String(TINY_CLIP_VERSION), docString: 'nightshift-tiny-clip text tower (test model, not a real CLIP)' });
}

// -------------------------------------------------------------- vision side

/**
 * Width of the colour kernel exp(−d²/σ), d measured in 0..1 RGB. With the
 * membership mapping below, a pixel is fully a colour up to d² ≈ 0.016 (about
 * ±32/255 in one channel) and not at all beyond d² ≈ 0.06, while the closest
 * pair of palette colours (orange/yellow) is d² ≈ 0.1 apart and the grey
 * background at least 0.16 from every palette colour.
 */
const COLOR_SIGMA = 0.02;
/** Scale of the shape dimensions relative to √(colour fraction) dimensions. */
const SHAPE_GAIN = 0.5;
/** Kernel values below this (d² > 3σ) count as not that colour at all… */
const MEMBERSHIP_FLOOR = 0.05;
/** …and above floor + 1/gain (d² < 0.8σ) as fully that colour. */
const MEMBERSHIP_GAIN = 2.5;
/**
 * Constant added to the image "other" dimension: an image with nothing the
 * model knows (a blank canvas) still gets a direction, never a zero vector.
 */
const OTHER_IMAGE_BASE = 0.02;
/** Scale of the image "other" dimension (pixels that are neither palette nor background, e.g. anti-aliased edges). */
const OTHER_IMAGE_GAIN = 0.5;
const EPS = 1e-6;

/**
 * vision_model.onnx: pixel_values [batch, 3, H, W] in 0..1 → image_embeds [batch, D].
 *
 * Colours: after a light blur, a 1×1 Conv gives every pixel's squared
 * distance to each palette colour (|x|² − 2c·x + |c|², the |x|² term added
 * after), exp(−d²/σ) and a clip turn that into an "is this colour" map,
 * GlobalAveragePool into a coverage fraction, and √ compresses it so small
 * shapes still count. The grey BACKGROUND is matched too, but only to keep it
 * out of "other"; it has no dimension of its own.
 *
 * Shapes: from the foreground mask (any palette colour; the grey background is
 * not foreground), Sobel gradients give edge statistics, each as a fraction of
 * all edge energy, so they do not depend on size or count:
 *  - diag: edges that are neither horizontal nor vertical (curves, slants);
 *  - aniso: |vertical − horizontal| edges (bands running one way);
 *  - asym: one-sided horizontal (or vertical) edges, e.g. an upright triangle
 *    has a bottom edge but no matching top edge, where squares, circles and
 *    bands have both.
 * A fixed linear map then scores circle/square/triangle/stripes from them.
 */
function buildVisionModel(): Uint8Array {
  const g = new GraphBuilder('nightshift_tiny_clip_vision');
  const x = g.input('pixel_values', DataType.FLOAT, ['batch_size', 3, 'height', 'width']);

  // --- colour maps: K palette colours, then the background, as channels.
  const refs: (readonly [number, number, number])[] = [...COLOR_NAMES.map((c) => COLORS[c]), BACKGROUND];
  const convW: number[] = [];
  const convB: number[] = [];
  for (const rgb of refs) {
    const c = rgb.map((v) => v / 255);
    // logit = −d²/σ = (2c·x − |c|² − |x|²)/σ; the conv does all but −|x|²/σ.
    for (const v of c) convW.push((2 * v) / COLOR_SIGMA);
    convB.push(-(c[0]! ** 2 + c[1]! ** 2 + c[2]! ** 2) / COLOR_SIGMA);
  }
  // A 3×3 Gaussian blur first (edge-padded, per channel): pixel noise or grain
  // averages out before any pixel is judged, at the price of slightly softer edges.
  const pad1 = g.int64s('pad_1px', [8], [0, 0, 1, 1, 0, 0, 1, 1]);
  const gauss = [1, 2, 1, 2, 4, 2, 1, 2, 1].map((v) => v / 16);
  const xs = g.op('Conv', [g.op('Pad', [x, pad1], { mode: attr.string('edge') }), g.floats('blur_w', [3, 1, 3, 3], [...gauss, ...gauss, ...gauss])], {
    group: attr.int(3),
  });
  const cross = g.op('Conv', [xs, g.floats('colour_w', [refs.length, 3, 1, 1], convW), g.floats('colour_b', [refs.length], convB)]);
  const axis1 = g.int64s('axis_channel', [1], [1]);
  const xx = g.op('ReduceSum', [g.op('Mul', [xs, xs]), axis1], { keepdims: attr.int(1) }); // [B,1,H,W]
  const logits = g.op('Sub', [cross, g.op('Mul', [xx, g.scalar(1 / COLOR_SIGMA)])]);
  // Membership = clip((exp(−d²/σ) − floor) · gain, 0, 1): saturated, so mild
  // noise still reads as a solid 1, and with the kernel's tail cut off, so grey
  // pixels do not leak a trace of purple or brown (which √coverage would amplify).
  const sim = g.op('Clip', [
    g.op('Mul', [g.op('Sub', [g.op('Exp', [logits]), g.scalar(MEMBERSHIP_FLOOR)]), g.scalar(MEMBERSHIP_GAIN)]),
    g.scalar(0),
    g.scalar(1),
  ]); // [B,K+1,H,W]
  const colourSim = sliceChannels(g, sim, 0, K);
  const bgSim = sliceChannels(g, sim, K, K + 1);

  const colourDims = g.op('Sqrt', [g.op('Flatten', [g.op('GlobalAveragePool', [colourSim])])]); // [B,K]

  // --- foreground and "other".
  const one = g.scalar(1);
  const fg = g.op('Min', [g.op('ReduceSum', [colourSim, axis1], { keepdims: attr.int(1) }), one]); // [B,1,H,W]
  const rest = g.op('Relu', [g.op('Sub', [g.op('Sub', [one, fg]), bgSim])]);
  const otherDim = g.op('Add', [
    g.op('Mul', [g.op('Sqrt', [g.op('Flatten', [g.op('GlobalAveragePool', [rest])])]), g.scalar(OTHER_IMAGE_GAIN)]),
    g.scalar(OTHER_IMAGE_BASE),
  ]); // [B,1]

  // --- shape statistics from Sobel edges of the foreground mask.
  // Edge padding: shapes (or bands) touching the border get no fake edge there.
  const padded = g.op('Pad', [fg, pad1], { mode: attr.string('edge') });
  // Channel 0: d/dx (positive on a left edge), channel 1: d/dy (positive on a top edge).
  const sobel = [-1, 0, 1, -2, 0, 2, -1, 0, 1, -1, -2, -1, 0, 0, 0, 1, 2, 1].map((v) => v / 4);
  const grad = g.op('Conv', [padded, g.floats('sobel_w', [2, 1, 3, 3], sobel)]);
  const gx = sliceChannels(g, grad, 0, 1);
  const gy = sliceChannels(g, grad, 1, 2);
  const ax = g.op('Abs', [gx]);
  const ay = g.op('Abs', [gy]);
  const relu = (v: string) => g.op('Relu', [v]);
  const neg = (v: string) => g.op('Neg', [v]);
  const maps = [
    g.op('Add', [ax, ay]), // 0 e: all edge energy
    g.op('Min', [ax, ay]), // 1 diagonal part
    relu(g.op('Sub', [ax, ay])), // 2 vertical edges
    relu(g.op('Sub', [ay, ax])), // 3 horizontal edges
    relu(g.op('Sub', [relu(gy), ax])), // 4 horizontal edges with shape below (top edges)
    relu(g.op('Sub', [relu(neg(gy)), ax])), // 5 bottom edges
    relu(g.op('Sub', [relu(gx), ay])), // 6 left edges
    relu(g.op('Sub', [relu(neg(gx)), ay])), // 7 right edges
  ];
  const means = g.op('Flatten', [g.op('GlobalAveragePool', [g.op('Concat', maps, { axis: attr.int(1) })])]); // [B,8]
  const energy = g.op('Slice', [means, g.int64s('e_start', [1], [0]), g.int64s('e_end', [1], [1]), axis1]); // [B,1]
  const ratios = g.op('Div', [means, g.op('Add', [energy, g.scalar(EPS)])]); // [B,8], 0 for a blank image

  // Statistics: diag, |vert−horiz|, |top−bottom| + |left−right|.
  const STATS = 4;
  const sw = new Float32Array(8 * STATS);
  const set = (ratio: number, stat: number, v: number) => (sw[ratio * STATS + stat] = v);
  set(1, 0, 1); // diag
  set(2, 1, 1); // vert − horiz
  set(3, 1, -1);
  set(4, 2, 1); // top − bottom
  set(5, 2, -1);
  set(6, 3, 1); // left − right
  set(7, 3, -1);
  const stats = g.op('Abs', [g.op('MatMul', [ratios, g.floats('stat_w', [8, STATS], sw)])]); // [B,4]: diag, aniso, asymH, asymV

  // Shape scores = Clip(stats · W + b, 0, 1). See SHAPE_SCORE_* for the reasoning.
  const scores = g.op('Clip', [
    g.op('Add', [g.op('MatMul', [stats, g.floats('shape_w', [STATS, SHAPES.length], SHAPE_SCORE_W)]), g.floats('shape_b', [SHAPES.length], SHAPE_SCORE_B)]),
    g.scalar(0),
    one,
  ]);
  // A blank canvas has no edges, ratios 0, and would score "square" from the
  // bias alone; gate the scores by how much foreground there is at all.
  const presence = g.op('Min', [g.op('Mul', [g.op('Flatten', [g.op('GlobalAveragePool', [fg])]), g.scalar(50)]), one]); // [B,1]
  const shapeDims = g.op('Mul', [g.op('Mul', [scores, presence]), g.scalar(SHAPE_GAIN)]);

  const embeds = g.op('Concat', [colourDims, shapeDims, otherDim], { axis: attr.int(1) }); // [B,D]
  l2Normalise(g, embeds, 'image_embeds');
  g.output('image_embeds', DataType.FLOAT, ['batch_size', TINY_CLIP_DIM]);
  return g.toBytes({ producerVersion: String(TINY_CLIP_VERSION), docString: 'nightshift-tiny-clip vision tower (test model, not a real CLIP)' });
}

/**
 * Linear map from [diag, aniso, asymH, asymV] to [circle, square, triangle, stripes]
 * (SHAPES order). Ideal values, all as fractions of edge energy:
 *   circle   diag ≈ 0.29, aniso 0,   asym 0
 *   square   diag ≈ 0,    aniso 0,   asym 0
 *   triangle diag ≈ 0.27, aniso ≈ 0.07, asym ≈ 0.27 (upright: a base, no top edge)
 *   stripes  diag ≈ 0,    aniso ≈ 1, asym small (only from bands cut by the border)
 */
const SHAPE_SCORE_W = new Float32Array([
  // circle, square, triangle, stripes
  /* diag  */ 3.5, -3.5, 0, 0,
  /* aniso */ -1, -2, -1, 1.6,
  /* asymH */ -4, -3, 3.5, -1,
  /* asymV */ -4, -3, 3.5, -1,
]);
const SHAPE_SCORE_B = new Float32Array([0, 1, 0, -0.4]);

function sliceChannels(g: GraphBuilder, v: string, start: number, end: number): string {
  return g.op('Slice', [v, g.int64s(g.fresh('start'), [1], [start]), g.int64s(g.fresh('end'), [1], [end]), g.int64s(g.fresh('axes'), [1], [1])]);
}

/** v / sqrt(sum(v²) + eps) over the last axis of a [B, D] tensor; an all-zero row stays zero. */
function l2Normalise(g: GraphBuilder, v: string, outName: string): string {
  const sq = g.op('ReduceSum', [g.op('Mul', [v, v]), g.int64s(g.fresh('axis_last'), [1], [-1])], { keepdims: attr.int(1) });
  const norm = g.op('Sqrt', [g.op('Add', [sq, g.scalar(1e-12)])]);
  return g.op('Div', [v, norm], {}, outName);
}

function concat(rows: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
  let o = 0;
  for (const r of rows) {
    out.set(r, o);
    o += r.length;
  }
  return out;
}

// ------------------------------------------------------------ folder files

function tokenizerJson(tv: TextVocab): object {
  const special = (t: string) => ({ id: t, ids: [tv.vocab.get(t)!], tokens: [t] });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((t) => ({
      id: tv.vocab.get(t)!,
      content: t,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: { type: 'Lowercase' },
    // Splits on whitespace and around punctuation ("red,blue" → red , blue).
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: { '[CLS]': special('[CLS]'), '[SEP]': special('[SEP]') },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    // WordPiece over whole words only: no "##" pieces are in the vocabulary, so
    // a word is either known as a whole or becomes [UNK].
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(tv.vocab),
    },
  };
}

function files(): Map<string, string | Uint8Array> {
  const tv = buildTextVocab();
  const out = new Map<string, string | Uint8Array>();
  const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';
  out.set(
    'config.json',
    json({
      architectures: ['CLIPModel'],
      model_type: 'clip',
      projection_dim: TINY_CLIP_DIM,
      logit_scale_init_value: 2.6592,
      text_config: {
        model_type: 'clip_text_model',
        vocab_size: tv.rows.length,
        hidden_size: TINY_CLIP_DIM,
        projection_dim: TINY_CLIP_DIM,
        max_position_embeddings: MAX_TEXT_TOKENS,
        num_hidden_layers: 0,
        num_attention_heads: 1,
        intermediate_size: TINY_CLIP_DIM,
        pad_token_id: tv.vocab.get('[PAD]'),
        bos_token_id: tv.vocab.get('[CLS]'),
        eos_token_id: tv.vocab.get('[SEP]'),
      },
      vision_config: {
        model_type: 'clip_vision_model',
        image_size: TINY_CLIP_IMAGE_SIZE,
        patch_size: TINY_CLIP_IMAGE_SIZE,
        num_channels: 3,
        hidden_size: TINY_CLIP_DIM,
        projection_dim: TINY_CLIP_DIM,
        num_hidden_layers: 0,
        num_attention_heads: 1,
        intermediate_size: TINY_CLIP_DIM,
      },
      'transformers.js_config': { dtype: 'fp32' },
      nightshift: {
        name: TINY_CLIP_NAME,
        version: TINY_CLIP_VERSION,
        description: 'Procedural test model with the CLIP folder layout; not a real CLIP. Dimensions are hand-made concepts.',
        concepts: TINY_CLIP_CONCEPTS,
      },
    }),
  );
  out.set('tokenizer.json', json(tokenizerJson(tv)));
  out.set(
    'tokenizer_config.json',
    json({
      tokenizer_class: 'PreTrainedTokenizerFast',
      model_max_length: MAX_TEXT_TOKENS,
      do_lower_case: true,
      padding_side: 'right',
      pad_token: '[PAD]',
      unk_token: '[UNK]',
      bos_token: '[CLS]',
      eos_token: '[SEP]',
      clean_up_tokenization_spaces: true,
    }),
  );
  out.set(
    'preprocessor_config.json',
    json({
      image_processor_type: 'CLIPImageProcessor',
      do_convert_rgb: true,
      do_resize: true,
      size: { shortest_edge: TINY_CLIP_IMAGE_SIZE },
      // Bilinear (2): keeps flat colours flat, unlike bicubic's overshoot.
      resample: 2,
      do_center_crop: true,
      crop_size: { height: TINY_CLIP_IMAGE_SIZE, width: TINY_CLIP_IMAGE_SIZE },
      do_rescale: true,
      rescale_factor: 1 / 255,
      // Identity normalisation: the model wants plain 0..1 RGB.
      do_normalize: true,
      image_mean: [0, 0, 0],
      image_std: [1, 1, 1],
    }),
  );
  out.set('onnx/text_model.onnx', buildTextModel(tv));
  out.set('onnx/vision_model.onnx', buildVisionModel());
  return out;
}

/** Writes the model folder (config, tokenizer, preprocessor, onnx/*.onnx) into outDir. */
export async function buildTinyClip(outDir: string): Promise<void> {
  for (const [rel, content] of files()) {
    const file = path.join(outDir, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
}

/** The folder's files in memory (relative path → content), for comparisons without touching disk. */
export function tinyClipFiles(): Map<string, string | Uint8Array> {
  return files();
}
