import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { TorchGenerator } from '../rng/torch-generator.js';
import { parseSchedulerConfig } from './config.js';
import { DdimScheduler } from './ddim.js';
import { DpmPp2mScheduler } from './dpmpp-2m.js';
import { EulerAncestralScheduler } from './euler-ancestral.js';
import { EulerScheduler } from './euler.js';
import { LcmScheduler } from './lcm.js';
import type { Scheduler } from './types.js';

// Written by ../../fixtures/make-scheduler-fixtures.py (diffusers' formulas in torch/numpy float32).
interface Case {
  kind: 'euler' | 'euler_a' | 'ddim' | 'dpmpp_2m' | 'lcm';
  config: Record<string, unknown>;
  numSteps: number;
  options: { eta?: number };
  timesteps: number[];
  sigmas: number[] | null;
  initNoiseSigma: number;
  steps: { probes: number[]; mean: number; meanAbs: number; inputProbes: number[] }[];
  final: number[];
}
interface Fixture {
  shape: number[];
  seed: number;
  probes: number[];
  cases: Case[];
}
const fixture = JSON.parse(readFileSync(new URL('../../fixtures/schedulers.json', import.meta.url), 'utf8')) as Fixture;

/** Within 1e-5, relative for magnitudes over 1 (latents reach ±40 at σ_max ≈ 14.6). */
function close(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= 1e-5 * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);
}
function allClose(actual: ArrayLike<number>, expected: readonly number[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) close(actual[i]!, expected[i]!, `${what}[${i}]`);
}

function build(c: Case): Scheduler {
  const cfg = parseSchedulerConfig(c.config);
  switch (c.kind) {
    case 'euler':
      return new EulerScheduler(cfg, c.numSteps);
    case 'euler_a':
      return new EulerAncestralScheduler(cfg, c.numSteps);
    case 'ddim':
      return new DdimScheduler(cfg, c.numSteps, c.options);
    case 'dpmpp_2m':
      return new DpmPp2mScheduler(cfg, c.numSteps, cfg.useKarrasSigmas);
    case 'lcm':
      return new LcmScheduler(cfg, c.numSteps);
  }
}

/** The fixture's fake UNet: ε = 0.1·x_in + base_k, base_k[i] = float32(0.8·sin(0.37·i + 1.3·k)). */
function fakeModel(xIn: Float32Array, k: number): Float32Array {
  const tenth = Math.fround(0.1);
  return xIn.map((x, i) => Math.fround(tenth * x) + Math.fround(0.8 * Math.sin(0.37 * i + 1.3 * k)));
}

// The fixture's base is SD 1.5's scheduler_config.json; labels name what a case changes.
const SD15: Record<string, unknown> = (fixture.cases[0]!).config;
function describe(config: Record<string, unknown>): string {
  const changed = Object.entries(config).filter(([k, v]) => SD15[k] !== v);
  return changed.length ? `, ${changed.map(([k, v]) => `${k} ${String(v)}`).join(', ')}` : ', SD 1.5 config';
}

for (const c of fixture.cases) {
  const label = `${c.kind} ${c.numSteps} steps${describe(c.config)}${c.options.eta ? `, eta ${c.options.eta}` : ''}`;
  test(`${label}: timesteps, sigmas and the latent after every step match diffusers' formulas`, () => {
    const s = build(c);
    allClose(s.timesteps, c.timesteps, 'timesteps');
    if (c.sigmas) allClose(s.sigmas ?? [], c.sigmas, 'sigmas');
    else assert.equal(s.sigmas, undefined);
    close(s.initNoiseSigma, c.initNoiseSigma, 'initNoiseSigma');
    const g = new TorchGenerator(fixture.seed);
    const numel = fixture.shape.reduce((a, b) => a * b, 1);
    const sigma0 = Math.fround(s.initNoiseSigma);
    let x: Float32Array = g.randn(numel).map((v) => v * sigma0);
    c.steps.forEach((want, k) => {
      const xIn = s.scaleModelInput(x, k);
      allClose(fixture.probes.map((p) => xIn[p]!), want.inputProbes, `step ${k} model input`);
      x = s.step(fakeModel(xIn, k), k, x, g).prevSample;
      allClose(fixture.probes.map((p) => x[p]!), want.probes, `step ${k} latent`);
      close(x.reduce((a, v) => a + v, 0) / numel, want.mean, `step ${k} mean`);
      close(x.reduce((a, v) => a + Math.abs(v), 0) / numel, want.meanAbs, `step ${k} mean |x|`);
    });
    allClose(x, c.final, 'final latent');
  });
}

test('the fixture covers every sampler, both prediction types and all three spacings', () => {
  const kinds = new Set(fixture.cases.map((c) => c.kind));
  assert.deepEqual([...kinds].sort(), ['ddim', 'dpmpp_2m', 'euler', 'euler_a', 'lcm']);
  assert.ok(fixture.cases.some((c) => c.kind === 'dpmpp_2m' && c.config.use_karras_sigmas === true));
  assert.ok(fixture.cases.some((c) => c.config.prediction_type === 'v_prediction'));
  for (const spacing of ['leading', 'trailing', 'linspace']) assert.ok(fixture.cases.some((c) => c.config.timestep_spacing === spacing), spacing);
});
