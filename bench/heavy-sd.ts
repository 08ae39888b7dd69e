/**
 * Bench-only: nightshift-tiny-sd with a UNet heavy enough that one step costs
 * what a real one costs on a GPU (tens of milliseconds at 512×512), so a
 * benchmark can set the backend's own overhead (sampler math, previews, PNG)
 * against a realistic UNet step instead of a toy one of well under a
 * millisecond. Written at bench time into a temporary folder; never shipped,
 * never committed as a binary, not used by any node.
 *
 * The folder is the built-in model's (same tokenizer, text encoder, VAE,
 * scheduler config) with unet/model.onnx replaced. The replacement keeps the
 * interface of a diffusers export (sample [B, 4, h, w], timestep as a rank-0
 * float, encoder_hidden_states [B, 77, 32] → out_sample) and has a UNet's
 * shape: conv in, residual blocks at full resolution, a stride-2 conv down to
 * half resolution with twice the channels, residual blocks and a
 * cross-attention over the text there, nearest-neighbour up, a skip
 * connection, conv out. Random-but-fixed weights (mulberry32 per tensor), and
 * "the input plus a small correction" as the tiny UNet, so every sampler's
 * trajectory stays bounded. Latent sides must be even (pixel sides multiples
 * of 16).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { mulberry32 } from '@nightshift/common';
import { attr, DataType, GraphBuilder, TINY_SD_HIDDEN, TINY_SD_LATENT_CHANNELS, tinySdFiles } from '@nightshift/models';

export const HEAVY_SD_NAME = 'bench-heavy-sd';

export interface HeavyUnetOptions {
  /** Feature channels at full latent resolution (twice this at half). */
  channels: number;
  /** Residual blocks (two 3×3 convs each) at each of the two resolutions. */
  blocks: number;
}

/**
 * One guided step (batch 2) on one core of this project's x86 machines (onnxruntime 1.x, MLAS):
 * about 40 ms at 64×64 latents (512 px) and 10 ms at 32×32 (256 px), what SD 1.5's fp16 UNet
 * costs per guided step on a current desktop GPU (roughly 20–60 ms at 512 px); on CPU a real step
 * costs 10–100× more, which only makes the backend's overhead a smaller share.
 */
export const HEAVY_UNET_DEFAULTS: HeavyUnetOptions = { channels: 64, blocks: 2 };

const SEED = 1313;
const TIME_FREQS = 8;
const ATTN_DIM = 32;

/** Stable 32-bit seed per tensor name, so one tensor's values never depend on another's. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

class Layers {
  constructor(readonly g: GraphBuilder) {}

  private uniform(name: string, count: number, std: number): Float32Array {
    const next = mulberry32(hash32(`${SEED}:${name}`));
    const half = std * Math.sqrt(3);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = (next() * 2 - 1) * half;
    return out;
  }

  silu(x: string): string {
    return this.g.op('Mul', [x, this.g.op('Sigmoid', [x])]);
  }

  linear(name: string, x: string, inF: number, outF: number, gain = 1): string {
    const w = this.g.floats(`${name}.weight`, [inF, outF], this.uniform(`${name}.weight`, inF * outF, gain / Math.sqrt(inF)));
    const b = this.g.floats(`${name}.bias`, [outF], this.uniform(`${name}.bias`, outF, 0.02));
    return this.g.op('Add', [this.g.op('MatMul', [x, w]), b]);
  }

  conv(name: string, x: string, inC: number, outC: number, gain = 1, stride = 1): string {
    const fanIn = inC * 9;
    const w = this.g.floats(`${name}.weight`, [outC, inC, 3, 3], this.uniform(`${name}.weight`, outC * fanIn, gain / Math.sqrt(fanIn)));
    const b = this.g.floats(`${name}.bias`, [outC], this.uniform(`${name}.bias`, outC, 0.02));
    return this.g.op('Conv', [x, w, b], { pads: attr.ints([1, 1, 1, 1]), strides: attr.ints([stride, stride]) });
  }

  /** h + conv(silu(conv(silu(h)))), the second conv small so depth does not blow the activations up. */
  resBlock(name: string, h: string, c: number): string {
    return this.g.op('Add', [h, this.conv(`${name}.conv2`, this.silu(this.conv(`${name}.conv1`, this.silu(h), c, c)), c, c, 0.3)]);
  }
}

