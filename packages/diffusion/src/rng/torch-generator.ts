// torch.randn on a CPU generator, reimplemented so that seed 1234 here starts
// from the same noise as seed 1234 with a CPU generator in diffusers/ComfyUI:
// torch.randn(shape, generator=torch.Generator('cpu').manual_seed(1234)),
// float32. (ComfyUI always draws float32 on the CPU; a diffusers pipeline
// whose weights are fp16 asks torch for float16 noise, a different stream:
// draw float32 here and cast, as ComfyUI does.) Sources (pytorch):
// - aten/src/ATen/CPUGeneratorImpl.cpp: random() is one MT19937 word,
//   random64() two (first word high); manual_seed clears the cached normal.
// - aten/src/ATen/core/TransformationHelper.h uniform_real: a float uniform is
//   (word & (2²⁴−1))·2⁻²⁴, a double one (word64 & (2⁵³−1))·2⁻⁵³.
// - aten/src/ATen/native/cpu/DistributionTemplates.h normal_kernel: float32,
//   ≥ 16 values (contiguous) → normal_fill: n float uniforms, Box–Muller on each
//   16-value chunk (u1 = 1 − d[j], u2 = d[j+8] for j < 8); a ragged tail draws 16
//   fresh uniforms over the last 16 slots and transforms them again. Fewer
//   than 16 values → at::normal_distribution<double> one value at a time
//   (core/DistributionsHelper.h), which caches r·sin θ in the generator for
//   the next such draw.
// The chunk transform depends on which CPU kernel torch dispatched:
// 'avx2' (x86-64 CPUs with AVX2, AVX-512 ones included: normal_stub registers
// no AVX-512 kernel, native/cpu/DistributionKernels.cpp; Cephes float math,
// cephes-avx2.ts) or 'default' (other CPUs, e.g. ARM: libm logf/cosf/sinf).
// 'avx2' is bit-exact with torch (fixture: 6,261 values plus sha256 of whole
// 64×64 latents). 'default' uses correctly rounded float math where glibc's
// logf/cosf/sinf are not always: ~1.4 % of its values differ, by < 2e-6.
import { MT19937 } from './mt19937.js';
import { f32 } from './float32.js';
import { logAvx2, sincosAvx2Into } from './cephes-avx2.js';

export type NormalKernel = 'avx2' | 'default';

/** Anything that draws standard normal noise of a given element count (torch.randn(numel)). */
export interface NoiseSource {
  randn(numel: number): Float32Array;
}

const TWO_PI_F = f32(2 * Math.PI);
const TWO_POW_M24 = 2 ** -24;
const TWO_POW_M53 = 2 ** -53;
const TWO_POW_32 = 2 ** 32;
const SINCOS = new Float64Array(2);

export class TorchGenerator implements NoiseSource {
  private readonly engine: MT19937;
  private cachedNormal: number | undefined;

  constructor(
    seed: number | bigint,
    readonly kernel: NormalKernel = 'avx2',
  ) {
    this.engine = new MT19937(seed);
  }

  /** torch.randn(shape, generator=g) with float32, flattened; shape only matters through its element count. */
  randn(numel: number): Float32Array {
    if (!Number.isSafeInteger(numel) || numel < 0) throw new RangeError(`numel must be a non-negative integer, got ${numel}`);
    const out = new Float32Array(numel);
    if (numel >= 16) this.normalFill(out);
    else for (let i = 0; i < numel; i++) out[i] = this.normalDouble();
    return out;
  }

  private uniformFloat(): number {
    return (this.engine.nextUint32() & 0xffffff) * TWO_POW_M24;
  }

  private uniformDouble(): number {
    const hi = this.engine.nextUint32();
    const lo = this.engine.nextUint32();
    // (hi << 32 | lo) & (2⁵³ − 1): the low 21 bits of hi over all of lo.
    return ((hi & 0x1fffff) * TWO_POW_32 + lo) * TWO_POW_M53;
  }

  /** at::normal_distribution<double>(0, 1): Box–Muller in double, caching the sine half. */
  private normalDouble(): number {
    if (this.cachedNormal !== undefined) {
      const v = this.cachedNormal;
      this.cachedNormal = undefined;
      return v;
    }
    const u1 = this.uniformDouble();
    const u2 = this.uniformDouble();
    const r = Math.sqrt(-2 * Math.log1p(-u2));
    const theta = 2 * Math.PI * u1;
    this.cachedNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  private normalFill(d: Float32Array): void {
    const n = d.length;
    for (let i = 0; i < n; i++) d[i] = this.uniformFloat();
    for (let i = 0; i < n - 15; i += 16) this.chunk(d, i);
    if (n % 16 !== 0) {
      for (let i = n - 16; i < n; i++) d[i] = this.uniformFloat();
      this.chunk(d, n - 16);
    }
  }

  private chunk(d: Float32Array, at: number): void {
    for (let j = 0; j < 8; j++) {
      const u1 = f32(1 - d[at + j]!);
      const u2 = d[at + j + 8]!;
      if (this.kernel === 'avx2') {
        const radius = f32(Math.sqrt(f32(-2 * logAvx2(u1))));
        sincosAvx2Into(f32(TWO_PI_F * u2), SINCOS);
        d[at + j] = f32(radius * SINCOS[1]!);
        d[at + j + 8] = f32(radius * SINCOS[0]!);
      } else {
        // normal_fill_16<float>: float logf/cosf/sinf, θ = 2.0f·π(double)·u2 in double.
        const radius = f32(Math.sqrt(f32(-2 * f32(Math.log(u1)))));
        const theta = f32(2 * Math.PI * u2);
        d[at + j] = f32(radius * f32(Math.cos(theta)));
        d[at + j + 8] = f32(radius * f32(Math.sin(theta)));
      }
    }
  }
}

/**
 * A batch's noise as diffusers' randn_tensor draws it with a list of generators (one seed per image): each
 * image's share from its own generator, in batch order. So image k of a batch gets exactly the noise a batch
 * of one with its seed gets, at every draw (initial latent and every ancestral step).
 */
export function batchNoise(generators: readonly NoiseSource[]): NoiseSource {
  if (generators.length === 0) throw new RangeError('batchNoise needs at least one generator');
  return {
    randn(numel: number): Float32Array {
      if (numel % generators.length !== 0) throw new RangeError(`${numel} values do not split into ${generators.length} images`);
      const per = numel / generators.length;
      const out = new Float32Array(numel);
      generators.forEach((g, k) => out.set(g.randn(per), k * per));
      return out;
    },
  };
}
