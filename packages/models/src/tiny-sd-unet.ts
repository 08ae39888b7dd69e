/**
 * nightshift-tiny-sd's unet/model.onnx, UNet2DConditionModel interface:
 * sample [batch, 4, h, w], timestep, encoder_hidden_states [batch, S, D] →
 * out_sample [batch, 4, h, w], for any h and w (no down/up-sampling, so every
 * multiple of 8 pixels works, not only multiples of 64).
 *
 * Inside: a sinusoidal timestep embedding through a small MLP, a conv in,
 * a per-channel bias from the prompt's summary, a residual conv block, one cross-attention
 * layer over the text states (what makes the prompt matter), a conv out,
 * and the input added back. Predicting "the input plus a small, prompt- and
 * time-dependent correction" keeps every sampler's trajectory bounded, so
 * the tiny model's images are coloured noise with structure, not overflow.
 */
import { attr, DataType, type Dim } from './onnx-builder.js';
import { type ResolvedTinySdOptions, TINY_SD_HIDDEN, TINY_SD_LATENT_CHANNELS, TINY_SD_VERSION, UNET_CHANNELS } from './tiny-sd-config.js';
import { TinyGraph } from './tiny-sd-graph.js';

const TIME_FREQS = 8; // with 1/√10 steps below: periods from 2π to 2π·10^3.5
const ATTN_DIM = 16;

export function buildUnet(o: ResolvedTinySdOptions): Uint8Array {
  const C = UNET_CHANNELS;
  const L = TINY_SD_LATENT_CHANNELS;
  const D = TINY_SD_HIDDEN;
  const m = new TinyGraph('nightshift_tiny_sd_unet', o.seed, o.precision);
  const { g } = m;
  const x = m.floatInput('sample', ['batch_size', L, 'height', 'width']);

  let t: string;
  if (o.timestep === 'int64') {
    t = g.op('Cast', [g.input('timestep', DataType.INT64, ['steps'])], { to: attr.int(DataType.FLOAT) });
  } else {
    const dims: Dim[] = o.timestep === 'scalar' ? [] : ['batch'];
    t = m.floatInput('timestep', dims);
  }
  const ehs = m.floatInput('encoder_hidden_states', ['batch_size', 'sequence_length', D]);

  // Timestep embedding [T, C] (T = 1 or batch), broadcast over the batch as [T, C, 1, 1].
  const t2 = g.op('Reshape', [t, g.int64s('t_shape', [2], [-1, 1])]);
  // 10000^(−i/8) = (1/√10)^i, by multiplication only so the bytes never depend on a libm.
  const freqs = new Float32Array(TIME_FREQS);
  for (let i = 0, f = 1; i < TIME_FREQS; i++, f /= Math.sqrt(10)) freqs[i] = f;
  const args = g.op('Mul', [t2, g.floats('time_freqs', [1, TIME_FREQS], freqs)]);
  const sincos = g.op('Concat', [g.op('Sin', [args]), g.op('Cos', [args])], { axis: attr.int(1) });
  const temb = m.linear('time_mlp.2', m.silu(m.linear('time_mlp.0', sincos, 2 * TIME_FREQS, C)), C, C);
  const temb4 = g.op('Reshape', [temb, g.int64s('temb_shape', [4], [-1, C, 1, 1])]);

  // A per-channel bias from the text's last position (the causal text encoder's summary of the
  // whole prompt), so that prompts change the picture visibly and not only through attention.
  const summary = g.op('Gather', [ehs, g.int64s('last_position', [], [-1])], { axis: attr.int(1) }); // [B, D]
  const textBias = g.op('Reshape', [m.linear('text_proj', summary, D, C, 0.5), g.int64s('bias_shape', [4], [-1, C, 1, 1])]);

  let h = g.op('Add', [g.op('Add', [m.conv('conv_in', x, L, C, 3), temb4]), textBias]);
  h = g.op('Add', [h, m.conv('res.conv', m.silu(h), C, C, 3, 0.5)]);

  // Cross-attention: queries from the latent cells, keys and values from the text.
  const cells = g.op('Transpose', [g.op('Reshape', [h, g.int64s('flatten_hw', [3], [0, C, -1])])], { perm: attr.ints([0, 2, 1]) }); // [B, hw, C]
  const q = m.linear('attn.to_q', cells, C, ATTN_DIM);
  const k = m.linear('attn.to_k', ehs, D, ATTN_DIM);
  const v = m.linear('attn.to_v', ehs, D, C);
  const scores = g.op('Mul', [g.op('MatMul', [q, g.op('Transpose', [k], { perm: attr.ints([0, 2, 1]) })]), g.scalar(1 / Math.sqrt(ATTN_DIM))]);
  const attended = m.linear('attn.to_out', g.op('MatMul', [g.op('Softmax', [scores], { axis: attr.int(-1) }), v]), C, C);
  const back = g.op('Reshape', [g.op('Transpose', [attended], { perm: attr.ints([0, 2, 1]) }), g.op('Shape', [h])]);
  h = g.op('Add', [h, back]);

  const correction = m.conv('conv_out', m.silu(h), C, L, 3, 0.3);
  m.floatOutput(g.op('Add', [x, correction]), 'out_sample', ['batch_size', L, 'height', 'width']);
  return g.toBytes({ producerVersion: String(TINY_SD_VERSION), docString: 'nightshift-tiny-sd UNet (test model with random fixed weights, not a trained denoiser)' });
}
