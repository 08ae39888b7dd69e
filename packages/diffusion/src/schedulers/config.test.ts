import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_SCHEDULER_CONFIG, parseSchedulerConfig, SchedulerConfigError } from './config.js';

// stable-diffusion-v1-5/scheduler/scheduler_config.json as shipped.
const SD15 = {
  _class_name: 'PNDMScheduler',
  _diffusers_version: '0.6.0',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
  clip_sample: false,
};

test('reads the fields of a diffusers scheduler_config.json, leaving the absent ones to each class', () => {
  const c = parseSchedulerConfig(SD15);
  assert.equal(c.betaSchedule, 'scaled_linear');
  assert.equal(c.betaStart, 0.00085);
  assert.equal(c.betaEnd, 0.012);
  assert.equal(c.stepsOffset, 1);
  assert.equal(c.setAlphaToOne, false);
  assert.equal(c.clipSample, false);
  assert.equal(c.predictionType, 'epsilon');
  assert.equal(c.timestepSpacing, undefined); // Euler then uses linspace, DDIM leading
  assert.equal(c.useKarrasSigmas, false);
  const turbo = parseSchedulerConfig({ ...SD15, prediction_type: 'v_prediction', timestep_spacing: 'trailing', use_karras_sigmas: true });
  assert.equal(turbo.predictionType, 'v_prediction');
  assert.equal(turbo.timestepSpacing, 'trailing');
  assert.equal(turbo.useKarrasSigmas, true);
  assert.deepEqual(parseSchedulerConfig({}), DEFAULT_SCHEDULER_CONFIG);
});

test('unsupported values are refused by name, never guessed', () => {
  const refuses = (json: unknown, pattern: RegExp) => assert.throws(() => parseSchedulerConfig(json), (e) => e instanceof SchedulerConfigError && pattern.test(e.message));
  refuses([], /expected a JSON object/);
  refuses({ beta_schedule: 'squaredcos_cap_v2' }, /beta_schedule "squaredcos_cap_v2" is not supported; use one of linear, scaled_linear/);
  refuses({ prediction_type: 'sample' }, /prediction_type "sample" is not supported/);
  refuses({ timestep_spacing: 'karras' }, /timestep_spacing/);
  refuses({ num_train_timesteps: 999.5 }, /num_train_timesteps must be an integer/);
  refuses({ beta_start: '0.1' }, /beta_start must be a number/);
  refuses({ set_alpha_to_one: 'yes' }, /set_alpha_to_one must be true or false/);
  refuses({ trained_betas: [0.1, 0.2] }, /trained_betas is not supported/);
});
