import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSchedulerConfig } from './config.js';
import { alphasCumprod, interpAtTimestep, karrasSigmas, linspaceF32, logSigmasOf, sigmaToTimestep, trainingSigmas } from './noise-schedule.js';

const SD15 = parseSchedulerConfig({ beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear' });

test('SD 1.5 training schedule: ᾱ and σ at both ends (values as torch 1.13 computes them)', () => {
  const ac = alphasCumprod(SD15);
  assert.equal(ac.length, 1000);
  assert.equal(ac[0], Math.fround(1 - Math.fround(Math.fround(Math.sqrt(0.00085)) ** 2)));
  assert.ok(Math.abs(ac[999]! - 0.0046601) < 1e-7);
  const sigmas = trainingSigmas(ac);
  // torch 1.13 (the fixture) says 14.614645: its vectorised linspace rounds ~27 % of the betas the other way;
  // we follow the serial kernel of current torch (see noise-schedule.ts). Two float ulps here.
  assert.equal(sigmas[999], Math.fround(14.614646911621094));
  assert.ok(Math.abs(sigmas[999]! - 14.614645004272461) <= 2 * 2 ** -20);
  assert.ok(Math.abs(sigmas[0]! - 0.0291675) < 1e-6);
});

test('torch linspace steps from the start for the first half and back from the end for the second', () => {
  const v = linspaceF32(0, 1, 5);
  assert.deepEqual([...v], [0, 0.25, 0.5, 0.75, 1]);
  const odd = linspaceF32(0.1, 0.7, 4);
  assert.equal(odd[3], Math.fround(0.7)); // the end is hit exactly
  assert.equal(odd[0], Math.fround(0.1));
});

test('numpy.interp between training timesteps; Karras sigmas span [σ_min, σ_max]; σ → t inverts interp', () => {
  const fp = Float64Array.from([0, 10, 40]);
  assert.equal(interpAtTimestep(0.5, fp), 5);
  assert.equal(interpAtTimestep(1.25, fp), 17.5);
  assert.equal(interpAtTimestep(2, fp), 40);
  const k = karrasSigmas(0.03, 14.6, 5);
  assert.ok(Math.abs(k[0]! - 14.6) < 1e-12 && Math.abs(k[4]! - 0.03) < 1e-12);
  assert.ok(k.every((s, i) => i === 0 || s < k[i - 1]!));
  const sigmas = trainingSigmas(alphasCumprod(SD15));
  const logs = logSigmasOf(sigmas);
  for (const t of [0, 1, 250, 499, 998, 999]) assert.ok(Math.abs(sigmaToTimestep(sigmas[t]!, logs) - t) < 1e-3, `t ${t}`);
  assert.equal(sigmaToTimestep(1e-6, logs), 0); // below σ_min clamps to t = 0
});
