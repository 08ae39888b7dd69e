/**
 * The vision side of nightshift-tiny-clip: a fixed ONNX graph that measures
 * how much of each palette colour an image holds and which shape its
 * foreground edges suggest (see buildVisionModel).
 */
import { BACKGROUND, COLOR_NAMES, COLORS, SHAPES } from '@nightshift/common';
import { attr, DataType, GraphBuilder } from './onnx-builder.js';
import { K, l2Normalise, TINY_CLIP_DIM, TINY_CLIP_VERSION } from './tiny-clip-concepts.js';

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
export function buildVisionModel(): Uint8Array {
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