export function buildHeavyUnet(o: HeavyUnetOptions = HEAVY_UNET_DEFAULTS): Uint8Array {
  const C = o.channels;
  const C2 = 2 * C;
  const L = TINY_SD_LATENT_CHANNELS;
  const D = TINY_SD_HIDDEN;
  const g = new GraphBuilder('nightshift_bench_heavy_sd_unet');
  const m = new Layers(g);
  const x = g.input('sample', DataType.FLOAT, ['batch_size', L, 'height', 'width']);
  const t = g.input('timestep', DataType.FLOAT, []);
  const ehs = g.input('encoder_hidden_states', DataType.FLOAT, ['batch_size', 'sequence_length', D]);

  // Sinusoidal timestep embedding → MLP → a per-channel bias at each resolution.
  const freqs = new Float32Array(TIME_FREQS);
  for (let i = 0, f = 1; i < TIME_FREQS; i++, f /= Math.sqrt(10)) freqs[i] = f;
  const args = g.op('Mul', [g.op('Reshape', [t, g.int64s('t_shape', [2], [-1, 1])]), g.floats('time_freqs', [1, TIME_FREQS], freqs)]);
  const sincos = g.op('Concat', [g.op('Sin', [args]), g.op('Cos', [args])], { axis: attr.int(1) });
  const temb = m.silu(m.linear('time_mlp.0', sincos, 2 * TIME_FREQS, C2));
  const bias = (name: string, c: number) => g.op('Reshape', [m.linear(name, temb, C2, c), g.int64s(`${name}.shape`, [4], [-1, c, 1, 1])]);

  let h = g.op('Add', [m.conv('conv_in', x, L, C), bias('temb.0', C)]);
  for (let i = 0; i < o.blocks; i++) h = m.resBlock(`down.0.res.${i}`, h, C);
  const skip = h;

  let d = g.op('Add', [m.conv('down.0.downsample', h, C, C2, 1, 2), bias('temb.1', C2)]);
  for (let i = 0; i < o.blocks; i++) d = m.resBlock(`mid.res.${i}`, d, C2);
  // Cross-attention over the text at half resolution (queries from the cells, keys and values from the prompt).
  const cells = g.op('Transpose', [g.op('Reshape', [d, g.int64s('flatten_hw', [3], [0, C2, -1])])], { perm: attr.ints([0, 2, 1]) });
  const q = m.linear('attn.to_q', cells, C2, ATTN_DIM);
  const k = m.linear('attn.to_k', ehs, D, ATTN_DIM);
  const v = m.linear('attn.to_v', ehs, D, C2);
  const scores = g.op('Mul', [g.op('MatMul', [q, g.op('Transpose', [k], { perm: attr.ints([0, 2, 1]) })]), g.scalar(1 / Math.sqrt(ATTN_DIM))]);
  const attended = m.linear('attn.to_out', g.op('MatMul', [g.op('Softmax', [scores], { axis: attr.int(-1) }), v]), C2, C2, 0.5);
  d = g.op('Add', [d, g.op('Reshape', [g.op('Transpose', [attended], { perm: attr.ints([0, 2, 1]) }), g.op('Shape', [d])])]);

  const up = g.op('Resize', [d, '', g.floats('up_scales', [4], [1, 1, 2, 2])], { mode: attr.string('nearest') });
  h = g.op('Add', [m.conv('up.0.conv', up, C2, C, 0.5), skip]);
  for (let i = 0; i < o.blocks; i++) h = m.resBlock(`up.0.res.${i}`, h, C);

  const correction = m.conv('conv_out', m.silu(h), C, L, 0.05);
  g.op('Add', [x, correction], {}, 'out_sample');
  g.output('out_sample', DataType.FLOAT, ['batch_size', L, 'height', 'width']);
  return g.toBytes({ docString: 'bench-heavy-sd UNet: random fixed weights sized to cost like a real UNet step; bench only' });
}

/** The folder's files: nightshift-tiny-sd's with the heavy UNet. */
export function heavySdFiles(o: HeavyUnetOptions = HEAVY_UNET_DEFAULTS): Map<string, string | Uint8Array> {
  const files = tinySdFiles();
  files.set('unet/model.onnx', buildHeavyUnet(o));
  const config = JSON.parse(String(files.get('unet/config.json'))) as Record<string, unknown>;
  files.set('unet/config.json', JSON.stringify({ ...config, block_out_channels: [o.channels, 2 * o.channels], layers_per_block: o.blocks }, null, 2) + '\n');
  return files;
}

/** Writes the folder into `dir` (a temporary folder of the bench) and returns it. */
export async function writeHeavySd(dir: string, o: HeavyUnetOptions = HEAVY_UNET_DEFAULTS): Promise<string> {
  for (const [rel, content] of heavySdFiles(o)) {
    const file = path.join(dir, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
  return dir;
}
