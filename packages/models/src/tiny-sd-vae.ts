/**
 * nightshift-tiny-sd's VAE, AutoencoderKL's ONNX interfaces:
 * vae_decoder: latent_sample [batch, 4, h, w] → sample [batch, 3, 8h, 8w];
 * vae_encoder: sample [batch, 3, H, W] → latent_sample [batch, 4, H/8, W/8]
 * (or latent_parameters [batch, 8, H/8, W/8] = mean and log-variance).
 *
 * Not learned, but not arbitrary either: the decoder is SD's linear latent →
 * RGB preview projection, smoothly upsampled ×8, plus a little random
 * texture; the encoder is an 8×8 average and that projection's pseudo-inverse.
 * So decode(encode(image)) is a blurred copy of the image (img2img keeps the
 * picture) and the cheap preview looks like the decoded result.
 */
import { attr } from './onnx-builder.js';
import {
  LATENT_RGB_FACTORS,
  type ResolvedTinySdOptions,
  TINY_SD_LATENT_CHANNELS,
  TINY_SD_SCALING_FACTOR,
  TINY_SD_VAE_FACTOR,
  TINY_SD_VERSION,
} from './tiny-sd-config.js';
import { TinyGraph } from './tiny-sd-graph.js';

const TEXTURE_CHANNELS = 8;

/** Conv weights [3, 4, 1, 1]: RGB = Σ_c z_c · F[c]. */
function projectionWeights(): Float32Array {
  const w = new Float32Array(3 * TINY_SD_LATENT_CHANNELS);
  LATENT_RGB_FACTORS.forEach((row, c) => row.forEach((v, k) => (w[k * TINY_SD_LATENT_CHANNELS + c] = v)));
  return w;
}

/** Conv weights [4, 3, 1, 1]: P = F (FᵀF)⁻¹, so that Fᵀ·P = I (decoding an encoded colour gives it back). */
function pseudoInverseWeights(): Float32Array {
  const F = LATENT_RGB_FACTORS;
  const a: number[][] = [0, 1, 2].map((i) => [0, 1, 2].map((j) => F.reduce((s, row) => s + row[i]! * row[j]!, 0)));
  const [[a00, a01, a02], [a10, a11, a12], [a20, a21, a22]] = a as [[number, number, number], [number, number, number], [number, number, number]];
  const det = a00 * (a11 * a22 - a12 * a21) - a01 * (a10 * a22 - a12 * a20) + a02 * (a10 * a21 - a11 * a20);
  const inv = [
    [(a11 * a22 - a12 * a21) / det, (a02 * a21 - a01 * a22) / det, (a01 * a12 - a02 * a11) / det],
    [(a12 * a20 - a10 * a22) / det, (a00 * a22 - a02 * a20) / det, (a02 * a10 - a00 * a12) / det],
    [(a10 * a21 - a11 * a20) / det, (a01 * a20 - a00 * a21) / det, (a00 * a11 - a01 * a10) / det],
  ];
  const w = new Float32Array(TINY_SD_LATENT_CHANNELS * 3);
  F.forEach((row, c) => {
    for (let k = 0; k < 3; k++) w[c * 3 + k] = row.reduce((s, f, j) => s + f * inv[j]![k]!, 0);
  });
  return w;
}

export function buildVaeDecoder(o: ResolvedTinySdOptions): Uint8Array {
  const L = TINY_SD_LATENT_CHANNELS;
  const S = TINY_SD_VAE_FACTOR;
  const m = new TinyGraph('nightshift_tiny_sd_vae_decoder', o.seed, o.precision);
  const { g } = m;
  // The pipeline divides by the scaling factor before decoding; undo that first.
  const z = g.op('Mul', [m.floatInput('latent_sample', ['batch_size', L, 'latent_height', 'latent_width']), g.scalar(TINY_SD_SCALING_FACTOR)]);
  const base = g.op('Conv', [z, g.floats('projection.weight', [3, L, 1, 1], projectionWeights())]);
  const smooth = g.op('Resize', [base, '', g.floats('upsample_scales', [4], [1, 1, S, S])], {
    mode: attr.string('linear'),
    coordinate_transformation_mode: attr.string('half_pixel'),
  });
  // Texture: a random sub-pixel pattern per latent cell, small next to the colour.
  const texture = g.op('DepthToSpace', [m.conv('texture.1', m.silu(m.conv('texture.0', z, L, TEXTURE_CHANNELS, 3)), TEXTURE_CHANNELS, 3 * S * S, 3, 0.15)], {
    blocksize: attr.int(S),
    mode: attr.string('CRD'),
  });
  m.floatOutput(g.op('Add', [smooth, texture]), 'sample', ['batch_size', 3, 'height', 'width']);
  return g.toBytes({ producerVersion: String(TINY_SD_VERSION), docString: 'nightshift-tiny-sd VAE decoder (test model: SD preview projection + upsampling, not a trained VAE)' });
}

export function buildVaeEncoder(o: ResolvedTinySdOptions): Uint8Array {
  const L = TINY_SD_LATENT_CHANNELS;
  const S = TINY_SD_VAE_FACTOR;
  const m = new TinyGraph('nightshift_tiny_sd_vae_encoder', o.seed, o.precision);
  const { g } = m;
  const x = m.floatInput('sample', ['batch_size', 3, 'height', 'width']);
  const pooled = g.op('AveragePool', [x], { kernel_shape: attr.ints([S, S]), strides: attr.ints([S, S]) });
  const colour = g.op('Conv', [pooled, g.floats('unprojection.weight', [L, 3, 1, 1], pseudoInverseWeights())]);
  const detail = m.conv('detail', pooled, 3, L, 3, 0.05);
  // Latents before the scaling factor, as the VAE's own are.
  const mean = g.op('Div', [g.op('Add', [colour, detail]), g.scalar(TINY_SD_SCALING_FACTOR)]);
  if (o.vaeEncoderOutput === 'latent_parameters') {
    const logvar = g.op('Add', [g.op('Mul', [mean, g.scalar(0)]), g.scalar(-6)]);
    m.floatOutput(g.op('Concat', [mean, logvar], { axis: attr.int(1) }), 'latent_parameters', ['batch_size', 2 * L, 'latent_height', 'latent_width']);
  } else {
    m.floatOutput(mean, 'latent_sample', ['batch_size', L, 'latent_height', 'latent_width']);
  }
  return g.toBytes({ producerVersion: String(TINY_SD_VERSION), docString: 'nightshift-tiny-sd VAE encoder (test model: 8x8 average + inverse preview projection, not a trained VAE)' });
}
